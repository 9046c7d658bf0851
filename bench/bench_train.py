"""Whole SGD training steps (forward, loss, backward, update): dl2 on fastconv, the NumPy reference step,
PyTorch; and the NumPy SGEMM the convolutions are compared with."""
import pytest

import fcbench


@pytest.mark.parametrize("case, impl", fcbench.params(fcbench.train_cases()))
def bench_training_step(benchmark, case, impl):
    fcbench.run_case(benchmark, case, impl)


@pytest.mark.parametrize("case, impl", fcbench.params([fcbench.sgemm_case()]))
def bench_sgemm(benchmark, case, impl):
    fcbench.run_case(benchmark, case, impl)

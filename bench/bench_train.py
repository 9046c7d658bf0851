"""Whole SGD training steps of every zoo model (forward, loss, backward, update): dl2 on fastconv, PyTorch, and
the NumPy reference step where it applies; and the NumPy SGEMM, the machine's GEMM rate."""
import pytest

import cases_peak
import cases_train
import fcbench


@pytest.mark.parametrize("case, impl", fcbench.params(cases_train.train_cases()))
def bench_training_step(benchmark, case, impl):
    fcbench.run_case(benchmark, case, impl)


@pytest.mark.parametrize("case, impl", fcbench.params(cases_peak.peak_cases()))
def bench_sgemm(benchmark, case, impl):
    fcbench.run_case(benchmark, case, impl)

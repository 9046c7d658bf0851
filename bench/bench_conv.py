"""Convolution: forward, and forward + all three gradients (dx, dw, db), on fastconv / reference / PyTorch."""
import pytest

import fcbench


@pytest.mark.parametrize("case, impl", fcbench.params(fcbench.conv_cases()))
def bench_conv2d(benchmark, case, impl):
    fcbench.run_case(benchmark, case, impl)

"""Convolution: forward, and forward + all three gradients (dx, dw, db), on fastconv / reference / PyTorch."""
import pytest

import cases_conv
import fcbench


@pytest.mark.parametrize("case, impl", fcbench.params(cases_conv.conv_cases()))
def bench_conv2d(benchmark, case, impl):
    fcbench.run_case(benchmark, case, impl)

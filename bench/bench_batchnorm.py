"""Training-mode batch norm (batch statistics): forward, and forward + backward (dx, dgamma, dbeta)."""
import pytest

import cases_batchnorm
import fcbench


@pytest.mark.parametrize("case, impl", fcbench.params(cases_batchnorm.batchnorm_cases()))
def bench_batchnorm(benchmark, case, impl):
    fcbench.run_case(benchmark, case, impl)

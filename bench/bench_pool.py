"""Max and average pooling (and global average pooling): forward, and forward + backward."""
import pytest

import cases_pool
import fcbench


@pytest.mark.parametrize("case, impl", fcbench.params(cases_pool.pool_cases("max")))
def bench_maxpool2d(benchmark, case, impl):
    fcbench.run_case(benchmark, case, impl)


@pytest.mark.parametrize("case, impl", fcbench.params(cases_pool.pool_cases("avg")))
def bench_avgpool2d(benchmark, case, impl):
    fcbench.run_case(benchmark, case, impl)

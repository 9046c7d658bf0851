"""Fixtures shared by the test files."""
import pytest

import fastconv


@pytest.fixture(scope="module")
def one_fastconv_thread():
    """One fastconv thread for a module of tests on tiny inputs (no OpenMP barriers to wait on, steadier on a
    shared machine); the previous count is restored afterwards."""
    previous = fastconv.get_num_threads()
    fastconv.set_num_threads(1)
    yield
    fastconv.set_num_threads(previous)


@pytest.fixture(scope="module", params=fastconv.available_isas())
def each_isa(request):
    """Run a module of tests once per instruction set of the float32 convolution engine this CPU supports
    (generic, avx2, avx512); the previous one is restored afterwards."""
    previous = fastconv.get_isa()
    fastconv.set_isa(request.param)
    yield request.param
    fastconv.set_isa(previous)

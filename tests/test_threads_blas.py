"""The kernels' BLAS is found from the address of the sgemm they call, and pinned to one thread (or a warning)."""
import os

import pytest
from threadpoolctl import threadpool_info

from fastconv import threads


def test_the_kernels_blas_is_found_by_address_and_pinned_to_one_thread():
    path = threads.kernel_blas_path()
    assert path is not None and os.path.isfile(path)
    pinned = [info for info in threadpool_info()
              if info["user_api"] == "blas" and os.path.realpath(info["filepath"]) == os.path.realpath(path)]
    assert len(pinned) == 1 and pinned[0]["num_threads"] == 1
    assert threads.config()["kernel_blas"] == [pinned[0]["filepath"]]


@pytest.mark.parametrize("path", [None, "/usr/lib/libnot-a-blas.so"])
def test_a_blas_that_cannot_be_pinned_is_a_warning(monkeypatch, path):
    monkeypatch.setattr(threads, "kernel_blas_path", lambda: path)
    with pytest.warns(RuntimeWarning, match="cannot pin the BLAS under scipy.linalg.cython_blas to one thread"):
        controller = threads._kernel_blas_libraries()
    assert controller.lib_controllers == []

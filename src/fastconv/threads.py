"""Thread counts and build information.

Design: one team of threads. Every fastconv kernel is a single OpenMP ``prange`` region of
``get_num_threads()`` threads; a convolution's matrix products are made *inside* that region, each thread
calling a single-threaded GEMM on its own block (SciPy's BLAS through ``scipy.linalg.cython_blas``). fastconv
therefore pins the thread count of the BLAS library behind ``scipy.linalg.cython_blas`` to 1 when it is
imported, so OpenMP threads never start BLAS threads of their own and the cores are never oversubscribed.
NumPy's BLAS (used by ``numpy.matmul``) is left alone unless you call :func:`set_num_threads`.
"""
import os

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS the kernels call)
from threadpoolctl import ThreadpoolController, threadpool_info

from . import _threads

__all__ = ["set_num_threads", "get_num_threads", "openmp_enabled", "show_config", "config"]


def _default_threads():
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _kernel_blas_libraries():
    """Controller of the BLAS libraries that SciPy loaded (those behind ``scipy.linalg.cython_blas``)."""
    import scipy

    scipy_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(scipy.__file__))), "")
    blas = ThreadpoolController().select(user_api="blas")
    return blas.select(filepath=[
        lib.filepath for lib in blas.lib_controllers
        if os.path.abspath(lib.filepath).startswith(scipy_dir + "scipy")   # scipy/ or scipy.libs/ of a wheel
    ])


_num_threads = _default_threads()
_blas_limit = None
_kernel_blas = _kernel_blas_libraries()
_kernel_blas_limit = _kernel_blas.limit(limits=1) if _kernel_blas.lib_controllers else None


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return _threads.openmp_enabled()


def get_num_threads():
    """Threads used by fastconv's OpenMP loops (and set for BLAS by :func:`set_num_threads`)."""
    return _num_threads if openmp_enabled() else 1


def set_num_threads(n):
    """Use ``n`` threads for fastconv's kernels and for NumPy's BLAS (process-wide).

    The BLAS the kernels call stays single-threaded: they call it from each of their own ``n`` threads.
    """
    global _num_threads, _blas_limit
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"number of threads must be a positive int, got {n!r}")
    _num_threads = n
    kernel_blas = {lib.filepath for lib in _kernel_blas.lib_controllers}
    numpy_blas = [lib.filepath for lib in ThreadpoolController().select(user_api="blas").lib_controllers
                  if lib.filepath not in kernel_blas]
    if numpy_blas:
        _blas_limit = ThreadpoolController().select(filepath=numpy_blas).limit(limits=n)


def config():
    """Build and runtime configuration as a dict (see :func:`show_config`)."""
    from . import __version__

    blas = [
        {k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "filepath")}
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]
    return {
        "version": __version__,
        "kernel_blas": [lib.filepath for lib in _kernel_blas.lib_controllers],
        "numpy": np.__version__,
        "openmp": openmp_enabled(),
        "openmp_default_threads": _threads.openmp_max_threads(),
        "num_threads": get_num_threads(),
        "float_types": ["float32", "float64"],
        "blas": blas,
    }


def show_config():
    """Print version, OpenMP on/off, thread count, float types and the BLAS NumPy calls."""
    cfg = config()
    print(f"fastconv {cfg['version']} (numpy {cfg['numpy']})")
    print(f"  OpenMP:      {'on' if cfg['openmp'] else 'OFF (serial build)'}")
    print(f"  threads:     {cfg['num_threads']}")
    print(f"  float types: {', '.join(cfg['float_types'])}")
    for b in cfg["blas"] or [{"internal_api": "unknown"}]:
        role = "kernels' BLAS" if b.get("filepath") in cfg["kernel_blas"] else "other BLAS   "
        print(f"  {role}: {b.get('internal_api')} {b.get('version') or ''} "
              f"({b.get('architecture') or '?'} kernel, {b.get('num_threads')} threads) {b.get('filepath')}")

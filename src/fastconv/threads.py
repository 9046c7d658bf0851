"""Thread counts and build information.

Design: fastconv runs two kinds of parallel code, never one inside the other. Its own loops (im2col, pooling,
batch norm, layout moves) are OpenMP ``prange`` loops; its matrix products are single calls to NumPy's BLAS,
made from outside any OpenMP region, which parallelises them with its own threads. Because the two never nest,
at most ``get_num_threads()`` threads are busy at any moment. :func:`set_num_threads` sets both counts.
"""
import os

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

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


_num_threads = _default_threads()
_blas_limit = None


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return _threads.openmp_enabled()


def get_num_threads():
    """Threads used by fastconv's OpenMP loops (and set for BLAS by :func:`set_num_threads`)."""
    return _num_threads if openmp_enabled() else 1


def set_num_threads(n):
    """Use ``n`` threads for fastconv's loops and for NumPy's BLAS (process-wide)."""
    global _num_threads, _blas_limit
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"number of threads must be a positive int, got {n!r}")
    _num_threads = n
    _blas_limit = threadpool_limits(limits=n, user_api="blas")


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
        print(f"  BLAS:        {b.get('internal_api')} {b.get('version') or ''} "
              f"({b.get('architecture') or '?'} kernel, {b.get('num_threads')} threads)")

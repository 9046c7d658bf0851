"""Thread counts and build information.

Design: one team of threads. Every fastconv kernel is a single OpenMP ``prange`` region of
``get_num_threads()`` threads; a convolution's matrix products are made *inside* that region, each thread
calling a single-threaded GEMM on its own block (SciPy's BLAS through ``scipy.linalg.cython_blas``). fastconv
therefore pins the thread count of the BLAS library behind ``scipy.linalg.cython_blas`` to 1 when it is
imported (found by address, see :func:`kernel_blas_path`), so OpenMP threads never start BLAS threads of their own
and the cores are never oversubscribed; it warns when that library cannot be pinned.
NumPy's BLAS (used by ``numpy.matmul``) is left alone unless you call :func:`set_num_threads`.
"""
import ctypes
import os
import warnings

import numpy as np
import scipy.linalg.cython_blas as cython_blas   # loads the BLAS the kernels call
from threadpoolctl import ThreadpoolController, threadpool_info

from . import _threads

__all__ = ["set_num_threads", "get_num_threads", "openmp_enabled", "show_config", "config", "kernel_blas_path"]


def _default_threads():
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: Names under which BLAS libraries export the Fortran sgemm (reference/OpenBLAS/MKL, SciPy's prefixed OpenBLAS,
#: and their 64-bit-integer builds).
_SGEMM_SYMBOLS = ("sgemm_", "scipy_sgemm_", "sgemm_64_", "scipy_sgemm_64_", "sgemm")


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _library_of(address):
    """Path of the shared library holding ``address`` (``dladdr``), or None."""
    dladdr = getattr(ctypes.CDLL(None), "dladdr", None)
    if dladdr is None or not address:
        return None
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    info = _DlInfo()
    if not dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.fsdecode(info.dli_fname)


def kernel_blas_path():
    """Path of the BLAS library whose ``sgemm`` the kernels call, found from addresses rather than file names:
    the kernels call ``scipy.linalg.cython_blas.sgemm``; ``dladdr`` gives the library holding that wrapper, and the
    Fortran ``sgemm`` it calls is looked up from that library (so the dynamic linker's own choice is followed,
    whatever the install: a SciPy wheel's bundled OpenBLAS, Debian's alternatives, conda's MKL). None when it
    cannot be found (no ``dladdr`` on this platform, or an unknown layout)."""
    get_name, get_pointer = ctypes.pythonapi.PyCapsule_GetName, ctypes.pythonapi.PyCapsule_GetPointer
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    try:
        capsule = cython_blas.__pyx_capi__["sgemm"]
        wrapper = _library_of(get_pointer(capsule, get_name(capsule)))
        if wrapper is None:
            return None
        library = ctypes.CDLL(wrapper)
    except (AttributeError, KeyError, OSError, ValueError):
        return None
    for symbol in _SGEMM_SYMBOLS:
        try:
            address = ctypes.cast(getattr(library, symbol), ctypes.c_void_p).value
        except AttributeError:
            continue
        path = _library_of(address)
        if path is not None and path != wrapper:
            return path
    return None


def _kernel_blas_libraries():
    """threadpoolctl controller of the kernels' BLAS (see :func:`kernel_blas_path`); a ``RuntimeWarning`` when
    that library cannot be found or threadpoolctl cannot control it, i.e. when it cannot be pinned to one thread."""
    path = kernel_blas_path()
    blas = ThreadpoolController().select(user_api="blas")
    if path is not None:
        real = os.path.realpath(path)
        blas = blas.select(filepath=[lib.filepath for lib in blas.lib_controllers
                                     if os.path.realpath(lib.filepath) == real])
    if path is None or not blas.lib_controllers:
        warnings.warn(
            f"fastconv: cannot pin the BLAS under scipy.linalg.cython_blas to one thread "
            f"({'library not found' if path is None else path + ' is not a BLAS threadpoolctl can control'}); "
            f"if it is multi-threaded, every fastconv thread may start BLAS threads of its own. Set "
            f"OPENBLAS_NUM_THREADS=1 (or MKL_NUM_THREADS=1) before starting Python to avoid that.",
            RuntimeWarning, stacklevel=2)
        return ThreadpoolController().select(filepath=[])
    return blas


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

"""Which instruction set the float32 convolution engine runs on.

The engine is compiled for baseline x86-64 ("generic", SSE2 on x86-64; plain C vectors elsewhere) and, on x86,
also for AVX2 + FMA ("avx2") and AVX-512 ("avx512"), each with its own register-blocked micro-kernel. At
import the best one this CPU supports is chosen, unless the environment variable ``FASTCONV_ISA`` names
another (e.g. ``FASTCONV_ISA=generic`` to compare, or to work around a problem). :func:`set_isa` changes it at
run time (the tests use it to run every path the machine supports).
"""
import os

from . import _conv

__all__ = ["get_isa", "set_isa", "available_isas", "measure_fma_peak"]

ISAS = tuple(_conv.isa_names())


def available_isas():
    """The instruction sets this CPU can run, in order of preference (lowest first)."""
    return tuple(name for name in ISAS if _conv.isa_supported(name))


def get_isa():
    """Name of the instruction set the float32 convolutions use now."""
    return _conv.get_isa()


def set_isa(name):
    """Run the float32 convolutions on instruction set ``name`` (one of :func:`available_isas`)."""
    if not isinstance(name, str) or name not in ISAS:
        raise ValueError(f"instruction set must be one of {ISAS}, got {name!r}")
    if name not in available_isas():
        raise ValueError(f"instruction set {name!r} is not supported by this CPU (it supports {available_isas()})")
    _conv.set_isa(name)


def measure_fma_peak(threads=None, seconds=0.2):
    """GFLOP/s of ``threads`` threads (default: fastconv's count) each running 12 independent fused
    multiply-add chains on the current instruction set's vectors: the machine's arithmetic peak as the
    engine's micro-kernels see it (one multiply-add counts as two operations)."""
    from .threads import get_num_threads

    threads = get_num_threads() if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    if not isinstance(seconds, (int, float)) or not 0 < seconds <= 60:
        raise ValueError(f"seconds must be in (0, 60], got {seconds!r}")
    return _conv.fma_peak(float(seconds), threads)


def _isa_from_environment():
    name = os.environ.get("FASTCONV_ISA", "").strip()
    if name:
        try:
            set_isa(name)
        except ValueError as err:
            raise ImportError(f"FASTCONV_ISA={name!r}: {err}") from None


_isa_from_environment()

"""The machine's reference rates: NumPy's float32 SGEMM (a benchmark case) and the peak FMA rate.

:func:`fma_peak` is what the convolution GFLOP/s are compared with: ``fastconv.measure_fma_peak`` (12
independent FMA chains per thread on the vectors of the instruction set the convolutions use). An SGEMM is not
the peak: it also loads, packs and stores.
"""
import numpy as np

import fastconv

from fcbench import Case, THREADS, randn, smoke, to_numpy

SGEMM_N = 2048
SMOKE_SGEMM_N = 64
#: Seconds the FMA-peak measurement runs (smoke runs: a tenth of it; the number then means little).
FMA_SECONDS = 0.2


def _sgemm(case, impl):
    n = case.params["n"]
    rng = case.rng()
    a, b = randn(rng, (n, n)), randn(rng, (n, n))
    out = np.empty((n, n), dtype=a.dtype)
    return (lambda: np.matmul(a, b, out=out)), to_numpy


def sgemm_case():
    """NumPy float32 ``n x n`` matmul on NumPy's BLAS with ``THREADS`` threads."""
    n = SMOKE_SGEMM_N if smoke() else SGEMM_N
    return Case("sgemm", "numpy sgemm", f"{n}x{n} @ {n}x{n}", _sgemm, {"n": n}, flops=2.0 * n ** 3,
                impls=("numpy",))


def peak_cases():
    return [sgemm_case()]


def fma_peak(threads=THREADS):
    """``{"gflops": float32 FMA peak of ``threads`` threads, "source": how it was measured}``; ``gflops`` is None
    on a fastconv older than ``measure_fma_peak`` (e.g. when measuring ``baseline_zoo.json`` on earlier kernels).
    """
    if not hasattr(fastconv, "measure_fma_peak"):
        return {"gflops": None, "source": "this fastconv has no measure_fma_peak"}
    seconds = FMA_SECONDS / 10 if smoke() else FMA_SECONDS
    return {"gflops": float(fastconv.measure_fma_peak(threads, seconds)),
            "source": f"`fastconv.measure_fma_peak({threads})`, {threads} threads x 12 independent FMA chains on "
                      f"{fastconv.get_isa()} vectors"}

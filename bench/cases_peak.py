"""The machine's reference rates: NumPy's float32 SGEMM (a benchmark case) and the peak FMA rate.

:func:`fma_peak` is what the convolution GFLOP/s are compared with: ``fastconv.measure_fma_peak(threads)``
when fastconv has it, else ``bench/fma_peak.c`` compiled here with the system C compiler (``$CC``, default
``cc``), once with ``-mavx2 -mfma`` and once with ``-mavx512f`` when the CPU has AVX-512; the faster width wins.
An SGEMM is not the peak: it also loads, packs and stores.
"""
import os
import subprocess
import tempfile

import numpy as np

import fastconv

from fcbench import Case, THREADS, randn, smoke, to_numpy

SGEMM_N = 2048
SMOKE_SGEMM_N = 64
HERE = os.path.dirname(os.path.abspath(__file__))
#: ``(name, compiler flags, /proc/cpuinfo flags the CPU needs)`` of the FMA-peak builds.
FMA_BUILDS = (("AVX2+FMA", ("-mavx2", "-mfma"), ("avx2", "fma")), ("AVX-512", ("-mavx512f",), ("avx512f",)))
#: FMA iterations per thread and repeats (the best repeat counts): ~0.1 s per repeat at 230 GFLOP/s.
FMA_ITERATIONS, FMA_REPEATS = 100_000_000, 5


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


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def fma_peak(threads=THREADS):
    """``{"gflops": best or None, "source": how it was measured, "builds": {name: GFLOP/s or reason}}``.

    Smoke runs (``FASTCONV_BENCH_SMOKE``) use 1/100 of the iterations: the number then means little.
    """
    if hasattr(fastconv, "measure_fma_peak"):
        value = fastconv.measure_fma_peak(threads)
        value = value.get("gflops") if isinstance(value, dict) else value
        return {"gflops": float(value), "source": f"fastconv.measure_fma_peak({threads})", "builds": {}}
    iterations = FMA_ITERATIONS // (100 if smoke() else 1)
    flags = _cpu_flags()
    builds = {}
    with tempfile.TemporaryDirectory(prefix="fma-peak-") as tmp:
        for name, cflags, needs in FMA_BUILDS:
            if not set(needs) <= flags:
                builds[name] = f"not measured: the CPU lacks {', '.join(sorted(set(needs) - flags))}"
                continue
            exe = os.path.join(tmp, "fma_peak_" + name.replace("+", "").replace("-", ""))
            cmd = [os.environ.get("CC", "cc"), "-O2", "-fopenmp", *cflags, os.path.join(HERE, "fma_peak.c"),
                   "-o", exe]
            run = [exe, str(threads), str(iterations), str(FMA_REPEATS)]
            try:
                for step in (cmd, run):
                    out = subprocess.run(step, check=True, capture_output=True, text=True)
                builds[name] = float(out.stdout.split()[0])
            except (OSError, subprocess.CalledProcessError) as e:
                detail = (getattr(e, "stderr", None) or str(e)).strip().splitlines() or ["no message"]
                builds[name] = f"not measured: `{os.path.basename(step[0])}` failed ({detail[-1]})"
    rates = [v for v in builds.values() if isinstance(v, float)]
    return {"gflops": max(rates) if rates else None,
            "source": f"bench/fma_peak.c, {threads} threads x 12 independent FMA chains", "builds": builds}

"""The shared machinery of the benchmark suite: thread setup, :class:`Case`, timing, agreement checks.

The cases themselves live in one module per kernel family -- ``cases_conv.py``, ``cases_pool.py``,
``cases_batchnorm.py``, ``cases_train.py`` (the model zoo's training steps) and ``cases_peak.py`` (NumPy SGEMM and
the FMA peak) -- and :func:`all_cases` gathers them. The ``bench_*.py`` files, ``bench/compare.py`` and
``tests/test_bench_smoke.py`` use them.

A :class:`Case` is one kernel on one shape. ``case.make(impl)`` prepares inputs for one implementation
(``"fastconv"``, ``"reference"`` = :mod:`fastconv.reference`, ``"torch"`` = PyTorch CPU) and returns
``(run, normalize)``: ``run()`` is the timed call, ``normalize(run())`` its outputs as a tuple of NumPy arrays in a
layout common to the three implementations (used to check that they agree).

Every case draws its inputs from a generator seeded by the case, so the three implementations get the same data.
``FASTCONV_BENCH_SMOKE=1`` swaps in tiny shapes (same geometries: kernel sizes, strides, paddings) for a quick
correctness run of the whole suite.

This module imports neither PyTorch nor pytest-benchmark at import time.
"""
import os
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

import fastconv

#: Threads for all three implementations (fastconv's OpenMP, NumPy's BLAS, PyTorch's intra-op pool).
THREADS = 2
IMPLS = ("fastconv", "reference", "torch")
DTYPE = np.float32


def smoke():
    """True when ``FASTCONV_BENCH_SMOKE`` asks for the tiny shape set."""
    return os.environ.get("FASTCONV_BENCH_SMOKE", "").strip() not in ("", "0")


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


# ============================================================================================ thread setup
_limits = []


def configure_threads(n=THREADS, torch=True):
    """``n`` threads everywhere: fastconv's OpenMP loops, NumPy's BLAS (threadpoolctl) and PyTorch.

    fastconv's convolutions call a *single-threaded* BLAS (SciPy's) inside their own OpenMP region, so only the
    BLAS libraries that are not the kernels' (i.e. NumPy's, which ``fastconv.reference`` uses) get ``n`` threads.
    ``torch=False`` leaves PyTorch alone (and unimported). Returns a dict describing what was set (stored in
    the benchmark JSON's machine info).
    """
    from threadpoolctl import ThreadpoolController

    torch_module = torch_or_none() if torch else None     # first, so that its libraries are loaded too
    if torch_module is not None:
        torch_module.set_num_threads(n)
    fastconv.set_num_threads(n)
    controller = ThreadpoolController()
    numpy_blas = [lib.filepath for lib in controller.select(user_api="blas").lib_controllers
                  if _role(lib.filepath) == "NumPy's BLAS"]
    if numpy_blas:
        _limits.append(controller.select(filepath=numpy_blas).limit(limits=n))
    return thread_report(torch)


def _role(filepath):
    """Who uses a library threadpoolctl found: fastconv's kernels, NumPy, PyTorch (by its file path)."""
    if filepath in set(fastconv.config().get("kernel_blas", [])):
        return "fastconv kernels' BLAS"
    parts = os.path.normpath(filepath or "").split(os.sep)
    if any(p.startswith("torch") for p in parts):
        return "PyTorch's library"
    if any(p.startswith("numpy") for p in parts):
        return "NumPy's BLAS"
    return "shared library"


def thread_report(torch=True):
    """Thread counts as actually set: fastconv, every BLAS / OpenMP library threadpoolctl sees, PyTorch."""
    from threadpoolctl import threadpool_info

    libs = []
    for info in threadpool_info():
        libs.append({
            "user_api": info.get("user_api"),
            "internal_api": info.get("internal_api"),
            "version": info.get("version"),
            "architecture": info.get("architecture"),
            "num_threads": info.get("num_threads"),
            "filepath": info.get("filepath"),
            "role": _role(info.get("filepath")) if info.get("user_api") != "openmp" else
                    "PyTorch's OpenMP runtime" if _role(info.get("filepath")).startswith("PyTorch")
                    else "OpenMP runtime",
        })
    torch_module = torch_or_none() if torch else None
    return {
        "fastconv_threads": fastconv.get_num_threads(),
        "torch_threads": torch_module.get_num_threads() if torch_module is not None else None,
        "libraries": libs,
    }


# ============================================================================================ the cases
@dataclass
class Case:
    family: str            # "conv", "maxpool", "avgpool", "batchnorm", "train", "sgemm"
    kernel: str            # row title, e.g. "conv2d forward"
    label: str             # shape, e.g. "100x1x28x28 k30 5x5 s1 p0"
    builder: object        # builder(case, impl) -> (run, normalize)
    params: dict = field(default_factory=dict)
    flops: float = 0.0     # floating-point operations of one call (convolutions, SGEMM)
    bytes: float = 0.0     # bytes read + written by one call (pooling, batch norm)
    impls: tuple = IMPLS
    #: ``(metric, "<=", value)`` targets checked by ``compare.py``: ``torch_ratio`` = fastconv / PyTorch time,
    #: ``baseline_ratio`` = this run's fastconv/PyTorch ratio over the one stored in ``bench/baseline_zoo.json``
    #: (training steps; value 1: not slower than before).
    targets: tuple = ()

    @property
    def group(self):
        return f"{self.kernel} | {self.label}"

    @property
    def seed(self):
        return zlib.crc32(self.group.encode())

    def rng(self):
        return np.random.default_rng(self.seed)

    def make(self, impl):
        if impl not in self.impls:
            raise ValueError(f"{self.group}: no {impl} implementation")
        return self.builder(self, impl)

    def info(self, impl):
        """``benchmark.extra_info`` for this case (read back by ``compare.py``)."""
        return {"family": self.family, "kernel": self.kernel, "shape": self.label, "impl": impl,
                "flops": self.flops, "bytes": self.bytes, "targets": [list(t) for t in self.targets],
                **{k: v for k, v in self.params.items() if isinstance(v, (int, float, str, bool))}}


def randn(rng, shape):
    return rng.standard_normal(shape, dtype=DTYPE)


def to_numpy(*arrays):
    out = []
    for a in arrays:
        if hasattr(a, "detach"):
            a = a.detach().numpy()
        out.append(np.asarray(a))
    return tuple(out)


def leaf(torch, a):
    """A PyTorch leaf tensor sharing ``a``'s memory, with ``requires_grad``."""
    return torch.from_numpy(a).requires_grad_(True)


# ============================================================================================ measuring
#: Seconds of timed calls aimed at per benchmark (FASTCONV_BENCH_BUDGET overrides; smoke runs, whose timings
#: mean nothing, 0.01 s); slow calls still get MIN_ROUNDS rounds.
BUDGET = float(os.environ.get("FASTCONV_BENCH_BUDGET", "0.01" if smoke() else "1.0"))
MIN_ROUNDS = 3
MAX_ROUNDS = 200
MIN_ROUND_SECONDS = 2e-3


def measure(benchmark, run):
    """Time ``run`` with ``benchmark.pedantic``, rounds sized from one untimed warm-up call.

    The warm-up call (which also allocates scratch buffers, starts thread pools) estimates the time ``t`` of a
    call; calls shorter than 2 ms are repeated within a round (``iterations``), and the number of rounds is
    ``BUDGET / t`` clamped to [3, 200]. So a 3 s reference convolution gets 3 rounds, a 50 us pooling 200 rounds
    of 40 calls.
    """
    if getattr(benchmark, "disabled", False):
        return benchmark(run)
    t0 = time.perf_counter()
    run()
    t = max(time.perf_counter() - t0, 1e-7)
    iterations = max(1, int(MIN_ROUND_SECONDS / t))
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, BUDGET / (t * iterations))))
    benchmark.extra_info["warmup_seconds"] = t
    return benchmark.pedantic(run, rounds=rounds, iterations=iterations, warmup_rounds=1 if t < 0.05 else 0)


def run_case(benchmark, case, impl):
    """Body of every benchmark test: group, metadata, skips, timing."""
    import pytest

    benchmark.group = case.group
    benchmark.extra_info.update(case.info(impl))
    if impl == "torch":
        pytest.importorskip("torch", reason="PyTorch is not installed: the PyTorch column is skipped")
    run, _ = case.make(impl)
    measure(benchmark, run)


def params(cases):
    """``pytest.param(case, impl)`` for every case and implementation, the three implementations of a shape
    next to each other."""
    import pytest

    return [pytest.param(case, impl, id=f"{case.kernel} {case.label} [{impl}]".replace(" ", "_"))
            for case in cases for impl in case.impls]


def all_cases():
    """Every case of the suite, family by family, in the order of the report."""
    import cases_batchnorm
    import cases_conv
    import cases_peak
    import cases_pool
    import cases_train

    return (cases_conv.conv_cases() + cases_pool.pool_cases("max") + cases_pool.pool_cases("avg")
            + cases_batchnorm.batchnorm_cases() + cases_train.train_cases() + cases_peak.peak_cases())


# ============================================================================================ agreement
#: Largest error of an implementation relative to ``max(1, max|reference|)`` (float32 sums of different lengths
#: and orders).
TOLERANCE = 1e-4


def check_agreement(case, impls=None):
    """Run every implementation once and compare its outputs with the reference's; returns the max errors.

    Raises ``AssertionError`` naming the case, implementation and output on a mismatch.
    """
    impls = [i for i in (impls or case.impls) if i in case.impls]
    baseline_impl = "reference" if "reference" in case.impls else case.impls[0]
    run, normalize = case.make(baseline_impl)
    expected = normalize(run())
    errors = {}
    for impl in impls:
        if impl == baseline_impl:
            continue
        run, normalize = case.make(impl)
        got = normalize(run())
        assert len(got) == len(expected), f"{case.group} [{impl}]: {len(got)} outputs, expected {len(expected)}"
        worst = 0.0
        for i, (g, e) in enumerate(zip(got, expected)):
            assert g.shape == e.shape, f"{case.group} [{impl}] output {i}: shape {g.shape} != {e.shape}"
            if np.issubdtype(e.dtype, np.integer):
                assert np.array_equal(g, e), f"{case.group} [{impl}] output {i}: integer outputs differ"
                continue
            scale = max(1.0, float(np.max(np.abs(e))) if e.size else 1.0)
            err = float(np.max(np.abs(g.astype(np.float64) - e))) / scale if e.size else 0.0
            assert err <= TOLERANCE, f"{case.group} [{impl}] output {i}: relative error {err:.3g}"
            worst = max(worst, err)
        errors[impl] = worst
    return errors

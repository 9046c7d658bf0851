"""Benchmark cases shared by the ``bench_*.py`` files, ``bench/compare.py`` and ``tests/test_bench_smoke.py``.

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
from fastconv import reference

#: Threads for all three implementations (fastconv's OpenMP, NumPy's BLAS, PyTorch's intra-op pool).
THREADS = 2
IMPLS = ("fastconv", "reference", "torch")
DTYPE = np.float32
EPS = 1e-5
LR = 0.01


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
    #: ``(metric, op, value)`` targets checked by ``compare.py``: ``torch_ratio`` = fastconv / PyTorch time,
    #: ``reference_speedup`` = reference / fastconv time, ``sgemm_fraction`` = fastconv GFLOP/s / SGEMM GFLOP/s.
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


def _randn(rng, shape):
    return rng.standard_normal(shape, dtype=DTYPE)


def _to_numpy(*arrays):
    out = []
    for a in arrays:
        if hasattr(a, "detach"):
            a = a.detach().numpy()
        out.append(np.asarray(a))
    return tuple(out)


def _leaf(torch, a):
    """A PyTorch leaf tensor sharing ``a``'s memory, with ``requires_grad``."""
    return torch.from_numpy(a).requires_grad_(True)


# --------------------------------------------------------------------------------------------- convolution
@dataclass(frozen=True)
class ConvShape:
    n: int
    c: int
    h: int
    w: int
    k: int
    kh: int
    kw: int
    stride: int
    pad: int

    @property
    def out_hw(self):
        return ((self.h + 2 * self.pad - self.kh) // self.stride + 1,
                (self.w + 2 * self.pad - self.kw) // self.stride + 1)

    @property
    def label(self):
        return (f"{self.n}x{self.c}x{self.h}x{self.w} k{self.k} {self.kh}x{self.kw} "
                f"s{self.stride} p{self.pad}")

    @property
    def flops(self):
        """Forward multiply-adds x 2: ``2 N K C kh kw OH OW``."""
        oh, ow = self.out_hw
        return 2.0 * self.n * self.k * self.c * self.kh * self.kw * oh * ow


CONV_SHAPES = [
    ConvShape(100, 1, 28, 28, 30, 5, 5, 1, 0),      # SimpleConvNet's convolution
    ConvShape(100, 16, 28, 28, 16, 3, 3, 1, 1),     # DeepConvNet, second convolution
    ConvShape(100, 32, 14, 14, 64, 3, 3, 1, 1),     # DeepConvNet, fifth convolution
    ConvShape(32, 64, 56, 56, 64, 3, 3, 1, 1),      # ResNet stage 1 3x3
    ConvShape(32, 3, 224, 224, 64, 7, 7, 2, 3),     # ResNet stem
    ConvShape(64, 128, 28, 28, 128, 1, 1, 1, 0),    # ResNet 1x1
]
SMOKE_CONV_SHAPES = [     # the same geometries, in the same order
    ConvShape(2, 1, 8, 8, 3, 5, 5, 1, 0),
    ConvShape(2, 3, 6, 6, 4, 3, 3, 1, 1),
    ConvShape(3, 4, 5, 5, 6, 3, 3, 1, 1),
    ConvShape(2, 4, 6, 6, 4, 3, 3, 1, 1),
    ConvShape(2, 3, 11, 11, 4, 7, 7, 2, 3),
    ConvShape(2, 5, 4, 4, 6, 1, 1, 1, 0),
]
#: Index of the convolution whose GFLOP/s is compared with SGEMM (target: >= 60 %): ResNet's 3x3.
RESNET_INDEX = 3


def _conv_inputs(case):
    s = case.params["shape"]
    rng = case.rng()
    x = _randn(rng, (s.n, s.c, s.h, s.w))
    w = _randn(rng, (s.k, s.c, s.kh, s.kw)) * np.float32(1 / np.sqrt(s.c * s.kh * s.kw))
    b = _randn(rng, (s.k,))
    dy = _randn(rng, (s.n, s.k) + s.out_hw)
    return s, x, w, b, dy


def _conv_forward(case, impl):
    s, x, w, b, _ = _conv_inputs(case)
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))

        def run():
            with torch.no_grad():
                return F.conv2d(xt, wt, bt, s.stride, s.pad)
        return run, _to_numpy
    module = fastconv if impl == "fastconv" else reference
    return (lambda: module.conv2d_forward(x, w, b, s.stride, s.pad)), _to_numpy


def _conv_fwd_bwd(case, impl):
    """Forward, then all three gradients ``(dx, dw, db)`` for a given ``dy``."""
    s, x, w, b, dy = _conv_inputs(case)
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, wt, bt = (_leaf(torch, a) for a in (x, w, b))
        dyt = torch.from_numpy(dy)

        def run():
            xt.grad = wt.grad = bt.grad = None
            F.conv2d(xt, wt, bt, s.stride, s.pad).backward(dyt)
            return xt.grad, wt.grad, bt.grad
        return run, lambda r: _to_numpy(*r)
    module = fastconv if impl == "fastconv" else reference

    def run():
        module.conv2d_forward(x, w, b, s.stride, s.pad)
        return module.conv2d_backward(dy, x, w, s.stride, s.pad)
    return run, lambda r: _to_numpy(*r)


def conv_cases():
    """Targets: fwd+bwd <= 1.0x PyTorch (<= 0.7x on the first two shapes); ResNet 3x3 >= 60 % of SGEMM."""
    shapes = SMOKE_CONV_SHAPES if smoke() else CONV_SHAPES
    cases = []
    for i, s in enumerate(shapes):
        targets = (("sgemm_fraction", ">=", 0.6),) if i == RESNET_INDEX else ()
        cases.append(Case("conv", "conv2d forward", s.label, _conv_forward, {"shape": s, "shape_index": i},
                          flops=s.flops, targets=targets))
    for i, s in enumerate(shapes):
        targets = (("torch_ratio", "<=", 0.7 if i < 2 else 1.0),)
        if i == RESNET_INDEX:
            targets += (("sgemm_fraction", ">=", 0.6),)
        # dx costs as much as the forward, and so does dw: 3x the forward (db is negligible).
        cases.append(Case("conv", "conv2d fwd+bwd", s.label, _conv_fwd_bwd, {"shape": s, "shape_index": i},
                          flops=3 * s.flops, targets=targets))
    return cases


# --------------------------------------------------------------------------------------------- pooling
@dataclass(frozen=True)
class PoolShape:
    kind: str      # "max", "avg" or "global" (global average pooling = avg pooling with a whole-plane window)
    n: int
    c: int
    h: int
    w: int
    k: int
    stride: int
    pad: int

    @property
    def out_hw(self):
        return ((self.h + 2 * self.pad - self.k) // self.stride + 1,
                (self.w + 2 * self.pad - self.k) // self.stride + 1)

    @property
    def label(self):
        if self.kind == "global":
            return f"{self.n}x{self.c}x{self.h}x{self.w} global"
        return f"{self.n}x{self.c}x{self.h}x{self.w} {self.k}x{self.k} s{self.stride} p{self.pad}"

    def bytes(self, backward):
        """Bytes read + written, float32 values and int64 max-pool indices (see ``docs/PERFORMANCE.md``).

        Forward: read ``x``, write ``y`` (+ the indices for max). Backward: read ``dy`` (+ the indices), write
        ``dx``. Each array counted once: the compulsory traffic, whatever a kernel really moves.
        """
        x = self.n * self.c * self.h * self.w
        y = self.n * self.c * self.out_hw[0] * self.out_hw[1]
        idx = 8 * y if self.kind == "max" else 0
        fwd = 4 * x + 4 * y + idx
        bwd = 4 * y + idx + 4 * x
        return float(fwd + bwd if backward else fwd)


POOL_SHAPES = [
    PoolShape("max", 100, 30, 24, 24, 2, 2, 0),
    PoolShape("max", 32, 64, 112, 112, 3, 2, 1),
    PoolShape("avg", 100, 30, 24, 24, 2, 2, 0),
    PoolShape("avg", 32, 64, 112, 112, 2, 2, 0),
    PoolShape("global", 32, 512, 7, 7, 7, 7, 0),
]
SMOKE_POOL_SHAPES = [
    PoolShape("max", 2, 3, 6, 6, 2, 2, 0),
    PoolShape("max", 2, 3, 9, 9, 3, 2, 1),
    PoolShape("avg", 2, 3, 6, 6, 2, 2, 0),
    PoolShape("avg", 2, 3, 8, 8, 2, 2, 0),
    PoolShape("global", 2, 5, 3, 3, 3, 3, 0),
]


def _pool_inputs(case):
    s = case.params["shape"]
    rng = case.rng()
    return s, _randn(rng, (s.n, s.c, s.h, s.w)), _randn(rng, (s.n, s.c) + s.out_hw)


def _maxpool_forward(case, impl):
    """``(y, indices)``; PyTorch with ``return_indices=True`` (the indices are what the backward needs)."""
    s, x, _ = _pool_inputs(case)
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt = torch.from_numpy(x)

        def run():
            with torch.no_grad():
                return F.max_pool2d(xt, s.k, s.stride, s.pad, return_indices=True)
        return run, lambda r: _to_numpy(*r)
    module = fastconv if impl == "fastconv" else reference
    return (lambda: module.maxpool2d_forward(x, s.k, s.stride, s.pad)), lambda r: _to_numpy(*r)


def _maxpool_fwd_bwd(case, impl):
    s, x, dy = _pool_inputs(case)
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, dyt = _leaf(torch, x), torch.from_numpy(dy)

        def run():
            xt.grad = None
            F.max_pool2d(xt, s.k, s.stride, s.pad).backward(dyt)
            return xt.grad
        return run, _to_numpy
    module = fastconv if impl == "fastconv" else reference

    def run():
        _, indices = module.maxpool2d_forward(x, s.k, s.stride, s.pad)
        return module.maxpool2d_backward(dy, indices, x.shape)
    return run, _to_numpy


def _torch_avgpool(F, s):
    if s.kind == "global":
        return lambda t: F.adaptive_avg_pool2d(t, 1)
    return lambda t: F.avg_pool2d(t, s.k, s.stride, s.pad)


def _avgpool_forward(case, impl):
    s, x, _ = _pool_inputs(case)
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, pool = torch.from_numpy(x), _torch_avgpool(F, s)

        def run():
            with torch.no_grad():
                return pool(xt)
        return run, _to_numpy
    module = fastconv if impl == "fastconv" else reference
    return (lambda: module.avgpool2d_forward(x, s.k, s.stride, s.pad)), _to_numpy


def _avgpool_fwd_bwd(case, impl):
    s, x, dy = _pool_inputs(case)
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, dyt, pool = _leaf(torch, x), torch.from_numpy(dy), _torch_avgpool(F, s)

        def run():
            xt.grad = None
            pool(xt).backward(dyt)
            return xt.grad
        return run, _to_numpy
    module = fastconv if impl == "fastconv" else reference

    def run():
        module.avgpool2d_forward(x, s.k, s.stride, s.pad)
        return module.avgpool2d_backward(dy, x.shape, s.k, s.stride, s.pad)
    return run, _to_numpy


def pool_cases(kind):
    """``kind``: ``"max"`` or ``"avg"`` (the latter includes global average pooling)."""
    cases = []
    shapes = [s for s in (SMOKE_POOL_SHAPES if smoke() else POOL_SHAPES)
              if s.kind == kind or (kind == "avg" and s.kind == "global")]
    fwd, fwd_bwd = (_maxpool_forward, _maxpool_fwd_bwd) if kind == "max" else (_avgpool_forward, _avgpool_fwd_bwd)
    for backward, builder in ((False, fwd), (True, fwd_bwd)):
        for s in shapes:
            name = "global avgpool" if s.kind == "global" else f"{kind}pool2d"
            kernel = f"{name} {'fwd+bwd' if backward else 'forward'}"
            if kind == "max":
                targets = () if backward else (("torch_ratio", "<=", 0.3),)
            else:
                targets = (("torch_ratio", "<=", 1.0),) if backward else ()
            cases.append(Case(f"{kind}pool", kernel, s.label, builder, {"shape": s}, bytes=s.bytes(backward),
                              targets=targets))
    return cases


# --------------------------------------------------------------------------------------------- batch norm
BN_SHAPES = [(100, 16, 28, 28), (32, 64, 56, 56), (100, 100)]
SMOKE_BN_SHAPES = [(3, 4, 5, 5), (2, 3, 4, 4), (6, 5)]


def _bn_inputs(case):
    shape = case.params["shape"]
    rng = case.rng()
    x = _randn(rng, shape) * np.float32(2) + np.float32(0.5)
    gamma = _randn(rng, (shape[1],))
    beta = _randn(rng, (shape[1],))
    dy = _randn(rng, shape)
    return x, gamma, beta, dy


def _bn_forward(case, impl):
    """Training-mode forward (batch statistics); compared on ``y``."""
    x, gamma, beta, _ = _bn_inputs(case)
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, gt, bt = (torch.from_numpy(a) for a in (x, gamma, beta))

        def run():
            with torch.no_grad():
                return F.batch_norm(xt, None, None, gt, bt, training=True, eps=EPS)
        return run, _to_numpy
    module = fastconv if impl == "fastconv" else reference
    return (lambda: module.batchnorm_forward(x, gamma, beta, EPS)), lambda r: _to_numpy(r[0])


def _bn_fwd_bwd(case, impl):
    x, gamma, beta, dy = _bn_inputs(case)
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, gt, bt = (_leaf(torch, a) for a in (x, gamma, beta))
        dyt = torch.from_numpy(dy)

        def run():
            xt.grad = gt.grad = bt.grad = None
            F.batch_norm(xt, None, None, gt, bt, training=True, eps=EPS).backward(dyt)
            return xt.grad, gt.grad, bt.grad
        return run, lambda r: _to_numpy(*r)
    module = fastconv if impl == "fastconv" else reference

    def run():
        _, mean, invstd = module.batchnorm_forward(x, gamma, beta, EPS)
        return module.batchnorm_backward(dy, x, gamma, mean, invstd)
    return run, lambda r: _to_numpy(*r)


def _bn_label(shape):
    return "x".join(map(str, shape)) + (" (2-D)" if len(shape) == 2 else "")


def batchnorm_cases():
    shapes = SMOKE_BN_SHAPES if smoke() else BN_SHAPES
    cases = []
    for backward, builder in ((False, _bn_forward), (True, _bn_fwd_bwd)):
        for shape in shapes:
            size = float(np.prod(shape))
            # forward: read x, write y; backward: read dy and x, write dx (per-channel vectors neglected)
            nbytes = 4 * size * (2 + 3 if backward else 2)
            kernel = f"batchnorm {'fwd+bwd' if backward else 'forward'}"
            cases.append(Case("batchnorm", kernel, _bn_label(shape), builder, {"shape": shape}, bytes=nbytes,
                              targets=(("torch_ratio", "<=", 1.0),) if backward else ()))
    return cases


# ============================================================================================ training steps
BATCH = 100
SMOKE_BATCH = 4


def build_dl2(net, seed=0):
    """SimpleConvNet or DeepConvNet as a built ``dl2.Sequential`` (He initialisation, float32, 1x28x28 input)."""
    import dl2

    if net == "SimpleConvNet":
        layers = [dl2.Conv2D(30, 5), dl2.ReLU(), dl2.MaxPool2D(2), dl2.Flatten(),
                  dl2.Linear(100), dl2.ReLU(), dl2.Linear(10)]
    elif net == "DeepConvNet":
        layers = []
        for pair in ((16, 16), (32, 32), (64, 64)):
            for k in pair:
                layers += [dl2.Conv2D(k, 3, padding=1), dl2.ReLU()]
            layers.append(dl2.MaxPool2D(2))
        layers += [dl2.Flatten(), dl2.Linear(50), dl2.ReLU(), dl2.Dropout(0.5, seed=seed + 1), dl2.Linear(10)]
    else:
        raise ValueError(f"unknown net {net!r}")
    model = dl2.Sequential(*layers, input_shape=(1, 28, 28), dtype=DTYPE, seed=seed)
    model.needs_input_grad = False      # as dl2.Trainer does: nobody needs the gradient wrt the images
    return model


class Dl2Step:
    """One SGD training step of a dl2 model: forward, softmax cross-entropy, backward, update."""

    def __init__(self, model, lr=LR):
        import dl2

        self.model = model
        self.loss = dl2.SoftmaxCrossEntropy()
        self.opt = dl2.optim.SGD(model.parameters(), lr=lr)

    def __call__(self, x, t):
        self.opt.zero_grad()
        value = self.loss(self.model.forward(x), t)
        self.model.backward(self.loss.backward())
        self.opt.step()
        return value

    def params(self):
        return [p.data for p in self.model.parameters()]


class ReferenceStep:
    """The same training step in plain NumPy on the :mod:`fastconv.reference` kernels.

    Convolutions use ``reference.conv2d_forward``/``conv2d_backward`` (the first layer only computes ``dw`` and
    ``db``, from ``reference.im2col``, as dl2 and PyTorch skip the image gradient), max pooling
    ``reference.maxpool2d_*``; ReLU, Linear, Dropout, softmax cross-entropy and SGD are NumPy one-liners.
    Weights are copied from a dl2 model; Dropout draws its masks like dl2's (same seed, same masks).
    """

    def __init__(self, dl2_model, lr=LR):
        self.lr = lr
        self.layers = []
        for layer in dl2_model.layers:
            kind = type(layer).__name__
            spec = {"kind": kind}
            if kind in ("Conv2D", "Linear"):
                spec["w"] = layer.weight.data.copy()
                spec["b"] = layer.bias.data.copy()
            if kind == "Conv2D":
                spec["stride"], spec["padding"] = layer.stride, layer.padding
            elif kind == "MaxPool2D":
                spec["k"], spec["stride"], spec["padding"] = layer.kernel_size, layer.stride, layer.padding
            elif kind == "Dropout":
                spec["p"] = layer.p
                spec["rng"] = np.random.default_rng(layer._init_args.get("seed"))
            elif kind not in ("ReLU", "Flatten", "Linear", "Conv2D"):
                raise ValueError(f"ReferenceStep: unsupported layer {kind}")
            self.layers.append(spec)

    def __call__(self, x, t):
        caches = []
        a = x
        for spec in self.layers:                                   # ---- forward
            kind = spec["kind"]
            if kind == "Conv2D":
                caches.append(a)
                a = reference.conv2d_forward(a, spec["w"], spec["b"], spec["stride"], spec["padding"])
            elif kind == "ReLU":
                caches.append(a > 0)
                a = np.maximum(a, 0)
            elif kind == "MaxPool2D":
                y, idx = reference.maxpool2d_forward(a, spec["k"], spec["stride"], spec["padding"])
                caches.append((idx, a.shape))
                a = y
            elif kind == "Flatten":
                caches.append(a.shape)
                a = a.reshape(a.shape[0], -1)
            elif kind == "Linear":
                caches.append(a)
                a = a @ spec["w"] + spec["b"]
            elif kind == "Dropout":
                keep = spec["rng"].random(a.shape, dtype=np.float32) >= spec["p"]
                scale = keep.astype(a.dtype) * np.float32(1 / (1 - spec["p"]))
                caches.append(scale)
                a = a * scale
        n = a.shape[0]                                              # ---- softmax cross-entropy (mean)
        z = a - a.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = float(-logp[np.arange(n), t].astype(np.float64).mean())
        g = np.exp(logp)
        g[np.arange(n), t] -= 1
        g /= n
        grads = [None] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):              # ---- backward
            spec, cache = self.layers[i], caches[i]
            kind = spec["kind"]
            if kind == "Conv2D":
                if i == 0:    # first layer: dw and db only
                    k = spec["w"].shape[0]
                    rows = g.transpose(0, 2, 3, 1).reshape(-1, k)
                    cols = reference.im2col(cache, spec["w"].shape[2:], spec["stride"], spec["padding"])
                    grads[i] = ((rows.T @ cols).reshape(spec["w"].shape), g.sum(axis=(0, 2, 3)))
                    g = None
                else:
                    g, dw, db = reference.conv2d_backward(g, cache, spec["w"], spec["stride"], spec["padding"])
                    grads[i] = (dw, db)
            elif kind == "ReLU":
                g = g * cache
            elif kind == "MaxPool2D":
                g = reference.maxpool2d_backward(g, *cache)
            elif kind == "Flatten":
                g = g.reshape(cache)
            elif kind == "Linear":
                grads[i] = (cache.T @ g, g.sum(axis=0))
                g = g @ spec["w"].T
            elif kind == "Dropout":
                g = g * cache
        for spec, grad in zip(self.layers, grads):                  # ---- SGD
            if grad is not None:
                spec["w"] -= np.float32(self.lr) * grad[0]
                spec["b"] -= np.float32(self.lr) * grad[1]
        return loss

    def params(self):
        out = []
        for spec in self.layers:
            if "w" in spec:
                out += [spec["w"], spec["b"]]
        return out


class TorchStep:
    """The same network in ``torch.nn`` with the dl2 model's initial weights, ``torch.optim.SGD``."""

    def __init__(self, dl2_model, lr=LR):
        import torch
        from torch import nn

        self.torch = torch
        mods = []
        c = dl2_model.input_shape[0]
        for layer in dl2_model.layers:
            kind = type(layer).__name__
            if kind == "Conv2D":
                m = nn.Conv2d(c, layer.out_channels, layer.kernel_size, layer.stride, layer.padding)
                c = layer.out_channels
                with torch.no_grad():
                    m.weight.copy_(torch.from_numpy(layer.weight.data))
                    m.bias.copy_(torch.from_numpy(layer.bias.data))
            elif kind == "Linear":
                m = nn.Linear(layer.in_features, layer.out_features)
                with torch.no_grad():
                    m.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.weight.data.T)))
                    m.bias.copy_(torch.from_numpy(layer.bias.data))
            elif kind == "ReLU":
                m = nn.ReLU()
            elif kind == "MaxPool2D":
                m = nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
            elif kind == "Flatten":
                m = nn.Flatten()
            elif kind == "Dropout":
                m = nn.Dropout(layer.p)
            else:
                raise ValueError(f"TorchStep: unsupported layer {kind}")
            mods.append(m)
        self.model = nn.Sequential(*mods).float()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr)
        self._inputs = None

    def __call__(self, x, t):
        torch = self.torch
        if self._inputs is None or self._inputs[0] is not x:
            self._inputs = (x, torch.from_numpy(x), torch.from_numpy(np.asarray(t, dtype=np.int64)))
        _, xt, tt = self._inputs
        self.opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(self.model(xt), tt)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def params(self):
        out = []
        for m in self.model:
            if hasattr(m, "weight"):
                w = m.weight.detach().numpy()
                out += [w.T if w.ndim == 2 else w, m.bias.detach().numpy()]
        return out


def make_step(net, impl, batch=BATCH, seed=0):
    """``(step, x, t)``: a training step of ``impl`` (``fastconv`` = dl2) and a fixed random batch."""
    model = build_dl2(net, seed)
    step = {"fastconv": Dl2Step, "reference": ReferenceStep, "torch": TorchStep}[impl](model)
    rng = np.random.default_rng(seed + 100)
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    t = rng.integers(0, 10, batch)
    return step, x, t


def _train_step(case, impl):
    step, x, t = make_step(case.params["net"], impl, case.params["batch"])
    return (lambda: step(x, t)), lambda loss: (np.asarray(loss),)


def train_cases():
    batch = SMOKE_BATCH if smoke() else BATCH
    targets = (("torch_ratio", "<=", 1.0), ("reference_speedup", ">=", 5.0))
    return [Case("train", "training step", f"{net} batch {batch}", _train_step, {"net": net, "batch": batch},
                 targets=targets) for net in ("SimpleConvNet", "DeepConvNet")]


# ============================================================================================ SGEMM
SGEMM_N = 2048
SMOKE_SGEMM_N = 64


def _sgemm(case, impl):
    n = case.params["n"]
    rng = case.rng()
    a, b = _randn(rng, (n, n)), _randn(rng, (n, n))
    out = np.empty((n, n), dtype=DTYPE)
    return (lambda: np.matmul(a, b, out=out)), _to_numpy


def sgemm_case():
    """NumPy float32 ``n x n`` matmul on NumPy's BLAS with ``THREADS`` threads: the machine's GEMM roofline."""
    n = SMOKE_SGEMM_N if smoke() else SGEMM_N
    return Case("sgemm", "numpy sgemm", f"{n}x{n} @ {n}x{n}", _sgemm, {"n": n}, flops=2.0 * n ** 3,
                impls=("numpy",))


def all_cases():
    return (conv_cases() + pool_cases("max") + pool_cases("avg") + batchnorm_cases() + train_cases()
            + [sgemm_case()])


# ============================================================================================ measuring
#: Seconds of timed calls aimed at per benchmark (FASTCONV_BENCH_BUDGET overrides); slow calls still get
#: MIN_ROUNDS rounds.
BUDGET = float(os.environ.get("FASTCONV_BENCH_BUDGET", "1.0"))
MIN_ROUNDS = 3
MAX_ROUNDS = 200
MIN_ROUND_SECONDS = 2e-3


def measure(benchmark, run, budget=None):
    """Time ``run`` with ``benchmark.pedantic``, rounds sized from one untimed warm-up call.

    The warm-up call (which also allocates scratch buffers, starts thread pools) estimates the time ``t`` of a
    call; calls shorter than 2 ms are repeated within a round (``iterations``), and the number of rounds is
    ``budget / t`` clamped to [3, 200]. So a 3 s reference convolution gets 3 rounds, a 50 us pooling 200 rounds
    of 40 calls.
    """
    if getattr(benchmark, "disabled", False):
        return benchmark(run)
    budget = BUDGET if budget is None else budget
    t0 = time.perf_counter()
    run()
    t = max(time.perf_counter() - t0, 1e-7)
    iterations = max(1, int(MIN_ROUND_SECONDS / t))
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, budget / (t * iterations))))
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


# ============================================================================================ agreement
def tolerance(case):
    """Absolute tolerance relative to the largest reference value (float32 sums of different lengths/orders)."""
    return 2e-3 if case.family == "train" else 1e-4


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
            assert err <= tolerance(case), f"{case.group} [{impl}] output {i}: relative error {err:.3g}"
            worst = max(worst, err)
        errors[impl] = worst
    return errors


def check_training_agreement(net, impls=("fastconv", "reference", "torch"), steps=2, batch=SMOKE_BATCH):
    """``steps`` SGD steps from the same weights: losses and updated parameters agree with dl2's.

    dl2 vs reference runs in training mode (same Dropout masks by construction). PyTorch's Dropout masks cannot
    match, so dl2 vs PyTorch runs with both models in eval mode (Dropout is then the identity; these nets have
    no other train/eval difference).
    """
    results = {}
    for impl in impls:
        for mode in (("train", "eval") if impl == "fastconv" else ("train",) if impl == "reference" else ("eval",)):
            step, x, t = make_step(net, impl, batch)
            if mode == "eval":
                step.model.eval()
            losses = [step(x, t) for _ in range(steps)]
            results[(impl, mode)] = (np.array(losses), [np.array(p) for p in step.params()])
    base = {"train": results[("fastconv", "train")], "eval": results[("fastconv", "eval")]}
    for (impl, mode), (losses, params_) in results.items():
        if impl == "fastconv":
            continue
        ref_losses, ref_params = base[mode]
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-4, atol=1e-5,
                                   err_msg=f"{net}: {impl} losses differ from dl2's ({mode} mode)")
        assert len(params_) == len(ref_params)
        for i, (p, q) in enumerate(zip(params_, ref_params)):
            assert p.shape == q.shape, f"{net}: {impl} parameter {i} shape {p.shape} != {q.shape}"
            np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-4,
                                       err_msg=f"{net}: {impl} parameter {i} after {steps} steps ({mode} mode)")
    return {k: v[0] for k, v in results.items()}

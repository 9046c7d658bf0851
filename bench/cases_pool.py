"""Pooling cases: max pooling, average pooling and global average pooling, forward and forward + backward.

Targets (fastconv / PyTorch): max pool forward <= 0.3x, average pools forward + backward <= 1.0x.
"""
from dataclasses import dataclass

import fastconv
from fastconv import reference

from fcbench import Case, leaf, randn, smoke, to_numpy


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
    return s, randn(rng, (s.n, s.c, s.h, s.w)), randn(rng, (s.n, s.c) + s.out_hw)


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
        return run, lambda r: to_numpy(*r)
    module = fastconv if impl == "fastconv" else reference
    return (lambda: module.maxpool2d_forward(x, s.k, s.stride, s.pad)), lambda r: to_numpy(*r)


def _maxpool_fwd_bwd(case, impl):
    s, x, dy = _pool_inputs(case)
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, dyt = leaf(torch, x), torch.from_numpy(dy)

        def run():
            xt.grad = None
            F.max_pool2d(xt, s.k, s.stride, s.pad).backward(dyt)
            return xt.grad
        return run, to_numpy
    module = fastconv if impl == "fastconv" else reference

    def run():
        _, indices = module.maxpool2d_forward(x, s.k, s.stride, s.pad)
        return module.maxpool2d_backward(dy, indices, x.shape)
    return run, to_numpy


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
        return run, to_numpy
    module = fastconv if impl == "fastconv" else reference
    return (lambda: module.avgpool2d_forward(x, s.k, s.stride, s.pad)), to_numpy


def _avgpool_fwd_bwd(case, impl):
    s, x, dy = _pool_inputs(case)
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, dyt, pool = leaf(torch, x), torch.from_numpy(dy), _torch_avgpool(F, s)

        def run():
            xt.grad = None
            pool(xt).backward(dyt)
            return xt.grad
        return run, to_numpy
    module = fastconv if impl == "fastconv" else reference

    def run():
        module.avgpool2d_forward(x, s.k, s.stride, s.pad)
        return module.avgpool2d_backward(dy, x.shape, s.k, s.stride, s.pad)
    return run, to_numpy


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

"""Convolution cases: ``conv2d forward`` and ``conv2d fwd+bwd`` (dx, dw, db) on fastconv / reference / PyTorch.

The shapes are the 3x3 stride-1 layers of modern small CNNs at batch 128 (16 channels at 28x28 down to 256 at
3x3), the convolutions of the book's networks, a ResNet-18 3x3 layer, the ResNet 7x7/2 stem and two 1x1 layers.
Targets (same-run ratio of medians, fastconv / PyTorch, forward and forward + backward alike): <= 0.8x on every
3x3 stride-1 shape, <= 0.7x on the 5x5 one, <= 1.0x on the stem and the 1x1 shapes (see :func:`torch_target`).
"""
from dataclasses import dataclass

import numpy as np

import fastconv
from fastconv import reference

from fcbench import Case, leaf, randn, smoke, to_numpy


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
    def x_shape(self):
        return (self.n, self.c, self.h, self.w)

    @property
    def w_shape(self):
        return (self.k, self.c, self.kh, self.kw)

    @property
    def label(self):
        return (f"{self.n}x{self.c}x{self.h}x{self.w} k{self.k} {self.kh}x{self.kw} "
                f"s{self.stride} p{self.pad}")

    @property
    def flops(self):
        """Forward multiply-adds x 2 by the direct-convolution count: ``2 N K C kh kw OH OW``."""
        oh, ow = self.out_hw
        return 2.0 * self.n * self.k * self.c * self.kh * self.kw * oh * ow


#: ``(full size, smoke size)`` pairs; a smoke shape keeps the kernel size, stride and padding of its full one.
CONV_SHAPES = [
    (ConvShape(128, 16, 28, 28, 16, 3, 3, 1, 1), ConvShape(2, 3, 7, 7, 3, 3, 3, 1, 1)),       # ResNet-20 stage 1
    (ConvShape(128, 32, 28, 28, 32, 3, 3, 1, 1), ConvShape(2, 4, 6, 6, 4, 3, 3, 1, 1)),       # small VGG stage 1
    (ConvShape(128, 64, 14, 14, 64, 3, 3, 1, 1), ConvShape(2, 5, 5, 5, 5, 3, 3, 1, 1)),       # ResNet-20 stage 3
    (ConvShape(128, 128, 7, 7, 128, 3, 3, 1, 1), ConvShape(2, 6, 4, 4, 6, 3, 3, 1, 1)),       # small VGG stage 3
    (ConvShape(128, 256, 3, 3, 256, 3, 3, 1, 1), ConvShape(2, 7, 3, 3, 7, 3, 3, 1, 1)),       # small VGG stage 4
    (ConvShape(100, 16, 28, 28, 16, 3, 3, 1, 1), ConvShape(2, 3, 6, 6, 4, 3, 3, 1, 1)),       # DeepConvNet conv 2
    (ConvShape(100, 32, 14, 14, 64, 3, 3, 1, 1), ConvShape(3, 4, 5, 5, 6, 3, 3, 1, 1)),       # DeepConvNet conv 5
    (ConvShape(32, 64, 56, 56, 64, 3, 3, 1, 1), ConvShape(2, 4, 6, 6, 5, 3, 3, 1, 1)),        # ResNet-18 stage 1
    (ConvShape(100, 1, 28, 28, 30, 5, 5, 1, 0), ConvShape(2, 1, 8, 8, 3, 5, 5, 1, 0)),        # SimpleConvNet
    (ConvShape(32, 3, 224, 224, 64, 7, 7, 2, 3), ConvShape(2, 3, 11, 11, 4, 7, 7, 2, 3)),     # ResNet stem
    (ConvShape(64, 128, 28, 28, 128, 1, 1, 1, 0), ConvShape(2, 5, 4, 4, 6, 1, 1, 1, 0)),      # ResNet 1x1
    (ConvShape(128, 32, 14, 14, 64, 1, 1, 2, 0), ConvShape(2, 4, 6, 6, 5, 1, 1, 2, 0)),       # ResNet-20 shortcut
]


def shapes():
    """The convolution shapes of this run (smoke or full size)."""
    return [small if smoke() else full for full, small in CONV_SHAPES]


def torch_target(s):
    """Largest fastconv / PyTorch time ratio aimed at for shape ``s`` (forward and forward + backward)."""
    if (s.kh, s.kw) == (3, 3) and s.stride == 1:
        return 0.8
    if (s.kh, s.kw) == (5, 5):
        return 0.7
    return 1.0


def algorithm(s):
    """The algorithm fastconv picks for ``s`` (``fastconv.conv_algorithm``), or None if it does not say."""
    if not hasattr(fastconv, "conv_algorithm"):
        return None
    return str(fastconv.conv_algorithm(s.x_shape, s.w_shape, s.stride, s.pad))


def conv_inputs(s, rng, dtype=np.float32):
    """``(x, w, b, dy)`` for shape ``s``: unit normals, ``w`` scaled by ``1/sqrt(C kh kw)``."""
    x = randn(rng, s.x_shape)
    w = randn(rng, s.w_shape) * np.float32(1 / np.sqrt(s.c * s.kh * s.kw))
    b = randn(rng, (s.k,))
    dy = randn(rng, (s.n, s.k) + s.out_hw)
    return tuple(a.astype(dtype, copy=False) for a in (x, w, b, dy))


def _conv_forward(case, impl):
    s = case.params["shape"]
    x, w, b, _ = conv_inputs(s, case.rng())
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))

        def run():
            with torch.no_grad():
                return F.conv2d(xt, wt, bt, s.stride, s.pad)
        return run, to_numpy
    module = fastconv if impl == "fastconv" else reference
    return (lambda: module.conv2d_forward(x, w, b, s.stride, s.pad)), to_numpy


def _conv_fwd_bwd(case, impl):
    """Forward, then all three gradients ``(dx, dw, db)`` for a given ``dy``."""
    s = case.params["shape"]
    x, w, b, dy = conv_inputs(s, case.rng())
    if impl == "torch":
        import torch
        import torch.nn.functional as F
        xt, wt, bt = (leaf(torch, a) for a in (x, w, b))
        dyt = torch.from_numpy(dy)

        def run():
            xt.grad = wt.grad = bt.grad = None
            F.conv2d(xt, wt, bt, s.stride, s.pad).backward(dyt)
            return xt.grad, wt.grad, bt.grad
        return run, lambda r: to_numpy(*r)
    module = fastconv if impl == "fastconv" else reference

    def run():
        module.conv2d_forward(x, w, b, s.stride, s.pad)
        return module.conv2d_backward(dy, x, w, s.stride, s.pad)
    return run, lambda r: to_numpy(*r)


def conv_cases():
    """Forward cases, then forward + backward cases, shape by shape."""
    cases = []
    for backward, builder in ((False, _conv_forward), (True, _conv_fwd_bwd)):
        for s in shapes():
            params = {"shape": s, "algorithm": algorithm(s)}
            # dx costs as much as the forward, and so does dw: 3x the forward (db is negligible).
            cases.append(Case("conv", f"conv2d {'fwd+bwd' if backward else 'forward'}", s.label, builder, params,
                              flops=(3 if backward else 1) * s.flops,
                              targets=(("torch_ratio", "<=", torch_target(s)),)))
    return cases

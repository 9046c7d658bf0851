"""2-D convolution (on the kernel backend, :mod:`dl2.backend`)."""
import numpy as np

import fastconv

from .. import init
from ..backend import get_backend
from ..checks import integer
from ..module import Module, Parameter
from ._base import LayerMixin, expect_rank, expect_size, window_output_hw

__all__ = ["Conv2D"]


class Conv2D(LayerMixin, Module):
    """Cross-correlation ``x (N, C, H, W)`` -> ``y (N, K, OH, OW)`` with ``OH = (H + 2*padding - kh)//stride + 1``.

    ``weight (K, C, kh, kw)`` (initialised with ``fan_in = C*kh*kw``), ``bias (K,)`` (not regularised).
    ``kernel_size``, ``stride`` and ``padding`` are ints or ``(h, w)`` pairs; padding is zeros.
    ``in_channels`` is inferred at build; if given it must match. With ``needs_input_grad = False`` the kernel
    skips the input gradient and ``backward`` returns ``None``.
    """

    def __init__(self, out_channels, kernel_size, stride=1, padding=0, bias=True, weight_init="he",
                 in_channels=None):
        super().__init__()
        self.out_channels = integer(out_channels, "Conv2D", "out_channels", 1)
        self.kernel_size = fastconv.pair(kernel_size, "Conv2D kernel_size", 1)
        self.stride = fastconv.pair(stride, "Conv2D stride", 1)
        self.padding = fastconv.pair(padding, "Conv2D padding", 0)
        self.in_channels = None
        self._given_in_channels = None if in_channels is None else integer(in_channels, "Conv2D", "in_channels", 1)
        self.use_bias = bool(bias)
        self._weight_init = init.get(weight_init)
        self.weight = None
        self.bias = None

    def _build(self, input_shape, dtype, rng):
        expect_rank(self, input_shape, 3, "(C, H, W)")
        c, h, w = input_shape
        expect_size(self, self._given_in_channels, c, "in_channels", input_shape)
        self.in_channels = c
        oh, ow = window_output_hw(self, (h, w), self.kernel_size, self.stride, self.padding)
        kh, kw = self.kernel_size
        shape = (self.out_channels, c, kh, kw)
        self.weight = Parameter(self._weight_init(shape, c * kh * kw, self.out_channels * kh * kw, rng, dtype))
        if self.use_bias:
            self.bias = Parameter(np.zeros(self.out_channels, dtype=dtype), regularize=False)
        return (self.out_channels, oh, ow)

    def forward(self, x):
        x = self._input(x, "channels")
        self._x = x
        bias = self.bias.data if self.bias is not None else None
        return get_backend().conv2d_forward(x, self.weight.data, bias, self.stride, self.padding)

    def backward(self, dy):
        dx, dw, db = get_backend().conv2d_backward(dy, self._x, self.weight.data, self.stride, self.padding,
                                                   need_dx=self.needs_input_grad)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

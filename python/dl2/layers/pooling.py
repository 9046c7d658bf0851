"""Pooling layers: max, average and power-average (LP) over windows, and global average/max."""
import numpy as np

import fastconv

from ..backend import get_backend
from ..checks import number
from ..module import Module
from ._base import LayerMixin, expect_rank, window_output_hw

__all__ = ["MaxPool2D", "AvgPool2D", "LPPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D"]


class _Pool2D(LayerMixin):
    """Window geometry shared by the windowed pools: ``kernel_size``, ``stride`` (None -> kernel_size), ``padding``."""

    def _geometry(self, kernel_size, stride, padding):
        name = type(self).__name__
        self.kernel_size = fastconv.pair(kernel_size, f"{name} kernel_size", 1)
        self.stride = self.kernel_size if stride is None else fastconv.pair(stride, f"{name} stride", 1)
        self.padding = fastconv.pair(padding, f"{name} padding", 0)
        if any(p > k // 2 for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"{name}: padding {self.padding} must be at most half the kernel size {self.kernel_size}")

    def _build(self, input_shape, dtype, rng):
        expect_rank(self, input_shape, 3, "(C, H, W)")
        c, h, w = input_shape
        return (c,) + window_output_hw(self, (h, w), self.kernel_size, self.stride, self.padding)


class MaxPool2D(_Pool2D, Module):
    """Max over ``kernel_size`` windows: ``(N, C, H, W)`` -> ``(N, C, OH, OW)``; padding counts as -inf.

    The gradient goes to the first maximum of each window (row-major), as in fastconv and its reference.
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self._geometry(kernel_size, stride, padding)

    def forward(self, x):
        x = self._input(x, "channels")
        y, self._indices = get_backend().maxpool2d_forward(x, self.kernel_size, self.stride, self.padding)
        self._x_shape = x.shape
        return y

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        return get_backend().maxpool2d_backward(dy, self._indices, self._x_shape)


class AvgPool2D(_Pool2D, Module):
    """Mean over ``kernel_size`` windows: ``(N, C, H, W)`` -> ``(N, C, OH, OW)``; zero padding.

    With ``count_include_pad=False`` the divisor is the number of window positions inside the input.
    """

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__()
        self._geometry(kernel_size, stride, padding)
        if not isinstance(count_include_pad, (bool, np.bool_)):
            raise TypeError(f"AvgPool2D: count_include_pad must be True or False, got {count_include_pad!r}")
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        x = self._input(x, "channels")
        self._x_shape = x.shape
        return get_backend().avgpool2d_forward(x, self.kernel_size, self.stride, self.padding,
                                               self.count_include_pad)

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        return get_backend().avgpool2d_backward(dy, self._x_shape, self.kernel_size, self.stride, self.padding,
                                           self.count_include_pad)


class LPPool2D(_Pool2D, Module):
    """Power-sum pooling ``y = (sum_window x**p) ** (1/p)`` (PyTorch's LPPool2d: a sum, not an average).

    ``(N, C, H, W)`` -> ``(N, C, OH, OW)``, no padding, ``p >= 1``. ``p = 1`` is sum pooling (``kh*kw`` times
    average pooling); as ``p -> inf`` it tends to max pooling of ``|x|``; ``p = 2`` is L2 pooling. The average of
    ``x**p`` is ``y**p / (kh*kw)``. Unless ``p`` is an even integer the input should be non-negative (e.g. after
    a ReLU): a negative ``x**p`` or window sum has no real root and gives NaN, as in PyTorch.

    Gradient: ``dx = dy * (x / y)**(p-1)`` per window; where a window sum is 0 (an all-zero window) the gradient
    is defined as 0.
    """

    def __init__(self, p, kernel_size, stride=None):
        super().__init__()
        self.p = number(p, "LPPool2D", "p", lo=1)
        self._geometry(kernel_size, stride, 0)

    def forward(self, x):
        x = self._input(x, "channels")
        area = self.kernel_size[0] * self.kernel_size[1]
        s = get_backend().avgpool2d_forward(x ** self.p, self.kernel_size, self.stride) * area
        y = s ** (1.0 / self.p)
        self._x, self._s, self._y = x, s, y
        return y

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        # dy/ds = y / (p s); ds/dx = p x**(p-1); the avgpool adjoint spreads g/area, hence the factor area.
        area = self.kernel_size[0] * self.kernel_size[1]
        nonzero = self._s != 0
        g = np.where(nonzero, dy * self._y / np.where(nonzero, self._s, 1), 0) * area
        spread = get_backend().avgpool2d_backward(g.astype(self.dtype), self._x.shape, self.kernel_size,
                                                  self.stride)
        return spread * self._x ** (self.p - 1)


class _GlobalPool2D(LayerMixin, Module):
    """Shapes shared by the global pools: per sample ``(C, H, W)`` -> ``(C,)``, or ``(C, 1, 1)`` with ``keepdims``."""

    def __init__(self, keepdims=False):
        super().__init__()
        self.keepdims = bool(keepdims)

    def _build(self, input_shape, dtype, rng):
        expect_rank(self, input_shape, 3, "(C, H, W)")
        return (input_shape[0], 1, 1) if self.keepdims else (input_shape[0],)


class GlobalAvgPool2D(_GlobalPool2D):
    """Mean over H and W: ``(N, C, H, W)`` -> ``(N, C)`` (``(N, C, 1, 1)`` with ``keepdims=True``).

    Average pooling with one window covering the whole plane, on the kernel backend (:mod:`dl2.backend`).
    """

    def forward(self, x):
        x = self._input(x, "channels")
        n, c, h, w = self._x_shape = x.shape
        y = get_backend().avgpool2d_forward(x, (h, w))
        return y if self.keepdims else y.reshape(n, c)

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        n, c, h, w = self._x_shape
        return get_backend().avgpool2d_backward(dy.reshape(n, c, 1, 1), self._x_shape, (h, w))


class GlobalMaxPool2D(_GlobalPool2D):
    """Max over H and W: ``(N, C, H, W)`` -> ``(N, C)`` (``(N, C, 1, 1)`` with ``keepdims=True``).

    The gradient goes to the first maximum of each plane (row-major).
    """

    def forward(self, x):
        x = self._input(x, "channels")
        n, c, h, w = self._x_shape = x.shape
        flat = x.reshape(n, c, h * w)
        self._argmax = flat.argmax(axis=2)[..., None]
        y = np.take_along_axis(flat, self._argmax, axis=2)
        return y.reshape(n, c, 1, 1) if self.keepdims else y.reshape(n, c)

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        n, c, h, w = self._x_shape
        dx = np.zeros((n, c, h * w), dtype=dy.dtype)
        np.put_along_axis(dx, self._argmax, dy.reshape(n, c, 1), axis=2)
        return dx.reshape(self._x_shape)

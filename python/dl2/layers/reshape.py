"""Reshaping layers."""
import numpy as np

from ..module import Module
from ._base import LayerMixin

__all__ = ["Flatten"]


class Flatten(LayerMixin, Module):
    """``(N, C, H, W)`` -> ``(N, C*H*W)`` (any per-sample shape to one axis, C-order; a view when possible)."""

    def _build(self, input_shape, dtype, rng):
        return (int(np.prod(input_shape)),)

    def forward(self, x):
        x = self._input(x)
        self._x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._x_shape) if self.needs_input_grad else None

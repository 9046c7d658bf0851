"""Element-wise activations and softmax. Shapes are preserved: ``(N, ...)`` -> ``(N, ...)``."""
import numpy as np

from ..backend import get_backend
from ..checks import number
from ..module import Module
from ._base import LayerMixin

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Swish", "Softmax"]


def _sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow: only ``exp(-|x|)`` (in ``(0, 1]``) is ever computed."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class ReLU(LayerMixin, Module):
    """``y = max(x, 0)`` (on the kernel backend, :mod:`dl2.backend`); the gradient at 0 is 0."""

    def forward(self, x):
        self._y = get_backend().relu_forward(self._input(x, "any"))
        return self._y

    def backward(self, dy):
        return get_backend().relu_backward(dy, self._y) if self.needs_input_grad else None


class LeakyReLU(LayerMixin, Module):
    """``y = x`` for ``x > 0``, ``negative_slope * x`` otherwise."""

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = number(negative_slope, "LeakyReLU", "negative_slope")

    def forward(self, x):
        x = self._input(x, "any")
        self._mask = x > 0
        return np.where(self._mask, x, x * self.negative_slope)

    def backward(self, dy):
        return np.where(self._mask, dy, dy * self.negative_slope) if self.needs_input_grad else None


class Sigmoid(LayerMixin, Module):
    """``y = 1 / (1 + exp(-x))``, computed without overflow for large ``|x|``; ``dy/dx = y (1 - y)`` (on the
    kernel backend, from the kept output)."""

    def forward(self, x):
        self._y = _sigmoid(self._input(x, "any"))
        return self._y

    def backward(self, dy):
        return get_backend().sigmoid_backward(dy, self._y) if self.needs_input_grad else None


class Tanh(LayerMixin, Module):
    """``y = tanh(x)``; ``dy/dx = 1 - y**2`` (on the kernel backend, from the kept output)."""

    def forward(self, x):
        self._y = np.tanh(self._input(x, "any"))
        return self._y

    def backward(self, dy):
        return get_backend().tanh_backward(dy, self._y) if self.needs_input_grad else None


class Swish(LayerMixin, Module):
    """``y = x * sigmoid(beta * x)`` with a fixed ``beta`` (``beta = 1``: SiLU).

    ``dy/dx = s + beta * x * s * (1 - s)`` with ``s = sigmoid(beta * x)``.
    """

    def __init__(self, beta=1.0):
        super().__init__()
        self.beta = number(beta, "Swish", "beta")

    def forward(self, x):
        x = self._input(x, "any")
        self._x, self._s = x, _sigmoid(self.beta * x)
        return x * self._s

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        s = self._s
        return dy * (s + self.beta * self._x * s * (1 - s))


class Softmax(LayerMixin, Module):
    """Softmax over the last axis, ``y = exp(x - max) / sum(exp(x - max))`` (stable for large logits).

    ``dx = y * (dy - sum(dy * y))`` along the last axis. For training a classifier prefer
    :class:`dl2.SoftmaxCrossEntropy` on the raw logits: it fuses softmax and the loss.
    """

    def forward(self, x):
        x = self._input(x, "any")
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        self._y = e / e.sum(axis=-1, keepdims=True)
        return self._y

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        y = self._y
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))

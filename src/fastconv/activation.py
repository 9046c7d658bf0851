"""Element-wise activations on the OpenMP team, for arrays of any shape: ReLU forward and backward, and the
backward passes of tanh and sigmoid (their forward passes are NumPy's ``tanh`` and ``exp``)."""
import numpy as np

from . import _activation, _checks
from ._activation import Kind
from .threads import get_num_threads

__all__ = ["relu_forward", "relu_backward", "tanh_backward", "sigmoid_backward"]


def relu_forward(x):
    """``y = max(x, 0)``, same shape and dtype as ``x``; NaN stays NaN."""
    x = _checks.float_array(x, "x")
    y = np.empty_like(x)
    flat = x.reshape(-1)
    _activation.run(Kind.RELU_FORWARD, flat, flat, y.reshape(-1), get_num_threads())
    return y


def _from_output(kind, dy, y):
    """``dx`` by the backward kernel ``kind`` from the output's gradient ``dy`` and the forward output ``y``
    (float32 or float64, one dtype, one shape)."""
    dy = _checks.float_array(dy, "dy")
    y = _checks.float_array(y, "y")
    _checks.same_dtype(dy=dy, y=y)
    _checks.expect_shape(y, dy.shape, "y")
    dx = np.empty_like(dy)
    _activation.run(kind, dy.reshape(-1), y.reshape(-1), dx.reshape(-1), get_num_threads())
    return dx


def relu_backward(dy, y):
    """Gradient of :func:`relu_forward` from its output ``y``: ``dx = dy`` where ``y > 0``, else 0."""
    return _from_output(Kind.RELU_BACKWARD, dy, y)


def tanh_backward(dy, y):
    """Gradient of ``y = tanh(x)`` from its output ``y``: ``dx = dy * (1 - y*y)``, same shape and dtype as
    ``dy``; NaN and infinities propagate as in that NumPy expression."""
    return _from_output(Kind.TANH_BACKWARD, dy, y)


def sigmoid_backward(dy, y):
    """Gradient of ``y = 1 / (1 + exp(-x))`` from its output ``y``: ``dx = dy * y * (1 - y)``, same shape and
    dtype as ``dy``; NaN and infinities propagate as in that NumPy expression."""
    return _from_output(Kind.SIGMOID_BACKWARD, dy, y)

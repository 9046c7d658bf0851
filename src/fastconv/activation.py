"""Element-wise activations on the OpenMP team: ReLU forward and backward, for arrays of any shape."""
import numpy as np

from . import _activation, _checks
from .threads import get_num_threads

__all__ = ["relu_forward", "relu_backward"]


def relu_forward(x):
    """``y = max(x, 0)``, same shape and dtype as ``x``; NaN stays NaN."""
    x = _checks.float_array(x, "x")
    y = np.empty_like(x)
    flat = x.reshape(-1)
    _activation.relu(flat, flat, y.reshape(-1), False, get_num_threads())
    return y


def relu_backward(dy, y):
    """Gradient of :func:`relu_forward` from its output ``y``: ``dx = dy`` where ``y > 0``, else 0."""
    dy = _checks.float_array(dy, "dy")
    y = _checks.float_array(y, "y")
    _checks.same_dtype(dy=dy, y=y)
    _checks.expect_shape(y, dy.shape, "y")
    dx = np.empty_like(dy)
    _activation.relu(dy.reshape(-1), y.reshape(-1), dx.reshape(-1), True, get_num_threads())
    return dx

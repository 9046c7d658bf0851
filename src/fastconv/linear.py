"""Fully connected layer ``y = x @ w + b`` with ``x (N, in)``, ``w (in, out)`` (the textbook's layout)."""
import numpy as np

from . import _checks, _linear
from .threads import get_num_threads

__all__ = ["linear_forward", "linear_backward"]


def _check(x, w):
    x = _checks.float_array(x, "x", ndim=2)
    w = _checks.float_array(w, "w", ndim=2)
    _checks.same_dtype(x=x, w=w)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"x has {x.shape[1]} features but w expects {w.shape[0]} (w shape {w.shape})")
    _checks.blas_sizes("linear", batch=x.shape[0], in_features=w.shape[0], out_features=w.shape[1])
    return x, w


def linear_forward(x, w, b=None):
    """``y (N, out) = x (N, in) @ w (in, out) + b (out,)``."""
    x, w = _check(x, w)
    y = np.empty((x.shape[0], w.shape[1]), dtype=x.dtype)
    if y.size:
        if x.shape[1]:
            _linear.forward(x, w, y, get_num_threads())
        else:
            y[...] = 0
    if b is not None:
        b = _checks.float_array(b, "b", ndim=1)
        _checks.same_dtype(x=x, b=b)
        _checks.expect_shape(b, (w.shape[1],), "b")
        y += b
    return y


def linear_backward(dy, x, w, need_dx=True):
    """Gradients of :func:`linear_forward`: ``(dx, dw, db)``; ``dx`` is ``None`` with ``need_dx=False``."""
    x, w = _check(x, w)
    dy = _checks.float_array(dy, "dy", ndim=2)
    _checks.same_dtype(x=x, dy=dy)
    _checks.expect_shape(dy, (x.shape[0], w.shape[1]), "dy")
    threads = get_num_threads()
    n, n_in, n_out = x.shape[0], w.shape[0], w.shape[1]
    # The GEMMs overwrite their whole output: zeros only where there is no product to compute (a sum over none).
    dw = np.empty_like(w) if n else np.zeros_like(w)
    if n and dw.size:
        _linear.backward_weight(dy, x, dw, threads)
    dx = None
    if need_dx:
        dx = np.empty_like(x) if n_out else np.zeros_like(x)
        if n and n_in and n_out:
            _linear.backward_input(dy, w, dx, threads)
    return dx, dw, dy.sum(axis=0)

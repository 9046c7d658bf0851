"""Batch normalisation per channel, for ``(N, C)`` or ``(N, C, H, W)`` input."""
import numpy as np

from . import _batchnorm, _checks
from .threads import get_num_threads
from .workspace import scratch

__all__ = ["batchnorm_forward", "batchnorm_backward", "batchnorm_inference"]


def _as_ncm(a):
    """``(N, C)`` -> ``(N, C, 1)``; ``(N, C, H, W)`` -> ``(N, C, H*W)`` (views)."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def _row_sums(x):
    """Work space of the training kernels: two float64 sums per ``(n, c)`` row."""
    return scratch("batchnorm-rows", (x.shape[0] * x.shape[1], 2), np.float64)


def _channel_vectors(x, **vectors):
    checked = {}
    for name, v in vectors.items():
        v = _checks.float_array(v, name, ndim=1)
        _checks.expect_shape(v, (x.shape[1],), name)
        checked[name] = v
    _checks.same_dtype(x=x, **checked)
    return checked.values()


def _check_eps(eps):
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training mode: ``(y, mean, invstd)``; statistics per channel over every axis but 1 (biased variance).

    An empty batch raises ``ValueError``: there are no statistics to normalise with.
    """
    x = _checks.float_array(x, "x", ndims=(2, 4))
    gamma, beta = _channel_vectors(x, gamma=gamma, beta=beta)
    eps = _check_eps(eps)
    if x.size == 0:
        raise ValueError(f"batch norm needs at least one value per channel to compute statistics, got {x.shape}")
    c = x.shape[1]
    y = np.empty_like(x)
    mean = np.empty(c, dtype=x.dtype)
    invstd = np.empty(c, dtype=x.dtype)
    _batchnorm.forward(_as_ncm(x), gamma, beta, eps, _as_ncm(y), mean, invstd, _row_sums(x),
                       scratch("batchnorm-scale", (c,), x.dtype), get_num_threads())
    return y, mean, invstd


def batchnorm_backward(dy, x, gamma, mean, invstd):
    """Gradients of :func:`batchnorm_forward`: ``(dx, dgamma, dbeta)``."""
    x = _checks.float_array(x, "x", ndims=(2, 4))
    dy = _checks.float_array(dy, "dy", ndims=(2, 4))
    _checks.same_dtype(x=x, dy=dy)
    _checks.expect_shape(dy, x.shape, "dy")
    gamma, mean, invstd = _channel_vectors(x, gamma=gamma, mean=mean, invstd=invstd)
    c = x.shape[1]
    dx = np.empty_like(x)
    dgamma = np.zeros(c, dtype=x.dtype)
    dbeta = np.zeros(c, dtype=x.dtype)
    if x.size:
        _batchnorm.backward(_as_ncm(dy), _as_ncm(x), gamma, mean, invstd, _as_ncm(dx), dgamma, dbeta,
                            _row_sums(x), scratch("batchnorm-coef", (3, c), x.dtype), get_num_threads())
    return dx, dgamma, dbeta


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5):
    """Inference mode with stored statistics: ``gamma * (x - running_mean) / sqrt(running_var + eps) + beta``."""
    x = _checks.float_array(x, "x", ndims=(2, 4))
    gamma, beta, running_mean, running_var = _channel_vectors(
        x, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var)
    eps = _check_eps(eps)
    if np.any(running_var < 0):
        raise ValueError("running_var must be non-negative")
    scale = (gamma / np.sqrt(running_var + eps)).astype(x.dtype)
    offset = (beta - running_mean * scale).astype(x.dtype)
    y = np.empty_like(x)
    if x.size:
        _batchnorm.inference(_as_ncm(x), scale, offset, _as_ncm(y), get_num_threads())
    return y

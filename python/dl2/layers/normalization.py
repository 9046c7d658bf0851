"""Normalisation layers: batch, layer, instance, group and local response normalisation.

Every one has an exact backward. Scales ``gamma`` and shifts ``beta`` are Parameters with
``regularize=False``; ``eps`` is added to the variance inside the square root.
"""
import numpy as np


from ..backend import get_backend
from ..checks import integer, number
from ..module import Module, Parameter
from ._base import LayerMixin, expect_rank, expect_size

__all__ = ["BatchNorm1D", "BatchNorm2D", "LayerNorm", "InstanceNorm2D", "GroupNorm", "LocalResponseNorm"]


# ------------------------------------------------------------------------------------------ batch norm
class _BatchNorm(LayerMixin):
    """Per-channel batch normalisation on the kernel backend (``(N, C)`` or ``(N, C, H, W)`` batches).

    Training: batch statistics (biased variance to normalise) and the running statistics updated PyTorch-style,
    ``running = (1 - momentum) * running + momentum * batch``, with the UNBIASED batch variance
    (``m/(m-1)`` times the biased one, ``m`` values per channel) for ``running_var``.
    Evaluation: ``gamma * (x - running_mean) / sqrt(running_var + eps) + beta``.
    Buffers ``running_mean`` (zeros) and ``running_var`` (ones) are saved with the model.
    """

    _layout = None

    def __init__(self, num_features=None, eps=1e-5, momentum=0.1, affine=True):
        super().__init__()
        who = type(self).__name__
        self.num_features = None
        self._given_num_features = None if num_features is None else integer(num_features, who, "num_features", 1)
        self.eps = number(eps, who, "eps", lo=0)
        self.momentum = number(momentum, who, "momentum", lo=0, hi=1)
        self.affine = bool(affine)
        self.gamma = None
        self.beta = None

    def _build(self, input_shape, dtype, rng):
        expect_rank(self, input_shape, len(self._layout), str(self._layout).replace("'", ""))
        c = input_shape[0]
        expect_size(self, self._given_num_features, c, "num_features", input_shape)
        self.num_features = c
        if self.affine:
            self.gamma = Parameter(np.ones(c, dtype=dtype), regularize=False)
            self.beta = Parameter(np.zeros(c, dtype=dtype), regularize=False)
        else:
            self._const_gamma, self._const_beta = np.ones(c, dtype=dtype), np.zeros(c, dtype=dtype)
        self.register_buffer("running_mean", np.zeros(c, dtype=dtype))
        self.register_buffer("running_var", np.ones(c, dtype=dtype))
        return input_shape

    def _affine(self):
        if self.affine:
            return self.gamma.data, self.beta.data
        return self._const_gamma, self._const_beta

    def forward(self, x):
        x = self._input(x, "channels" if len(self._layout) == 3 else "exact")
        gamma, beta = self._affine()
        self._x = x
        if not self.training:
            self._train_stats = None
            return get_backend().batchnorm_inference(x, gamma, beta, self.running_mean, self.running_var,
                                                     self.eps)
        m = x.size // x.shape[1]
        if m < 2:
            raise ValueError(f"{type(self).__name__}: training needs more than one value per channel to estimate "
                             f"a variance, got input shape {x.shape} (use a larger batch, or eval())")
        y, mean, invstd = get_backend().batchnorm_forward(x, gamma, beta, self.eps)
        self._train_stats = mean, invstd
        biased_var = np.maximum(1.0 / invstd.astype(np.float64) ** 2 - self.eps, 0.0)
        mom = self.momentum
        self.running_mean[...] = (1 - mom) * self.running_mean + mom * mean
        self.running_var[...] = (1 - mom) * self.running_var + mom * biased_var * (m / (m - 1))
        return y

    def backward(self, dy):
        gamma, _ = self._affine()
        if self._train_stats is not None:
            dx, dgamma, dbeta = get_backend().batchnorm_backward(dy, self._x, gamma, *self._train_stats)
        else:   # evaluation: y = gamma * xhat + beta with fixed statistics
            axes = (0,) if self._x.ndim == 2 else (0, 2, 3)
            shape = (1, -1) + (1,) * (self._x.ndim - 2)
            invstd = (1 / np.sqrt(self.running_var + self.eps)).astype(self.dtype)
            xhat = (self._x - self.running_mean.reshape(shape)) * invstd.reshape(shape)
            dgamma, dbeta = (dy * xhat).sum(axis=axes), dy.sum(axis=axes)
            dx = dy * (gamma * invstd).reshape(shape)
        if self.affine:
            self.gamma.grad += dgamma
            self.beta.grad += dbeta
        return dx if self.needs_input_grad else None


class BatchNorm1D(_BatchNorm, Module):
    """Batch normalisation of features: ``(N, F)`` -> ``(N, F)``, statistics per feature over the batch.

    Training normalises with the batch mean and biased variance and updates the buffers
    ``running = (1 - momentum) * running + momentum * batch`` (``running_var`` from the UNBIASED batch variance,
    as in PyTorch); evaluation uses the buffers. ``num_features`` is inferred at build; if given it must match.
    Training needs N >= 2.
    """

    _layout = ("F",)


class BatchNorm2D(_BatchNorm, Module):
    """Spatial batch normalisation: ``(N, C, H, W)`` -> same, statistics per channel over N, H and W.

    Running statistics as in :class:`BatchNorm1D` (``momentum=0.1``, unbiased ``running_var``), with
    ``m = N*H*W`` values per channel. ``num_features`` (channels) is inferred at build; if given it must match.
    """

    _layout = ("C", "H", "W")


# ------------------------------------------------------------------- layer, instance and group norm
def _normalize(xg, eps):
    """Normalise ``xg (N, G, M)`` over its last axis: ``(xhat, invstd (N, G, 1))``, biased variance."""
    mean = xg.mean(axis=2, keepdims=True)
    xc = xg - mean
    invstd = 1 / np.sqrt((xc * xc).mean(axis=2, keepdims=True) + eps)
    return xc * invstd, invstd


def _normalize_backward(dxhat, xhat, invstd):
    """Gradient through :func:`_normalize`: ``invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))``."""
    return invstd * (dxhat - dxhat.mean(axis=2, keepdims=True)
                     - xhat * (dxhat * xhat).mean(axis=2, keepdims=True))


class _GroupedNorm(LayerMixin):
    """Shared forward/backward: normalise ``x`` viewed as ``(N, G, M)``, then ``gamma * xhat + beta``.

    Subclasses give ``_groups(input_shape)`` (G) and the per-sample shape of ``gamma``/``beta``.
    """

    def _make_affine(self, shape, dtype):
        if self.affine:
            self.gamma = Parameter(np.ones(shape, dtype=dtype), regularize=False)
            self.beta = Parameter(np.zeros(shape, dtype=dtype), regularize=False)

    def forward(self, x):
        x = self._input(x, self._check)
        n = x.shape[0]
        self._xhat, self._invstd = _normalize(x.reshape(n, self._n_groups, -1), self.eps)
        xhat = self._xhat.reshape(x.shape)
        if not self.affine:
            return xhat
        return xhat * self.gamma.data + self.beta.data

    def backward(self, dy):
        shape = dy.shape
        xhat = self._xhat.reshape(shape)
        if self.affine:
            axes = self._affine_sum_axes(dy.ndim)
            self.gamma.grad += (dy * xhat).sum(axis=axes).reshape(self.gamma.shape)
            self.beta.grad += dy.sum(axis=axes).reshape(self.beta.shape)
            dy = dy * self.gamma.data
        if not self.needs_input_grad:
            return None
        dxhat = dy.reshape(self._xhat.shape)
        return _normalize_backward(dxhat, self._xhat, self._invstd).reshape(shape)


class LayerNorm(_GroupedNorm, Module):
    """Normalise each sample over ALL its axes: ``(N, *S)`` -> ``(N, *S)``.

    Like PyTorch's LayerNorm with ``normalized_shape`` = the whole per-sample shape ``S``: ``gamma`` and ``beta``
    have shape ``S`` (element-wise affine). Same behaviour in training and evaluation.
    """

    _check = "exact"

    def __init__(self, eps=1e-5, affine=True):
        super().__init__()
        self.eps = number(eps, "LayerNorm", "eps", lo=0)
        self.affine = bool(affine)
        self.gamma = None
        self.beta = None

    def _build(self, input_shape, dtype, rng):
        self._n_groups = 1
        self._make_affine(input_shape, dtype)
        return input_shape

    @staticmethod
    def _affine_sum_axes(ndim):
        return (0,)


class _ChannelGroupedNorm(_GroupedNorm):
    """Norms over groups of channels of ``(N, C, *spatial)`` input, with per-channel ``gamma``/``beta (C,)``."""

    _check = "channels"

    def _build_channels(self, input_shape, dtype, groups):
        if len(input_shape) < 1:
            raise ValueError(f"{type(self).__name__} expects a per-sample input (C, ...), got {input_shape}")
        c = input_shape[0]
        if c % groups:
            raise ValueError(f"{type(self).__name__}: {c} channels cannot be split into {groups} groups "
                             f"(input shape {input_shape})")
        self._n_groups = groups
        self._make_affine((c,) + (1,) * (len(input_shape) - 1), dtype)
        return input_shape

    @staticmethod
    def _affine_sum_axes(ndim):
        return (0,) + tuple(range(2, ndim))


class InstanceNorm2D(_ChannelGroupedNorm, Module):
    """Normalise each channel of each sample over H and W: ``(N, C, H, W)`` -> same.

    ``affine=False`` by default, like PyTorch; with ``affine=True`` per-channel ``gamma``/``beta`` of shape
    ``(C, 1, 1)``. No running statistics: the same computation in training and evaluation.
    """

    def __init__(self, eps=1e-5, affine=False):
        super().__init__()
        self.eps = number(eps, "InstanceNorm2D", "eps", lo=0)
        self.affine = bool(affine)
        self.gamma = None
        self.beta = None

    def _build(self, input_shape, dtype, rng):
        expect_rank(self, input_shape, 3, "(C, H, W)")
        return self._build_channels(input_shape, dtype, input_shape[0])


class GroupNorm(_ChannelGroupedNorm, Module):
    """Split the ``C`` channels into ``num_groups`` groups and normalise each group of each sample.

    Input ``(N, C, *spatial)`` (e.g. ``(N, C, H, W)`` or ``(N, C)``); ``C`` must be divisible by
    ``num_groups``. Per-channel ``gamma``/``beta`` of shape ``(C, 1, ...)`` (``(C, 1, 1)`` for images).
    ``num_groups=1`` is a layer norm with per-channel affine; ``num_groups=C`` is an instance norm.
    """

    def __init__(self, num_groups, eps=1e-5, affine=True):
        super().__init__()
        self.num_groups = integer(num_groups, "GroupNorm", "num_groups", 1)
        self.eps = number(eps, "GroupNorm", "eps", lo=0)
        self.affine = bool(affine)
        self.gamma = None
        self.beta = None

    def _build(self, input_shape, dtype, rng):
        return self._build_channels(input_shape, dtype, self.num_groups)


# ----------------------------------------------------------------------------- local response norm
def _channel_window_sum(a, before, after):
    """``out[:, c] = sum(a[:, c - before : c + after + 1])`` along axis 1, zeros outside the channels."""
    c = a.shape[1]
    pad = [(0, 0)] * a.ndim
    pad[1] = (before, after)
    ap = np.pad(a, pad)
    out = ap[:, 0:c].copy()
    for t in range(1, before + after + 1):
        out += ap[:, t:t + c]
    return out


class LocalResponseNorm(LayerMixin, Module):
    """PyTorch's local response normalisation across channels, ``(N, C, ...)`` -> same.

    ``b_c = a_c / (k + alpha/size * sum_{c'} a_{c'}**2) ** beta``, the sum over the ``size`` channels
    ``c - size//2 .. c + (size-1)//2`` that exist (zero padding). The default ``k=2.0`` is AlexNet's
    (PyTorch's default is ``k=1.0``).
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.size = integer(size, "LocalResponseNorm", "size", 1)
        self.alpha = number(alpha, "LocalResponseNorm", "alpha", lo=0)
        self.beta = number(beta, "LocalResponseNorm", "beta", lo=0)
        self.k = number(k, "LocalResponseNorm", "k", lo=0, lo_open=True)

    def _build(self, input_shape, dtype, rng):
        if len(input_shape) < 1:
            raise ValueError(f"LocalResponseNorm expects a per-sample input (C, ...), got {input_shape}")
        return input_shape

    def forward(self, x):
        x = self._input(x, "channels")
        s = _channel_window_sum(x * x, self.size // 2, (self.size - 1) // 2)
        self._d = self.k + (self.alpha / self.size) * s
        self._x = x
        self._y = x * self._d ** -self.beta
        return self._y

    def backward(self, dy):
        if not self.needs_input_grad:
            return None
        # d b_c / d a_i = [i == c] d_c^-beta - 2 beta alpha/size * a_c d_c^(-beta-1) a_i  for c whose window holds i;
        # the windows holding channel i are c = i - (size-1)//2 .. i + size//2 (the reversed window).
        g = _channel_window_sum(dy * self._y / self._d, (self.size - 1) // 2, self.size // 2)
        return dy * self._d ** -self.beta - (2 * self.beta * self.alpha / self.size) * self._x * g

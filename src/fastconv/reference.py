"""Plain-NumPy reference implementations of every fastconv kernel: the readable specification.

Same signatures and results as the compiled kernels in :mod:`fastconv`, written for clarity, not speed.
Layout is NCHW, convolution weights are ``(K, C, kh, kw)``; ``kernel_size``, ``stride`` and ``padding``
take an int or an ``(h, w)`` pair, and the output size is ``OH = (H + 2*pad_h - kh) // stride_h + 1``.
Apart from the window geometry (:func:`fastconv.pair`, :func:`fastconv.output_hw`, shared with the kernels)
these functions do not validate their arguments; the public wrappers in :mod:`fastconv` do.
"""
import numpy as np

from ._checks import output_hw, pair

__all__ = [
    "im2col", "col2im",
    "conv2d_forward", "conv2d_backward",
    "linear_forward", "linear_backward",
    "maxpool2d_forward", "maxpool2d_backward",
    "avgpool2d_forward", "avgpool2d_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_inference",
    "relu_forward", "relu_backward", "tanh_backward", "sigmoid_backward",
]


def _windows(x, kernel_size, stride):
    """View of every sliding window: ``(N, C, OH, OW, kh, kw)`` (no copy)."""
    kh, kw = kernel_size
    sh, sw = stride
    v = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    return v[:, :, ::sh, ::sw]


# ------------------------------------------------------------------------------------------- im2col
def im2col(x, kernel_size, stride=1, padding=0):
    """Unfold ``x (N, C, H, W)`` into ``cols (N*OH*OW, C*kh*kw)``: one row per output pixel.

    Row ``(n*OH + i)*OW + j`` holds the (zero-padded) window under output pixel ``(i, j)`` of image ``n``,
    ordered ``(c, u, v)`` so that ``cols @ w.reshape(K, -1).T`` is the convolution.
    """
    kh, kw = pair(kernel_size, "kernel_size", 1)
    ph, pw = pair(padding, "padding", 0)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = _windows(xp, (kh, kw), pair(stride, "stride", 1))   # (N, C, OH, OW, kh, kw)
    n, c, oh, ow = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)


def col2im(cols, input_shape, kernel_size, stride=1, padding=0):
    """Adjoint of :func:`im2col`: scatter rows back into an ``input_shape`` array, summing overlaps."""
    n, c, h, w = input_shape
    kh, kw = pair(kernel_size, "kernel_size", 1)
    sh, sw = pair(stride, "stride", 1)
    ph, pw = pair(padding, "padding", 0)
    oh, ow = output_hw((h, w), (kh, kw), (sh, sw), (ph, pw))
    win = cols.reshape(n, oh, ow, c, kh, kw)
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for u in range(kh):
        for v in range(kw):
            xp[:, :, u:u + sh * oh:sh, v:v + sw * ow:sw] += win[:, :, :, :, u, v].transpose(0, 3, 1, 2)
    return xp[:, :, ph:ph + h, pw:pw + w]


# -------------------------------------------------------------------------------------- convolution
def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """``y[n, k] = sum_c x[n, c] (*) w[k, c] + b[k]`` (cross-correlation), ``y (N, K, OH, OW)``."""
    n, _, h, wd = x.shape
    k, _, kh, kw = w.shape
    sh, sw = pair(stride, "stride", 1)
    ph, pw = pair(padding, "padding", 0)
    oh, ow = output_hw((h, wd), (kh, kw), (sh, sw), (ph, pw))
    cols = im2col(x, (kh, kw), (sh, sw), (ph, pw))
    y = cols @ w.reshape(k, -1).T                          # (N*OH*OW, K)
    if b is not None:
        y = y + b
    return np.ascontiguousarray(y.reshape(n, oh, ow, k).transpose(0, 3, 1, 2))


def conv2d_backward(dy, x, w, stride=1, padding=0, need_dx=True):
    """Gradients of :func:`conv2d_forward`: ``(dx, dw, db)`` with ``db = dy.sum((0, 2, 3))``.

    With ``need_dx=False`` ``dx`` is not computed and ``None`` is returned for it.
    """
    k, _, kh, kw = w.shape
    dy_rows = dy.transpose(0, 2, 3, 1).reshape(-1, k)     # (N*OH*OW, K)
    cols = im2col(x, (kh, kw), stride, padding)
    dw = (dy_rows.T @ cols).reshape(w.shape)
    dx = col2im(dy_rows @ w.reshape(k, -1), x.shape, (kh, kw), stride, padding) if need_dx else None
    db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db


# ---------------------------------------------------------------------------------- fully connected
def linear_forward(x, w, b=None):
    """``y (N, out) = x (N, in) @ w (in, out) + b``."""
    y = x @ w
    return y if b is None else y + b


def linear_backward(dy, x, w, need_dx=True):
    """``(dx, dw, db) = (dy @ w.T, x.T @ dy, dy.sum(0))``; ``dx`` is ``None`` with ``need_dx=False``."""
    return (dy @ w.T if need_dx else None), x.T @ dy, dy.sum(axis=0)


# ------------------------------------------------------------------------------------------ pooling
def maxpool2d_forward(x, kernel_size, stride=None, padding=0):
    """Max over each window; padding counts as -inf. Returns ``(y, indices)``.

    ``indices`` (int64, same shape as ``y``) holds the flat position ``h*W + w`` of the maximum inside its own
    input plane (PyTorch's ``return_indices`` convention): the first input position (row-major) holding the
    max, so never a padding position. A NaN in a window is its max (NumPy's rule); the first NaN is chosen.
    """
    n, c, h, wd = x.shape
    kh, kw = pair(kernel_size, "kernel_size", 1)
    sh, sw = pair(kernel_size if stride is None else stride, "stride", 1)
    ph, pw = pair(padding, "padding", 0)
    pads = ((0, 0), (0, 0), (ph, ph), (pw, pw))
    win = _windows(np.pad(x, pads, constant_values=-np.inf), (kh, kw), (sh, sw))
    inside = _windows(np.pad(np.ones((1, 1, h, wd), bool), pads), (kh, kw), (sh, sw))
    oh, ow = win.shape[2:4]
    flat = win.reshape(n, c, oh, ow, kh * kw)
    y = flat.max(axis=-1)
    hit = (flat == y[..., None]) | (np.isnan(flat) & np.isnan(y)[..., None])
    arg = (hit & inside.reshape(1, 1, oh, ow, kh * kw)).argmax(axis=-1)
    rows = np.arange(oh)[:, None] * sh - ph + arg // kw
    cols = np.arange(ow)[None, :] * sw - pw + arg % kw
    return np.ascontiguousarray(y), (rows * wd + cols).astype(np.int64)


def maxpool2d_backward(dy, indices, input_shape):
    """Route each ``dy`` element to the input position named by ``indices`` (summing repeats)."""
    n, c, h, w = input_shape
    dx = np.zeros((n * c, h * w), dtype=dy.dtype)
    planes = np.repeat(np.arange(n * c), dy.shape[2] * dy.shape[3])
    np.add.at(dx, (planes, indices.reshape(-1)), dy.reshape(-1))
    return dx.reshape(input_shape)


def _avg_divisor(shape, kernel_size, stride, padding, count_include_pad):
    """Per-output-pixel divisor ``(OH, OW)``: the window area, or only the part of it inside the input."""
    ones = np.ones((1, 1) + tuple(shape[2:]))
    if count_include_pad:   # every window lies inside the zero-padded input
        ones = np.pad(ones, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2), constant_values=1)
    else:
        ones = np.pad(ones, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    return _windows(ones, kernel_size, stride).sum(axis=(-1, -2))[0, 0]


def avgpool2d_forward(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Mean over each window (zero padding); with ``count_include_pad=False`` divide by the in-input count."""
    kernel_size = pair(kernel_size, "kernel_size", 1)
    stride = pair(kernel_size if stride is None else stride, "stride", 1)
    padding = pair(padding, "padding", 0)
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    sums = _windows(xp, kernel_size, stride).sum(axis=(-1, -2))
    div = _avg_divisor(x.shape, kernel_size, stride, padding, count_include_pad)
    return np.ascontiguousarray(sums / div.astype(x.dtype))


def avgpool2d_backward(dy, input_shape, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Spread each ``dy / divisor`` evenly over its window."""
    kh, kw = pair(kernel_size, "kernel_size", 1)
    stride = pair((kh, kw) if stride is None else stride, "stride", 1)
    padding = pair(padding, "padding", 0)
    div = _avg_divisor(input_shape, (kh, kw), stride, padding, count_include_pad)
    g = (dy / div.astype(dy.dtype)).transpose(0, 2, 3, 1)           # (N, OH, OW, C)
    n, c = input_shape[:2]
    cols = np.broadcast_to(g[..., None], g.shape + (kh * kw,)).reshape(-1, c * kh * kw)
    return col2im(np.ascontiguousarray(cols), input_shape, (kh, kw), stride, padding)


# ------------------------------------------------------------------------------------ batch norm
def _channel_axes(x):
    """Axes reduced per channel: ``(0,)`` for ``(N, C)``, ``(0, 2, 3)`` for ``(N, C, H, W)``."""
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _per_channel(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training-mode batch norm with batch statistics. Returns ``(y, mean, invstd)`` per channel.

    ``mu = mean(x)``, ``var = mean((x - mu)**2)`` (biased), ``invstd = 1/sqrt(var + eps)``,
    ``y = gamma * (x - mu) * invstd + beta``.
    """
    axes = _channel_axes(x)
    mean = x.mean(axis=axes)
    var = ((x - _per_channel(mean, x)) ** 2).mean(axis=axes)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
    y = _per_channel(gamma, x) * xhat + _per_channel(beta, x)
    return y.astype(x.dtype), mean.astype(x.dtype), invstd.astype(x.dtype)


def batchnorm_backward(dy, x, gamma, mean, invstd):
    """Gradients of :func:`batchnorm_forward`: ``(dx, dgamma, dbeta)``.

    With ``m`` values per channel: ``dx = gamma*invstd/m * (m*dy - sum(dy) - xhat*sum(dy*xhat))``.
    """
    axes = _channel_axes(x)
    m = x.size // x.shape[1]
    xhat = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    dx = _per_channel(gamma * invstd / m, x) * (
        m * dy - _per_channel(dbeta, x) - xhat * _per_channel(dgamma, x))
    return dx.astype(x.dtype), dgamma.astype(x.dtype), dbeta.astype(x.dtype)


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5):
    """Inference-mode batch norm with stored statistics: ``gamma*(x - mean)/sqrt(var + eps) + beta``."""
    scale = gamma / np.sqrt(running_var + eps)
    y = _per_channel(scale, x) * (x - _per_channel(running_mean, x)) + _per_channel(beta, x)
    return y.astype(x.dtype)


# ------------------------------------------------------------------------------------------ activations
def relu_forward(x):
    """``y = max(x, 0)``; NaN stays NaN (``numpy.maximum``'s rule)."""
    return np.maximum(x, np.zeros((), x.dtype))


def relu_backward(dy, y):
    """``dx = dy`` where the forward output ``y > 0``, else 0 (the gradient at 0, and at NaN, is 0)."""
    return np.where(y > 0, dy, np.zeros((), dy.dtype))


def tanh_backward(dy, y):
    """Gradient of ``y = tanh(x)`` from its output: ``dx = dy * (1 - y*y)``."""
    return dy * (1 - y * y)


def sigmoid_backward(dy, y):
    """Gradient of ``y = 1 / (1 + exp(-x))`` from its output: ``dx = dy * y * (1 - y)``."""
    return dy * y * (1 - y)

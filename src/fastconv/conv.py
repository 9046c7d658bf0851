"""Convolution (cross-correlation, NCHW, weights ``(K, C, kh, kw)``) by unfold + one BLAS GEMM per batch chunk.

Forward: ``cols = unfold(x)`` ``(C*kh*kw, n*P)`` in parallel Cython, ``yt = W @ cols`` ``(K, n*P)`` with NumPy's
BLAS, then a parallel move to NCHW fused with the bias add. Backward reverses it: ``dyt`` gathered from ``dy``
(with ``db`` summed on the way), ``dW += dyt @ cols.T``, ``dcols = W.T @ dyt`` and a parallel ``fold`` into ``dx``.
Batches are processed in chunks whose column matrix fits in :data:`CHUNK_BYTES`, so scratch memory stays bounded.
"""
import numpy as np

from . import _checks, _conv, _im2col
from .threads import get_num_threads
from .workspace import scratch

__all__ = ["im2col", "col2im", "conv2d_forward", "conv2d_backward"]

#: Upper bound on the column matrix of one chunk of images (bytes).
CHUNK_BYTES = 32 << 20


def _geometry(x_shape, kernel_size, stride, padding):
    kh, kw = _checks.pair(kernel_size, "kernel_size", 1)
    sh, sw = _checks.pair(stride, "stride", 1)
    ph, pw = _checks.pair(padding, "padding", 0)
    oh, ow = _checks.output_hw(x_shape[2:], (kh, kw), (sh, sw), (ph, pw))
    return (kh, kw, sh, sw, ph, pw), (oh, ow)


def _chunks(n, column_bytes_per_image):
    step = max(1, CHUNK_BYTES // max(1, column_bytes_per_image))
    for start in range(0, n, step):
        yield start, min(n, start + step)


def _unfold_into(x, geometry, rows, pixels):
    cols = scratch("cols", (rows, x.shape[0] * pixels), x.dtype)
    _im2col.unfold(x, cols, *geometry, get_num_threads())
    return cols


def im2col(x, kernel_size, stride=1, padding=0):
    """Unfold ``x (N, C, H, W)`` into ``cols (N*OH*OW, C*kh*kw)``: one row per output pixel, ordered ``(c, u, v)``.

    ``cols @ w.reshape(K, -1).T`` is then the convolution, as in the textbook.
    """
    x = _checks.float_array(x, "x", ndim=4)
    geometry, (oh, ow) = _geometry(x.shape, kernel_size, stride, padding)
    n, c = x.shape[:2]
    kh, kw = geometry[:2]
    if x.size == 0:
        return np.empty((n * oh * ow, c * kh * kw), dtype=x.dtype)
    cols = np.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    _im2col.unfold(x, cols, *geometry, get_num_threads())
    return np.ascontiguousarray(cols.T)


def col2im(cols, input_shape, kernel_size, stride=1, padding=0):
    """Adjoint of :func:`im2col`: ``cols (N*OH*OW, C*kh*kw)`` back to ``input_shape``, summing overlaps."""
    input_shape = _checks.shape4(input_shape, "input_shape")
    cols = _checks.float_array(cols, "cols", ndim=2)
    geometry, (oh, ow) = _geometry(input_shape, kernel_size, stride, padding)
    n, c = input_shape[:2]
    kh, kw = geometry[:2]
    _checks.expect_shape(cols, (n * oh * ow, c * kh * kw), "cols")
    x = np.empty(input_shape, dtype=cols.dtype)
    if x.size:
        _im2col.fold(np.ascontiguousarray(cols.T), x, *geometry, get_num_threads())
    else:
        x[...] = 0
    return x


def _check_conv_args(x, w, stride, padding):
    x = _checks.float_array(x, "x", ndim=4)
    w = _checks.float_array(w, "w", ndim=4)
    _checks.same_dtype(x=x, w=w)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels but w expects {w.shape[1]} (w shape {w.shape})")
    if w.shape[1] == 0 or w.shape[0] == 0:
        raise ValueError(f"w must have at least one filter and one channel, got shape {w.shape}")
    geometry, out_hw = _geometry(x.shape, w.shape[2:], stride, padding)
    return x, w, geometry, out_hw


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """``y (N, K, OH, OW)`` = cross-correlation of ``x (N, C, H, W)`` with ``w (K, C, kh, kw)``, plus ``b (K,)``."""
    x, w, geometry, (oh, ow) = _check_conv_args(x, w, stride, padding)
    n, k = x.shape[0], w.shape[0]
    if b is not None:
        b = _checks.float_array(b, "b", ndim=1)
        _checks.same_dtype(x=x, b=b)
        _checks.expect_shape(b, (k,), "b")
    y = np.empty((n, k, oh, ow), dtype=x.dtype)
    if n == 0:
        return y
    rows, pixels = w[0].size, oh * ow
    w2 = w.reshape(k, rows)
    bias = b if b is not None else np.zeros(1, dtype=x.dtype)
    threads = get_num_threads()
    for start, stop in _chunks(n, rows * pixels * x.itemsize):
        cols = _unfold_into(x[start:stop], geometry, rows, pixels)
        yt = scratch("yt", (k, cols.shape[1]), x.dtype)
        np.matmul(w2, cols, out=yt)
        _conv.scatter_output(yt, bias, y[start:stop].reshape(stop - start, k, pixels), b is not None, threads)
    return y


def conv2d_backward(dy, x, w, stride=1, padding=0, need_dx=True):
    """Gradients of :func:`conv2d_forward`: ``(dx, dw, db)``, shaped like ``x``, ``w`` and ``(K,)``.

    With ``need_dx=False`` (a network's first layer) ``dx`` is not computed and ``None`` is returned for it.
    """
    x, w, geometry, (oh, ow) = _check_conv_args(x, w, stride, padding)
    n, k = x.shape[0], w.shape[0]
    dy = _checks.float_array(dy, "dy", ndim=4)
    _checks.same_dtype(x=x, dy=dy)
    _checks.expect_shape(dy, (n, k, oh, ow), "dy")
    rows, pixels = w[0].size, oh * ow
    w2 = w.reshape(k, rows)
    dx = np.empty_like(x) if need_dx else None
    dw = np.zeros((k, rows), dtype=x.dtype)
    db = np.zeros(k, dtype=x.dtype)
    db_chunk = np.empty(k, dtype=x.dtype)
    threads = get_num_threads()
    for start, stop in _chunks(n, rows * pixels * x.itemsize):
        dyt = scratch("dyt", (k, (stop - start) * pixels), x.dtype)
        _conv.gather_grad(dy[start:stop].reshape(stop - start, k, pixels), dyt, db_chunk, threads)
        db += db_chunk
        cols = _unfold_into(x[start:stop], geometry, rows, pixels)
        dw += dyt @ cols.T
        if need_dx:
            dcols = scratch("dcols", (rows, dyt.shape[1]), x.dtype)
            np.matmul(w2.T, dyt, out=dcols)
            _im2col.fold(dcols, dx[start:stop], *geometry, threads)
    return dx, dw.reshape(w.shape), db

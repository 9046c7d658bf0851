"""Convolution (cross-correlation, NCHW, weights ``(K, C, kh, kw)``) and the im2col / col2im transforms.

float32 runs on fastconv's own engine (``csrc/``: Winograd, direct and packed implicit-GEMM kernels with a
register-blocked micro-kernel for the instruction set chosen at import, see :func:`fastconv.get_isa`). float64,
the dx of strided convolutions, and the float32 passes too small for the engine (:func:`_engine_plan`) take the
im2col + BLAS kernels of ``_conv.pyx``: each OpenMP thread unfolds a block of pixels into a cache-sized column
buffer and multiplies it with a single-threaded BLAS GEMM. :func:`conv_algorithm` tells which runs.
"""
import numpy as np

from . import _checks, _conv
from .threads import get_num_threads
from .workspace import scratch

__all__ = ["im2col", "col2im", "conv2d_forward", "conv2d_backward", "conv_algorithm"]

#: Target size in bytes of one thread's column block (it should stay in the core's L2 cache).
BLOCK_BYTES = 384 << 10


def _geometry(x_shape, kernel_size, stride, padding):
    kh, kw = _checks.pair(kernel_size, "kernel_size", 1)
    sh, sw = _checks.pair(stride, "stride", 1)
    ph, pw = _checks.pair(padding, "padding", 0)
    oh, ow = _checks.output_hw(x_shape[2:], (kh, kw), (sh, sw), (ph, pw))
    return (kh, kw, sh, sw, ph, pw), (oh, ow)


def _block_pixels(rows, pixels, itemsize):
    """Output pixels per block: about BLOCK_BYTES of columns, at least 32, blocks of equal size."""
    block = max(32, BLOCK_BYTES // (rows * itemsize))
    if block >= pixels:
        return pixels
    nblocks = -(-pixels // block)
    return -(-pixels // nblocks)


def im2col(x, kernel_size, stride=1, padding=0):
    """Unfold ``x (N, C, H, W)`` into ``cols (N*OH*OW, C*kh*kw)``: one row per output pixel, ordered ``(c, u, v)``.

    ``cols @ w.reshape(K, -1).T`` is then the convolution, as in the textbook.
    """
    x = _checks.float_array(x, "x", ndim=4)
    geometry, (oh, ow) = _geometry(x.shape, kernel_size, stride, padding)
    n, c = x.shape[:2]
    kh, kw = geometry[:2]
    cols = np.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    if cols.size:
        _conv.unfold(x, cols, *geometry, get_num_threads())
    return np.ascontiguousarray(cols.T)


def col2im(cols, input_shape, kernel_size, stride=1, padding=0):
    """Adjoint of :func:`im2col`: ``cols (N*OH*OW, C*kh*kw)`` back to ``input_shape``, summing overlaps."""
    input_shape = _checks.shape4(input_shape, "input_shape")
    cols = _checks.float_array(cols, "cols", ndim=2)
    geometry, (oh, ow) = _geometry(input_shape, kernel_size, stride, padding)
    n, c = input_shape[:2]
    kh, kw = geometry[:2]
    _checks.expect_shape(cols, (n * oh * ow, c * kh * kw), "cols")
    x = np.zeros(input_shape, dtype=cols.dtype)
    if cols.size:
        _conv.fold(np.array(cols.T, order="C"), x, *geometry, get_num_threads())   # a copy: fold writes to it
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


def _engine_shape(x_shape, k, geometry, out_hw):
    """The 13 sizes the float32 engine takes: (N, C, H, W, K, kh, kw, sh, sw, ph, pw, OH, OW)."""
    return tuple(int(v) for v in (*x_shape, k, *geometry, *out_hw))


def _engine_plan(shape, threads):
    """The engine's algorithm for each pass ``(forward, dx, dw)`` of a float32 convolution, ``None`` for a pass
    that takes the im2col + BLAS kernels. Measured on the layers of the zoo: the engine's packed GEMM and direct
    kernel lose where each packed value feeds few multiply-adds (a reduction over fewer than 64 values, or fewer
    than 64 output channels for the packed GEMM, fewer than 4 for the direct kernel, whose tiles hold 4-8
    channels; a weight gradient with fewer than 64 columns, unless it is the direct one, which packs nothing),
    and 1x1 stride-1 convolutions without padding are plain GEMMs on the images that BLAS runs without any
    unfolding. Strided 1x1 convolutions without padding (the projections of residual networks) unfold into a
    strided gather of the images and then one plain GEMM, which BLAS runs faster than the engine's packed GEMM
    and weight-gradient forms (dW 1.5-2.5x faster from 64 channels up, 28x28 to 7x7 outputs); only the direct
    forward, chosen on wide planes, beats it."""
    n, c, h, w, k, kh, kw, sh, sw, ph, pw, oh, ow = shape
    if kh == kw == sh == sw == 1 and ph == pw == 0:
        return None, None, None
    forward, dx, dw = _conv.algorithms(shape, threads)

    def kept(algorithm, reduction, outputs):
        worth = algorithm == "winograd" or reduction >= 64 and (
            algorithm == "direct" and outputs >= 4 or algorithm == "gemm" and outputs >= 64)
        return algorithm if worth else None

    if kh == kw == 1 and ph == pw == 0:          # strided 1x1
        return kept(forward if forward == "direct" else None, c, k), None, None
    dw = dw if dw == "direct" or c * kh * kw >= 64 else None
    return kept(forward, c * kh * kw, k), kept(dx, k * kh * kw, c), dw


def _engine_workspace(which, shape, threads):
    return scratch("engine-" + which, (_conv.workspace_bytes(which, shape, threads),), np.uint8)


def conv_algorithm(x_shape, w_shape, stride=1, padding=0, dtype=np.float32):
    """Which algorithm each pass of a convolution of these shapes runs, with the current instruction set and
    thread count: ``{"forward": ..., "dx": ..., "dw": ...}``.

    float32: ``"gemm"`` (packed implicit GEMM), ``"direct"`` (forward and dx: micro-kernel on the flattened,
    zero-padded planes of one image, split into phases for strides above 1, few channels on wide planes; weight
    gradient: 3x3 layers of up to 128 output channels, which sit on the vector lanes), ``"winograd"``
    (F(4x4,3x3) or F(3x3,3x3) tiles, whichever multiplies less, for 3x3 stride-1 layers with a batch of at least
    two vectors, on planes of 3x3 and up; its weight gradient is the transposed algorithm on the same tiles),
    ``"outer-product"`` / ``"dot-product"`` (the two weight-gradient GEMM forms), ``"im2col-blas"``
    (dx of strided convolutions, 1x1 convolutions without padding except a direct strided forward, and passes
    whose reductions are too short for the engine). float64 always runs ``"im2col-blas"``.
    """
    x_shape = _checks.shape4(x_shape, "x_shape")
    w_shape = _checks.shape4(w_shape, "w_shape")
    if x_shape[1] != w_shape[1]:
        raise ValueError(f"x_shape has {x_shape[1]} channels but w_shape expects {w_shape[1]}")
    geometry, out_hw = _geometry(x_shape, w_shape[2:], stride, padding)
    if np.dtype(dtype) not in _checks.FLOAT_TYPES:
        raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
    if np.dtype(dtype) == np.float64:
        return {"forward": "im2col-blas", "dx": "im2col-blas", "dw": "im2col-blas"}
    plan = _engine_plan(_engine_shape(x_shape, w_shape[0], geometry, out_hw), get_num_threads())
    return {p: algorithm or "im2col-blas" for p, algorithm in zip(("forward", "dx", "dw"), plan)}


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
    threads = get_num_threads()
    shape = _engine_shape(x.shape, k, geometry, (oh, ow))
    if x.dtype == np.float32 and _engine_plan(shape, threads)[0]:
        bias = b if b is not None else np.zeros(1, np.float32)
        _conv.forward_f32(x, w, bias, b is not None, y, _engine_workspace("forward", shape, threads), shape, threads)
        return y
    block = _block_pixels(rows, pixels, x.itemsize)
    work = scratch("cols", (threads, rows * block), x.dtype)
    bias = b if b is not None else np.zeros(1, dtype=x.dtype)
    _conv.forward(x, w.reshape(k, rows), bias, b is not None, y.reshape(n, k, pixels), work, block,
                  *geometry, threads)
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
    threads = get_num_threads()
    shape = _engine_shape(x.shape, k, geometry, (oh, ow))
    if x.dtype != np.float32 or n == 0:
        return _blas_backward(dy, x, w, geometry, need_dx)
    _, engine_dx, engine_dw = _engine_plan(shape, threads)
    if not engine_dw:
        return _blas_backward(dy, x, w, geometry, need_dx)
    dw, db = np.empty_like(w), np.empty(k, np.float32)
    _conv.dw_f32(dy, x, dw, db, _engine_workspace("dw", shape, threads), shape, threads)
    if not need_dx:
        return None, dw, db
    if engine_dx:
        dx = np.empty_like(x)
        _conv.dx_f32(dy, w, dx, _engine_workspace("dx", shape, threads), shape, threads)
        return dx, dw, db
    return _blas_backward(dy, x, w, geometry, need_dx=True, need_dw=False)[0], dw, db


def _blas_backward(dy, x, w, geometry, need_dx, need_dw=True):
    """``(dx, dw, db)`` by im2col blocks and BLAS (float64, and the dx of strided float32 convolutions); with
    ``need_dw=False`` only ``dx`` (dw and db come back as zeros)."""
    n, k = x.shape[0], w.shape[0]
    rows, pixels = w[0].size, dy.shape[2] * dy.shape[3]
    threads = get_num_threads()
    block = _block_pixels(rows, pixels, x.itemsize)
    dx = np.empty_like(x) if need_dx else None
    groups = max(1, min(n, 4 * threads))   # fixed image groups: results independent of thread timing
    dw_part = np.zeros((groups, k, rows) if need_dw else (groups, 1, 1), dtype=x.dtype)   # unused without dw
    db_part = np.zeros((groups, k) if need_dw else (groups, 1), dtype=x.dtype)
    if n:
        work = scratch("cols", (threads, rows * block), x.dtype)
        dwork = scratch("dcols", (threads, rows * block), x.dtype)
        _conv.backward(dy.reshape(n, k, pixels), x, w.reshape(k, rows),
                       dx if need_dx else np.empty((0, 0, 0, 0), x.dtype), need_dx, need_dw,
                       dw_part, db_part, work, dwork, block, *geometry, threads)
    if not need_dw:
        return dx, np.zeros_like(w), np.zeros(k, dtype=x.dtype)
    return dx, dw_part.sum(axis=0).reshape(w.shape), db_part.sum(axis=0)

"""Max and average pooling over NCHW input (padding: -inf for max, zeros for average)."""
import numpy as np

from . import _checks, _pool
from .threads import get_num_threads

__all__ = ["maxpool2d_forward", "maxpool2d_backward", "avgpool2d_forward", "avgpool2d_backward"]


def _pool_geometry(in_shape, kernel_size, stride, padding):
    kh, kw = _checks.pair(kernel_size, "kernel_size", 1)
    sh, sw = _checks.pair((kh, kw) if stride is None else stride, "stride", 1)
    ph, pw = _checks.pair(padding, "padding", 0)
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"padding {(ph, pw)} must be at most half the kernel size {(kh, kw)}")
    if 0 in in_shape[2:]:
        raise ValueError(f"input height and width must be at least 1 for pooling, got shape {tuple(in_shape)}")
    oh, ow = _checks.output_hw(in_shape[2:], (kh, kw), (sh, sw), (ph, pw))
    return (kh, kw, sh, sw, ph, pw), (oh, ow)


def _planes(a):
    """``(N, C, H, W)`` viewed as ``(N*C, H, W)``."""
    return a.reshape(-1, a.shape[2], a.shape[3])


def maxpool2d_forward(x, kernel_size, stride=None, padding=0):
    """``(y, indices)``, both ``(N, C, OH, OW)``; ``indices`` int64 holds ``h*W + w`` of each max in its plane.

    ``stride`` defaults to ``kernel_size``. A NaN in a window is the max (the first one wins); ties go to the
    first position in row-major order.
    """
    x = _checks.float_array(x, "x", ndim=4)
    geometry, (oh, ow) = _pool_geometry(x.shape, kernel_size, stride, padding)
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    indices = np.empty((n, c, oh, ow), dtype=np.int64)
    if y.size:
        _pool.maxpool_forward(_planes(x), _planes(y), _planes(indices), *geometry, get_num_threads())
    return y, indices


def maxpool2d_backward(dy, indices, input_shape):
    """``dx`` of ``input_shape``: each ``dy`` element added at the input position named by ``indices``."""
    dy = _checks.float_array(dy, "dy", ndim=4)
    indices = np.asarray(indices)
    if not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"indices must be an integer array (int64), got {indices.dtype}")
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    _checks.expect_shape(indices, dy.shape, "indices")
    input_shape = _checks.shape4(input_shape, "input_shape")
    if input_shape[:2] != dy.shape[:2]:
        raise ValueError(f"input_shape {input_shape} does not match dy's batch and channels {dy.shape[:2]}")
    n, c, h, w = input_shape
    dx = np.empty(input_shape, dtype=dy.dtype)
    if dx.size == 0 or dy.size == 0:
        dx[...] = 0
        return dx
    bad = _pool.maxpool_backward(_planes(dy), _planes(indices), dx.reshape(n * c, h * w), get_num_threads())
    if bad:
        raise ValueError(f"{bad} entries of indices are outside [0, {h * w}) (H*W of input_shape {input_shape})")
    return dx


def avgpool2d_forward(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Window means ``(N, C, OH, OW)``; zero padding counts in the divisor unless ``count_include_pad=False``."""
    x = _checks.float_array(x, "x", ndim=4)
    geometry, (oh, ow) = _pool_geometry(x.shape, kernel_size, stride, padding)
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    if y.size:
        _pool.avgpool_forward(_planes(x), _planes(y), *geometry, bool(count_include_pad), get_num_threads())
    return y


def avgpool2d_backward(dy, input_shape, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Gradient of :func:`avgpool2d_forward`: ``dx`` of ``input_shape``."""
    dy = _checks.float_array(dy, "dy", ndim=4)
    input_shape = _checks.shape4(input_shape, "input_shape")
    geometry, (oh, ow) = _pool_geometry(input_shape, kernel_size, stride, padding)
    _checks.expect_shape(dy, input_shape[:2] + (oh, ow), "dy")
    dx = np.empty(input_shape, dtype=dy.dtype)
    if dx.size == 0:
        return dx
    _pool.avgpool_backward(_planes(dy), _planes(dx), *geometry, bool(count_include_pad), get_num_threads())
    return dx

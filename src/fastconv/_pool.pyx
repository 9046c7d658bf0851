"""Max and average pooling over NCHW planes: single-pass loops, one input plane per OpenMP task.

Window ``(i, j)`` covers input rows ``i*sh - ph .. i*sh - ph + kh - 1`` (and columns alike), clipped to the
input; callers guarantee ``ph <= kh // 2`` and ``pw <= kw // 2`` so no window is entirely padding.
"""
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memset

ctypedef fused floating:
    float
    double


def maxpool_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, int64_t[:, :, ::1] indices,
                    int H, int W, int kh, int kw, int sh, int sw, int ph, int pw, int num_threads):
    """``x (NC, H, W)`` -> ``y, indices (NC, OH, OW)``; NaN wins (first NaN), ties go to the first."""
    cdef Py_ssize_t NC = x.shape[0], OH = y.shape[1], OW = y.shape[2]
    cdef Py_ssize_t plane, i, j, h0, h1, w0, w1, hh, ww
    cdef int64_t best_at
    cdef floating best, val
    cdef const floating *src
    with nogil:
        for plane in prange(NC, schedule="static", num_threads=num_threads):
            src = &x[plane, 0, 0]
            for i in range(OH):
                h0 = i * sh - ph
                h1 = h0 + kh if h0 + kh < H else H
                h0 = h0 if h0 > 0 else 0
                for j in range(OW):
                    w0 = j * sw - pw
                    w1 = w0 + kw if w0 + kw < W else W
                    w0 = w0 if w0 > 0 else 0
                    best_at = h0 * W + w0
                    best = src[best_at]
                    hh = h0
                    while hh < h1 and best == best:
                        for ww in range(w0, w1):
                            val = src[hh * W + ww]
                            if val > best or val != val:
                                best = val
                                best_at = hh * W + ww
                                if val != val:
                                    break
                        hh = hh + 1
                    y[plane, i, j] = best
                    indices[plane, i, j] = best_at


def maxpool_backward(const floating[:, :, ::1] dy, const int64_t[:, :, ::1] indices,
                     floating[:, ::1] dx, int num_threads):
    """``dx (NC, H*W)``: each ``dy`` added at its index. Returns the number of out-of-range indices
    (those are skipped; the caller raises)."""
    cdef Py_ssize_t NC = dy.shape[0], OH = dy.shape[1], OW = dy.shape[2], HW = dx.shape[1]
    cdef Py_ssize_t plane, i, j
    cdef int64_t at
    cdef Py_ssize_t bad = 0
    with nogil:
        for plane in prange(NC, schedule="static", num_threads=num_threads):
            memset(&dx[plane, 0], 0, HW * sizeof(floating))
            for i in range(OH):
                for j in range(OW):
                    at = indices[plane, i, j]
                    if at < 0 or at >= HW:
                        bad += 1
                    else:
                        dx[plane, at] += dy[plane, i, j]
    return bad


cdef inline floating window_divisor(floating area, Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t w0,
                                    Py_ssize_t w1, bint count_include_pad) noexcept nogil:
    return area if count_include_pad else <floating>((h1 - h0) * (w1 - w0))


def avgpool_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                    int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                    bint count_include_pad, int num_threads):
    """``y (NC, OH, OW)`` = window sums of ``x (NC, H, W)`` over the divisor (see ``count_include_pad``)."""
    cdef Py_ssize_t NC = x.shape[0], OH = y.shape[1], OW = y.shape[2]
    cdef Py_ssize_t plane, i, j, h0, h1, w0, w1, hh, ww
    cdef floating acc, area = kh * kw
    cdef const floating *src
    with nogil:
        for plane in prange(NC, schedule="static", num_threads=num_threads):
            src = &x[plane, 0, 0]
            for i in range(OH):
                h0 = i * sh - ph
                h1 = h0 + kh if h0 + kh < H else H
                h0 = h0 if h0 > 0 else 0
                for j in range(OW):
                    w0 = j * sw - pw
                    w1 = w0 + kw if w0 + kw < W else W
                    w0 = w0 if w0 > 0 else 0
                    acc = 0
                    for hh in range(h0, h1):
                        for ww in range(w0, w1):
                            acc = acc + src[hh * W + ww]
                    y[plane, i, j] = acc / window_divisor(area, h0, h1, w0, w1, count_include_pad)


def avgpool_backward(const floating[:, :, ::1] dy, floating[:, :, ::1] dx,
                     int kh, int kw, int sh, int sw, int ph, int pw,
                     bint count_include_pad, int num_threads):
    """``dx (NC, H, W)``: each ``dy / divisor`` spread evenly over its window."""
    cdef Py_ssize_t NC = dy.shape[0], OH = dy.shape[1], OW = dy.shape[2]
    cdef Py_ssize_t H = dx.shape[1], W = dx.shape[2]
    cdef Py_ssize_t plane, i, j, h0, h1, w0, w1, hh, ww
    cdef floating g, area = kh * kw
    cdef floating *dst
    with nogil:
        for plane in prange(NC, schedule="static", num_threads=num_threads):
            dst = &dx[plane, 0, 0]
            memset(dst, 0, H * W * sizeof(floating))
            for i in range(OH):
                h0 = i * sh - ph
                h1 = h0 + kh if h0 + kh < H else H
                h0 = h0 if h0 > 0 else 0
                for j in range(OW):
                    w0 = j * sw - pw
                    w1 = w0 + kw if w0 + kw < W else W
                    w0 = w0 if w0 > 0 else 0
                    g = dy[plane, i, j] / window_divisor(area, h0, h1, w0, w1, count_include_pad)
                    for hh in range(h0, h1):
                        for ww in range(w0, w1):
                            dst[hh * W + ww] += g

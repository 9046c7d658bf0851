"""Max and average pooling over NCHW planes: single-pass loops, one input plane per OpenMP task.

Window ``(i, j)`` covers input rows ``i*sh - ph .. i*sh - ph + kh - 1`` (and columns alike), clipped to the
input; callers guarantee ``ph <= kh // 2`` and ``pw <= kw // 2`` so no window is entirely padding.
Each plane is handled by a ``cdef`` function, so its loop variables are plain C locals (inside a ``prange``
body they would be shared with the OpenMP runtime, which makes the inner loops several times slower).
"""
from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memset

ctypedef fused floating:
    float
    double


cdef struct Window:
    Py_ssize_t H, W, OH, OW, kh, kw, sh, sw, ph, pw   # sizes: never C int (a plane may exceed 2**31 values)


cdef inline void clip(Py_ssize_t start, Py_ssize_t size, Py_ssize_t length, Py_ssize_t *lo,
                      Py_ssize_t *hi) noexcept nogil:
    """``[lo, hi)`` = ``[start, start + size)`` clipped to ``[0, length)``."""
    hi[0] = start + size if start + size < length else length
    lo[0] = start if start > 0 else 0


cdef bint has_nan(const floating *src, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    cdef int found = 0
    for k in range(n):
        found = found | (src[k] != src[k])
    return found


cdef void maxpool_plane(const floating *src, floating *y, int64_t *indices, Window g) noexcept nogil:
    """Max and first argmax of each window. The update is written as selects, which compile to conditional
    moves (a data-dependent branch would mispredict about half the time). A plane holding a NaN takes the
    slower :func:`maxpool_plane_nan` instead, since testing for NaN inside the loop defeats the selects."""
    cdef Py_ssize_t i, j, h0, h1, w0, w1, hh, ww, at, here
    cdef floating best, val
    if has_nan(src, g.H * g.W):
        maxpool_plane_nan(src, y, indices, g)
        return
    for i in range(g.OH):
        clip(i * g.sh - g.ph, g.kh, g.H, &h0, &h1)
        for j in range(g.OW):
            clip(j * g.sw - g.pw, g.kw, g.W, &w0, &w1)
            at = h0 * g.W + w0
            best = src[at]
            for hh in range(h0, h1):
                for ww in range(w0, w1):
                    here = hh * g.W + ww
                    val = src[here]
                    at = here if val > best else at
                    best = val if val > best else best
            y[i * g.OW + j] = best
            indices[i * g.OW + j] = at


cdef void maxpool_plane_nan(const floating *src, floating *y, int64_t *indices, Window g) noexcept nogil:
    """As :func:`maxpool_plane`, but a NaN is the max of its window (the first NaN wins, as in NumPy)."""
    cdef Py_ssize_t i, j, h0, h1, w0, w1, hh, ww, at
    cdef floating best, val
    for i in range(g.OH):
        clip(i * g.sh - g.ph, g.kh, g.H, &h0, &h1)
        for j in range(g.OW):
            clip(j * g.sw - g.pw, g.kw, g.W, &w0, &w1)
            at = h0 * g.W + w0
            best = src[at]
            for hh in range(h0, h1):
                for ww in range(w0, w1):
                    val = src[hh * g.W + ww]
                    if best == best and (val > best or val != val):
                        best = val
                        at = hh * g.W + ww
            y[i * g.OW + j] = best
            indices[i * g.OW + j] = at


cdef Window make_window(Py_ssize_t H, Py_ssize_t W, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw,
                        Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw) noexcept:
    cdef Window g
    g.H, g.W, g.OH, g.OW, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw = H, W, OH, OW, kh, kw, sh, sw, ph, pw
    return g


cdef void maxpool_plane_2x2(const floating *src, floating *y, int64_t *indices, Window g) noexcept nogil:
    """:func:`maxpool_plane` for 2x2 windows, stride 2, no padding (the classic networks' pool): the max of each
    row pair, then of the two rows, each index from a comparison (integer arithmetic and max instructions, no
    branch); strict comparisons keep the first maximum in row-major order."""
    cdef Py_ssize_t i, j, top, first, second, lower
    cdef floating a, b, c, d, upper_max, lower_max
    cdef const floating *r0
    cdef const floating *r1
    if has_nan(src, g.H * g.W):
        maxpool_plane_nan(src, y, indices, g)
        return
    for i in range(g.OH):
        r0 = src + 2 * i * g.W
        r1 = r0 + g.W
        top = 2 * i * g.W
        for j in range(g.OW):
            a = r0[2 * j]
            b = r0[2 * j + 1]
            c = r1[2 * j]
            d = r1[2 * j + 1]
            first = b > a
            second = d > c
            upper_max = b if b > a else a
            lower_max = d if d > c else c
            lower = lower_max > upper_max
            y[i * g.OW + j] = lower_max if lower_max > upper_max else upper_max
            indices[i * g.OW + j] = top + 2 * j + first + lower * (g.W + second - first)


def maxpool_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, int64_t[:, :, ::1] indices,
                    Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                    Py_ssize_t ph, Py_ssize_t pw, int num_threads):
    """``x (NC, H, W)`` -> ``y, indices (NC, OH, OW)``; ties go to the first position in row-major order."""
    cdef Window g = make_window(x.shape[1], x.shape[2], y.shape[1], y.shape[2], kh, kw, sh, sw, ph, pw)
    cdef Py_ssize_t plane
    cdef bint two_by_two = kh == kw == sh == sw == 2 and ph == pw == 0
    with nogil:
        for plane in prange(x.shape[0], schedule="dynamic", chunksize=16, num_threads=num_threads):
            if two_by_two:
                maxpool_plane_2x2(&x[plane, 0, 0], &y[plane, 0, 0], &indices[plane, 0, 0], g)
            else:
                maxpool_plane(&x[plane, 0, 0], &y[plane, 0, 0], &indices[plane, 0, 0], g)


cdef Py_ssize_t maxpool_backward_plane(const floating *dy, const int64_t *indices, Py_ssize_t n_out,
                                       floating *dx, Py_ssize_t n_in) noexcept nogil:
    """Add each ``dy`` at its index; return how many indices were outside ``[0, n_in)`` (skipped)."""
    cdef Py_ssize_t o, bad = 0
    cdef int64_t at
    memset(dx, 0, n_in * sizeof(floating))
    for o in range(n_out):
        at = indices[o]
        if 0 <= at < n_in:
            dx[at] += dy[o]
        else:
            bad += 1
    return bad


def maxpool_backward(const floating[:, :, ::1] dy, const int64_t[:, :, ::1] indices,
                     floating[:, ::1] dx, int num_threads):
    """``dx (NC, H*W)``: each ``dy`` added at its index. Returns the number of out-of-range indices
    (those are skipped; the caller raises)."""
    cdef Py_ssize_t plane, n_out = dy.shape[1] * dy.shape[2], bad = 0
    with nogil:
        for plane in prange(dy.shape[0], schedule="dynamic", chunksize=16, num_threads=num_threads):
            bad += maxpool_backward_plane(&dy[plane, 0, 0], &indices[plane, 0, 0], n_out,
                                          &dx[plane, 0], dx.shape[1])
    return bad


cdef floating run_sum(const floating *src, Py_ssize_t n) noexcept nogil:
    """Sum of ``src[:n]`` in eight lanes (independent chains the compiler turns into vector additions), then the
    lanes and the tail."""
    cdef floating lane[8]
    cdef floating total
    cdef Py_ssize_t k, m = 0
    for k in range(8):
        lane[k] = 0
    while m + 8 <= n:
        for k in range(8):
            lane[k] = lane[k] + src[m + k]
        m += 8
    total = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]))
    while m < n:
        total = total + src[m]
        m += 1
    return total


cdef floating window_sum(const floating *src, Py_ssize_t W, Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t w0,
                         Py_ssize_t w1) noexcept nogil:
    """Sum of ``src[h0:h1, w0:w1]`` (row stride ``W``) with four running sums, so wide windows (global
    pooling) are not bound by the latency of one chain of additions."""
    cdef Py_ssize_t hh, ww, n = w1 - w0
    cdef floating a0 = 0, a1 = 0, a2 = 0, a3 = 0
    cdef const floating *row
    if w0 == 0 and w1 == W:      # full-width rows are one contiguous run (global pooling: the whole plane)
        return run_sum(src + h0 * W, (h1 - h0) * W)
    for hh in range(h0, h1):
        row = src + hh * W + w0
        ww = 0
        while ww + 4 <= n:
            a0 = a0 + row[ww]
            a1 = a1 + row[ww + 1]
            a2 = a2 + row[ww + 2]
            a3 = a3 + row[ww + 3]
            ww = ww + 4
        while ww < n:
            a0 = a0 + row[ww]
            ww = ww + 1
    return (a0 + a1) + (a2 + a3)


cdef void avgpool_plane(const floating *src, floating *y, Window g, bint count_include_pad) noexcept nogil:
    cdef Py_ssize_t i, j, h0, h1, w0, w1
    cdef floating area = g.kh * g.kw
    for i in range(g.OH):
        clip(i * g.sh - g.ph, g.kh, g.H, &h0, &h1)
        for j in range(g.OW):
            clip(j * g.sw - g.pw, g.kw, g.W, &w0, &w1)
            y[i * g.OW + j] = window_sum(src, g.W, h0, h1, w0, w1) / (
                area if count_include_pad else <floating>((h1 - h0) * (w1 - w0)))


cdef void avgpool_plane_2x2(const floating *src, floating *y, Window g) noexcept nogil:
    """:func:`avgpool_plane` for 2x2 windows, stride 2, no padding: straight-line sums of four."""
    cdef Py_ssize_t i, j
    cdef const floating *r0
    cdef const floating *r1
    for i in range(g.OH):
        r0 = src + 2 * i * g.W
        r1 = r0 + g.W
        for j in range(g.OW):
            y[i * g.OW + j] = ((r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1])) / 4


def avgpool_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                    Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                    Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad, int num_threads):
    """``y (NC, OH, OW)`` = window sums of ``x (NC, H, W)`` over the divisor (see ``count_include_pad``)."""
    cdef Window g = make_window(x.shape[1], x.shape[2], y.shape[1], y.shape[2], kh, kw, sh, sw, ph, pw)
    cdef Py_ssize_t plane
    cdef bint two_by_two = kh == kw == sh == sw == 2 and ph == pw == 0
    with nogil:
        for plane in prange(x.shape[0], schedule="dynamic", chunksize=16, num_threads=num_threads):
            if two_by_two:
                avgpool_plane_2x2(&x[plane, 0, 0], &y[plane, 0, 0], g)
            else:
                avgpool_plane(&x[plane, 0, 0], &y[plane, 0, 0], g, count_include_pad)


cdef void avgpool_backward_plane(const floating *dy, floating *dx, Window g, bint count_include_pad) noexcept nogil:
    cdef Py_ssize_t i, j, h0, h1, w0, w1, hh, ww
    cdef floating grad, area = g.kh * g.kw
    memset(dx, 0, g.H * g.W * sizeof(floating))
    for i in range(g.OH):
        clip(i * g.sh - g.ph, g.kh, g.H, &h0, &h1)
        for j in range(g.OW):
            clip(j * g.sw - g.pw, g.kw, g.W, &w0, &w1)
            grad = dy[i * g.OW + j] / (area if count_include_pad else <floating>((h1 - h0) * (w1 - w0)))
            for hh in range(h0, h1):
                for ww in range(w0, w1):
                    dx[hh * g.W + ww] += grad


cdef void avgpool_backward_tiled(const floating *dy, floating *dx, Window g) noexcept nogil:
    """:func:`avgpool_backward_plane` for windows that tile the plane (stride = kernel, no padding): every input
    value gets its window's ``dy / area`` or, past the last window, 0; written once, no accumulation."""
    cdef Py_ssize_t i, j, hh, ww
    cdef floating grad, area = g.kh * g.kw
    cdef floating *row
    for i in range(g.OH):
        if g.kw == g.W:      # one window per band of rows (global pooling): the band is one contiguous run
            grad = dy[i] / area
            row = dx + i * g.kh * g.W
            for ww in range(g.kh * g.W):
                row[ww] = grad
            continue
        for hh in range(i * g.kh, (i + 1) * g.kh):
            row = dx + hh * g.W
            if g.kw == 2:
                for j in range(g.OW):
                    grad = dy[i * g.OW + j] / area
                    row[2 * j] = grad
                    row[2 * j + 1] = grad
            else:
                for j in range(g.OW):
                    grad = dy[i * g.OW + j] / area
                    for ww in range(j * g.kw, (j + 1) * g.kw):
                        row[ww] = grad
            for ww in range(g.OW * g.kw, g.W):
                row[ww] = 0
    if g.OH * g.kh < g.H:
        memset(dx + g.OH * g.kh * g.W, 0, (g.H - g.OH * g.kh) * g.W * sizeof(floating))


def avgpool_backward(const floating[:, :, ::1] dy, floating[:, :, ::1] dx,
                     Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                     Py_ssize_t ph, Py_ssize_t pw, bint count_include_pad, int num_threads):
    """``dx (NC, H, W)``: each ``dy / divisor`` spread evenly over its window."""
    cdef Window g = make_window(dx.shape[1], dx.shape[2], dy.shape[1], dy.shape[2], kh, kw, sh, sw, ph, pw)
    cdef Py_ssize_t plane
    cdef bint tiled = sh == kh and sw == kw and ph == pw == 0
    with nogil:
        for plane in prange(dy.shape[0], schedule="dynamic", chunksize=16, num_threads=num_threads):
            if tiled:
                avgpool_backward_tiled(&dy[plane, 0, 0], &dx[plane, 0, 0], g)
            else:
                avgpool_backward_plane(&dy[plane, 0, 0], &dx[plane, 0, 0], g, count_include_pad)

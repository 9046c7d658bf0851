"""Unfold / fold between NCHW images and the column matrix of a convolution.

Internal layout (the one GEMM wants): ``cols (C*kh*kw, N*OH*OW)``; row ``(c*kh + u)*kw + v`` holds, for
every output pixel of every image, the input value under kernel tap ``(u, v)`` of channel ``c`` (0 in the
padding). The public :func:`fastconv.im2col` returns the transpose of this matrix.
"""
from cython.parallel cimport prange
from libc.string cimport memset

ctypedef fused floating:
    float
    double


cdef inline Py_ssize_t first_valid(Py_ssize_t offset, Py_ssize_t stride) noexcept nogil:
    """Smallest j >= 0 with j*stride + offset >= 0."""
    if offset >= 0:
        return 0
    return (-offset + stride - 1) // stride


cdef inline Py_ssize_t end_valid(Py_ssize_t offset, Py_ssize_t stride, Py_ssize_t size,
                                 Py_ssize_t n_out) noexcept nogil:
    """One past the largest j < n_out with j*stride + offset < size (at least first_valid)."""
    cdef Py_ssize_t j
    if size - 1 - offset < 0:
        return 0
    j = (size - 1 - offset) // stride + 1
    return j if j < n_out else n_out


def unfold(const floating[:, :, :, ::1] x, floating[:, ::1] cols,
           int kh, int kw, int sh, int sw, int ph, int pw, int num_threads):
    """Fill ``cols (C*kh*kw, N*OH*OW)`` from ``x (N, C, H, W)``. Shapes are checked by the caller."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = (H + 2 * ph - kh) // sh + 1, OW = (W + 2 * pw - kw) // sw + 1
    cdef Py_ssize_t rows = C * kh * kw
    cdef Py_ssize_t row, c, u, v, n, i, j, j0, j1, hi, off
    cdef floating *dst
    cdef const floating *src
    with nogil:
        for row in prange(rows, schedule="static", num_threads=num_threads):
            c = row // (kh * kw)
            u = (row // kw) % kh
            v = row % kw
            j0 = first_valid(v - pw, sw)
            j1 = end_valid(v - pw, sw, W, OW)
            if j1 < j0:
                j1 = j0
            for n in range(N):
                for i in range(OH):
                    dst = &cols[row, (n * OH + i) * OW]
                    hi = i * sh - ph + u
                    if hi < 0 or hi >= H:
                        memset(dst, 0, OW * sizeof(floating))
                        continue
                    src = &x[n, c, hi, 0]
                    off = v - pw
                    for j in range(j0):
                        dst[j] = 0
                    if sw == 1:
                        for j in range(j0, j1):
                            dst[j] = src[j + off]
                    else:
                        for j in range(j0, j1):
                            dst[j] = src[j * sw + off]
                    for j in range(j1, OW):
                        dst[j] = 0


def fold(const floating[:, ::1] cols, floating[:, :, :, ::1] x,
         int kh, int kw, int sh, int sw, int ph, int pw, int num_threads):
    """Adjoint of :func:`unfold`: ``x (N, C, H, W)`` = sum of every column entry at its input position."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = (H + 2 * ph - kh) // sh + 1, OW = (W + 2 * pw - kw) // sw + 1
    cdef Py_ssize_t nc, n, c, u, v, i, j, j0, j1, hi, off
    cdef floating *dst
    cdef const floating *src
    with nogil:
        for nc in prange(N * C, schedule="static", num_threads=num_threads):
            n = nc // C
            c = nc % C
            memset(&x[n, c, 0, 0], 0, H * W * sizeof(floating))
            for u in range(kh):
                for v in range(kw):
                    off = v - pw
                    j0 = first_valid(off, sw)
                    j1 = end_valid(off, sw, W, OW)
                    for i in range(OH):
                        hi = i * sh - ph + u
                        if hi < 0 or hi >= H:
                            continue
                        dst = &x[n, c, hi, 0]
                        src = &cols[(c * kh + u) * kw + v, (n * OH + i) * OW]
                        if sw == 1:
                            for j in range(j0, j1):
                                dst[j + off] += src[j]
                        else:
                            for j in range(j0, j1):
                                dst[j * sw + off] += src[j]

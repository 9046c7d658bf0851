"""The memory-bound steps around a convolution's GEMMs: batch <-> channel-major moves fused with bias work.

The GEMM result ``yt (K, N*P)`` (P = OH*OW pixels per image) is channel-major; the layer wants NCHW.
"""
from cython.parallel cimport prange

ctypedef fused floating:
    float
    double


def scatter_output(const floating[:, ::1] yt, const floating[::1] bias, floating[:, :, ::1] y,
                   bint has_bias, int num_threads):
    """``y[n, k, p] = yt[k, n*P + p] (+ bias[k])`` for ``y (N, K, P)``."""
    cdef Py_ssize_t N = y.shape[0], K = y.shape[1], P = y.shape[2]
    cdef Py_ssize_t nk, n, k, p
    cdef floating b
    cdef const floating *src
    cdef floating *dst
    with nogil:
        for nk in prange(N * K, schedule="static", num_threads=num_threads):
            n = nk // K
            k = nk % K
            b = bias[k] if has_bias else 0
            src = &yt[k, n * P]
            dst = &y[n, k, 0]
            for p in range(P):
                dst[p] = src[p] + b


def gather_grad(const floating[:, :, ::1] dy, floating[:, ::1] dyt, floating[::1] db, int num_threads):
    """``dyt[k, n*P + p] = dy[n, k, p]`` and ``db[k] = sum over n, p of dy[n, k, p]``."""
    cdef Py_ssize_t N = dy.shape[0], K = dy.shape[1], P = dy.shape[2]
    cdef Py_ssize_t n, k, p
    cdef double acc
    cdef const floating *src
    cdef floating *dst
    with nogil:
        for k in prange(K, schedule="static", num_threads=num_threads):
            acc = 0
            for n in range(N):
                src = &dy[n, k, 0]
                dst = &dyt[k, n * P]
                for p in range(P):
                    dst[p] = src[p]
                    acc = acc + src[p]
            db[k] = <floating>acc

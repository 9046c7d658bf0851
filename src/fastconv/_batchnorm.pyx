"""Batch normalisation per channel over ``x (N, C, M)`` (M = H*W, or 1 for 2-D input), one channel per task.

Statistics are accumulated in double precision; the variance uses sums shifted by the channel's first value,
so one pass over ``x`` gives both moments without the cancellation of the naive ``E[x^2] - E[x]^2``.
Per-channel work lives in ``cdef`` functions so the loop variables are plain C locals.
"""
from cython.parallel cimport prange
from libc.math cimport sqrt

ctypedef fused floating:
    float
    double


cdef struct Layout:
    Py_ssize_t N, C, M     # x[n, c, m] is at (n*C + c)*M + m


cdef void forward_channel(const floating *x, const floating *gamma, const floating *beta, double eps,
                          floating *y, floating *mean, floating *invstd, Layout s, Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t n, m, row
    cdef double shift = x[c * s.M], d, s1 = 0, s2 = 0, mu, var, count = s.N * s.M
    cdef floating scale, centre, offset
    for n in range(s.N):
        row = (n * s.C + c) * s.M
        for m in range(s.M):
            d = x[row + m] - shift
            s1 += d
            s2 += d * d
    mu = s1 / count
    var = s2 / count - mu * mu
    var = var if var > 0 else 0
    mean[c] = <floating>(shift + mu)
    invstd[c] = <floating>(1.0 / sqrt(var + eps))
    scale = gamma[c] * invstd[c]
    centre = mean[c]
    offset = beta[c]
    for n in range(s.N):
        row = (n * s.C + c) * s.M
        for m in range(s.M):
            y[row + m] = (x[row + m] - centre) * scale + offset


def forward(const floating[:, :, ::1] x, const floating[::1] gamma, const floating[::1] beta, double eps,
            floating[:, :, ::1] y, floating[::1] mean, floating[::1] invstd, int num_threads):
    """Training mode: batch statistics into ``mean``/``invstd`` and the normalised, scaled ``y``."""
    cdef Layout s = Layout(x.shape[0], x.shape[1], x.shape[2])
    cdef Py_ssize_t c
    with nogil:
        for c in prange(s.C, schedule="dynamic", num_threads=num_threads):
            forward_channel(&x[0, 0, 0], &gamma[0], &beta[0], eps, &y[0, 0, 0], &mean[0], &invstd[0], s, c)


cdef void backward_channel(const floating *dy, const floating *x, const floating *gamma, const floating *mean,
                           const floating *invstd, floating *dx, floating *dgamma, floating *dbeta,
                           Layout s, Py_ssize_t c) noexcept nogil:
    """``dx = gamma*invstd * (dy - mean(dy) - xhat*mean(dy*xhat))``, written as ``k1*dy + k2*(x - mean) + k3``."""
    cdef Py_ssize_t n, m, row
    cdef double sdy = 0, sdyx = 0, inv = invstd[c], count = s.N * s.M
    cdef floating centre = mean[c], k1, k2, k3
    for n in range(s.N):
        row = (n * s.C + c) * s.M
        for m in range(s.M):
            sdy += dy[row + m]
            sdyx += dy[row + m] * (x[row + m] - centre)
    dbeta[c] = <floating>sdy
    dgamma[c] = <floating>(sdyx * inv)
    k1 = <floating>(gamma[c] * inv)
    k2 = <floating>(-gamma[c] * inv * inv * inv * sdyx / count)
    k3 = <floating>(-gamma[c] * inv * sdy / count)
    for n in range(s.N):
        row = (n * s.C + c) * s.M
        for m in range(s.M):
            dx[row + m] = k1 * dy[row + m] + k2 * (x[row + m] - centre) + k3


def backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] x, const floating[::1] gamma,
             const floating[::1] mean, const floating[::1] invstd,
             floating[:, :, ::1] dx, floating[::1] dgamma, floating[::1] dbeta, int num_threads):
    """Gradients of :func:`forward` into ``dx``, ``dgamma``, ``dbeta``."""
    cdef Layout s = Layout(x.shape[0], x.shape[1], x.shape[2])
    cdef Py_ssize_t c
    with nogil:
        for c in prange(s.C, schedule="dynamic", num_threads=num_threads):
            backward_channel(&dy[0, 0, 0], &x[0, 0, 0], &gamma[0], &mean[0], &invstd[0],
                             &dx[0, 0, 0], &dgamma[0], &dbeta[0], s, c)


cdef void affine_rows(const floating *x, floating scale, floating offset, floating *y, Py_ssize_t M) noexcept nogil:
    cdef Py_ssize_t m
    for m in range(M):
        y[m] = x[m] * scale + offset


def inference(const floating[:, :, ::1] x, const floating[::1] scale, const floating[::1] offset,
              floating[:, :, ::1] y, int num_threads):
    """``y = x*scale[c] + offset[c]`` (the stored statistics folded into one affine map)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], M = x.shape[2]
    cdef Py_ssize_t nc
    with nogil:
        for nc in prange(N * C, schedule="dynamic", chunksize=16, num_threads=num_threads):
            affine_rows(&x[nc // C, nc % C, 0], scale[nc % C], offset[nc % C], &y[nc // C, nc % C, 0], M)

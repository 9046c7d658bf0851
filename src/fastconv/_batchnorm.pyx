"""Batch normalisation per channel over ``x (N, C, M)`` (M = H*W, or 1 for 2-D input), one channel per task.

Statistics are accumulated in double precision; the variance uses sums shifted by the channel's first value,
so one pass over ``x`` gives both moments without the cancellation of the naive ``E[x^2] - E[x]^2``.
"""
from cython.parallel cimport prange
from libc.math cimport sqrt

ctypedef fused floating:
    float
    double


def forward(const floating[:, :, ::1] x, const floating[::1] gamma, const floating[::1] beta, double eps,
            floating[:, :, ::1] y, floating[::1] mean, floating[::1] invstd, int num_threads):
    """Training mode: batch statistics into ``mean``/``invstd`` and the normalised, scaled ``y``."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], M = x.shape[2]
    cdef Py_ssize_t c, n, m
    cdef double shift, d, s1, s2, mu, var, inv, count = N * M
    cdef floating scale, centre
    with nogil:
        for c in prange(C, schedule="static", num_threads=num_threads):
            shift = x[0, c, 0]
            s1 = 0
            s2 = 0
            for n in range(N):
                for m in range(M):
                    d = x[n, c, m] - shift
                    s1 = s1 + d
                    s2 = s2 + d * d
            mu = s1 / count
            var = s2 / count - mu * mu
            if var < 0:
                var = 0
            inv = 1.0 / sqrt(var + eps)
            mean[c] = <floating>(shift + mu)
            invstd[c] = <floating>inv
            scale = <floating>(gamma[c] * inv)
            centre = mean[c]
            for n in range(N):
                for m in range(M):
                    y[n, c, m] = (x[n, c, m] - centre) * scale + beta[c]


def backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] x, const floating[::1] gamma,
             const floating[::1] mean, const floating[::1] invstd,
             floating[:, :, ::1] dx, floating[::1] dgamma, floating[::1] dbeta, int num_threads):
    """``dx = gamma*invstd * (dy - mean(dy) - xhat*mean(dy*xhat))``, plus ``dgamma``, ``dbeta``."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], M = x.shape[2]
    cdef Py_ssize_t c, n, m
    cdef double sdy, sdyx, inv, mu, count = N * M
    cdef floating k1, k2, k3, centre
    with nogil:
        for c in prange(C, schedule="static", num_threads=num_threads):
            mu = mean[c]
            inv = invstd[c]
            sdy = 0
            sdyx = 0
            for n in range(N):
                for m in range(M):
                    sdy = sdy + dy[n, c, m]
                    sdyx = sdyx + dy[n, c, m] * (x[n, c, m] - mu)
            dbeta[c] = <floating>sdy
            dgamma[c] = <floating>(sdyx * inv)
            # dx = k1*dy + k2*(x - mean) + k3, expanded from the formula above
            k1 = <floating>(gamma[c] * inv)
            k2 = <floating>(-gamma[c] * inv * inv * inv * sdyx / count)
            k3 = <floating>(-gamma[c] * inv * sdy / count)
            centre = mean[c]
            for n in range(N):
                for m in range(M):
                    dx[n, c, m] = k1 * dy[n, c, m] + k2 * (x[n, c, m] - centre) + k3


def inference(const floating[:, :, ::1] x, const floating[::1] scale, const floating[::1] offset,
              floating[:, :, ::1] y, int num_threads):
    """``y = x*scale[c] + offset[c]`` (the stored statistics folded into one affine map)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], M = x.shape[2]
    cdef Py_ssize_t nc, n, c, m
    with nogil:
        for nc in prange(N * C, schedule="static", num_threads=num_threads):
            n = nc // C
            c = nc % C
            for m in range(M):
                y[n, c, m] = x[n, c, m] * scale[c] + offset[c]

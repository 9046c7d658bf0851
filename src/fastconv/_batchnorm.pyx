"""Batch normalisation per channel over ``x (N, C, M)`` (M = H*W, or 1 for 2-D input).

Training passes go over the ``N*C`` rows in memory order, split between the threads: the sums of each row,
then (on one thread: ``N*C`` numbers) the statistics of each channel, then the normalised rows.

Statistics are accumulated in double precision (short blocks of values in the input's precision first, see
:func:`row_sums`); the variance uses sums shifted by the channel's first value, so one pass over ``x``
gives both moments without the cancellation of the naive ``E[x^2] - E[x]^2``.
Per-row work lives in ``cdef`` functions so the loop variables are plain C locals.
"""
from cython.parallel cimport prange
from libc.math cimport sqrt

ctypedef fused floating:
    float
    double


cdef extern from *:
    """
    /* Sums of one row in lanes of short vectors (GCC/Clang vector extensions: SSE2 or wider, whatever the target;
       no reassociation is needed, so the compiler keeps exactly this order of additions). Blocks of BN_BLOCK values
       are summed in the input's precision, each block's lanes are then added in double. */
    #include <string.h>
    #define BN_BLOCK 64
    typedef float bn_f4 __attribute__((vector_size(16)));
    typedef double bn_d2 __attribute__((vector_size(16)));

    /* mode 0: (sum(x - c), sum((x - c)^2));  mode 1: (sum(g), sum(g * (x - c))) */
    static void bn_sums_f(const float *g, const float *x, Py_ssize_t M, float c, int mode, double *sa, double *sb) {
        Py_ssize_t m = 0, k, end;
        double a = 0, b = 0;
        bn_f4 cv = {c, c, c, c};
        while (m + 8 <= M) {
            bn_f4 a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0}, x0, x1, g0, g1;
            end = m + ((M - m < BN_BLOCK ? M - m : BN_BLOCK) / 8) * 8;
            for (; m < end; m += 8) {
                memcpy(&x0, x + m, 16); memcpy(&x1, x + m + 4, 16);
                x0 -= cv; x1 -= cv;
                if (mode) { memcpy(&g0, g + m, 16); memcpy(&g1, g + m + 4, 16); }
                else { g0 = x0; g1 = x1; }
                a0 += g0; a1 += g1; b0 += g0 * x0; b1 += g1 * x1;
            }
            for (k = 0; k < 4; k++) { a += (double)a0[k] + (double)a1[k]; b += (double)b0[k] + (double)b1[k]; }
        }
        for (; m < M; m++) {
            float d = x[m] - c, e = mode ? g[m] : d;
            a += e; b += e * d;
        }
        *sa = a; *sb = b;
    }

    static void bn_sums_d(const double *g, const double *x, Py_ssize_t M, double c, int mode, double *sa,
                          double *sb) {
        Py_ssize_t m = 0, k, end;
        double a = 0, b = 0;
        bn_d2 cv = {c, c};
        while (m + 8 <= M) {
            bn_d2 a0[4] = {{0}}, b0[4] = {{0}}, x0, g0;
            end = m + ((M - m < BN_BLOCK ? M - m : BN_BLOCK) / 8) * 8;
            for (; m < end; m += 8) {
                for (k = 0; k < 4; k++) {
                    memcpy(&x0, x + m + 2 * k, 16);
                    x0 -= cv;
                    if (mode) memcpy(&g0, g + m + 2 * k, 16); else g0 = x0;
                    a0[k] += g0; b0[k] += g0 * x0;
                }
            }
            for (k = 0; k < 4; k++) { a += a0[k][0] + a0[k][1]; b += b0[k][0] + b0[k][1]; }
        }
        for (; m < M; m++) {
            double d = x[m] - c, e = mode ? g[m] : d;
            a += e; b += e * d;
        }
        *sa = a; *sb = b;
    }
    """
    void bn_sums_f(const float *g, const float *x, Py_ssize_t M, float c, int mode, double *sa,
                   double *sb) noexcept nogil
    void bn_sums_d(const double *g, const double *x, Py_ssize_t M, double c, int mode, double *sa,
                   double *sb) noexcept nogil


cdef inline void row_sums(const floating *g, const floating *x, Py_ssize_t M, floating c, int mode,
                          double *out) noexcept nogil:
    """``out[0:2]``: ``(sum(x - c), sum((x - c)**2))`` with ``mode`` 0 (``g`` unused), ``(sum(g),
    sum(g * (x - c)))`` with ``mode`` 1, over ``[:M]``."""
    if floating is float:
        bn_sums_f(g, x, M, c, mode, &out[0], &out[1])
    else:
        bn_sums_d(g, x, M, c, mode, &out[0], &out[1])


cdef void column_sums(const floating *g, const floating *x, Py_ssize_t N, Py_ssize_t C, const floating *centre,
                      int mode, double *out) noexcept nogil:
    """:func:`row_sums` of every channel of ``(N, C)`` data (``M = 1``): ``out[2*c:2*c + 2]``, rows in order."""
    cdef Py_ssize_t n, c
    cdef floating d, e
    for c in range(2 * C):
        out[c] = 0
    for n in range(N):
        for c in range(C):
            d = x[n * C + c] - centre[c]
            e = g[n * C + c] if mode else d
            out[2 * c] += e
            out[2 * c + 1] += e * d


cdef void sums_of_rows(const floating *g, const floating *x, Py_ssize_t N, Py_ssize_t C, Py_ssize_t M,
                       const floating *centre, Py_ssize_t centre_stride, int mode, double *rows,
                       int num_threads) noexcept nogil:
    """:func:`row_sums` of every ``(n, c)`` row into ``rows[2*(n*C + c):]``, channel ``c`` centred on
    ``centre[c * centre_stride]``, the rows split between the threads; for ``(N, C)`` data (``M = 1``) the
    column sums of :func:`column_sums` instead (into the first ``C`` rows)."""
    cdef Py_ssize_t nc
    if M == 1:
        column_sums(g, x, N, C, centre, mode, rows)
        return
    for nc in prange(N * C, schedule="static", num_threads=num_threads):
        row_sums(g + nc * M, x + nc * M, M, centre[(nc % C) * centre_stride], mode, rows + 2 * nc)


cdef void channel_totals(const double *rows, Py_ssize_t groups, Py_ssize_t C, Py_ssize_t c,
                         double *out) noexcept nogil:
    """``out[0:2]``: the two sums of channel ``c`` over its ``groups`` rows of :func:`sums_of_rows`, in order."""
    cdef Py_ssize_t n
    out[0] = 0
    out[1] = 0
    for n in range(groups):
        out[0] += rows[2 * (n * C + c)]
        out[1] += rows[2 * (n * C + c) + 1]


cdef void normalize_row(const floating *x, floating centre, floating scale, floating offset, floating *y,
                        Py_ssize_t M) noexcept nogil:
    cdef Py_ssize_t m
    for m in range(M):
        y[m] = (x[m] - centre) * scale + offset


cdef void gradient_row(const floating *dy, const floating *x, floating centre, floating k1, floating k2,
                       floating k3, floating *dx, Py_ssize_t M) noexcept nogil:
    cdef Py_ssize_t m
    for m in range(M):
        dx[m] = k1 * dy[m] + k2 * (x[m] - centre) + k3


cdef void normalize_sample(const floating *x, const floating *centre, const floating *scale,
                           const floating *offset, floating *y, Py_ssize_t C) noexcept nogil:
    """:func:`normalize_row` of one sample of ``(N, C)`` data, across its channels."""
    cdef Py_ssize_t c
    for c in range(C):
        y[c] = (x[c] - centre[c]) * scale[c] + offset[c]


cdef void gradient_sample(const floating *dy, const floating *x, const floating *centre, const floating *coef,
                          floating *dx, Py_ssize_t C) noexcept nogil:
    """:func:`gradient_row` of one sample of ``(N, C)`` data; ``coef`` holds the rows ``k1, k2, k3``."""
    cdef Py_ssize_t c
    for c in range(C):
        dx[c] = coef[c] * dy[c] + coef[C + c] * (x[c] - centre[c]) + coef[2 * C + c]


def forward(const floating[:, :, ::1] x, const floating[::1] gamma, const floating[::1] beta, double eps,
            floating[:, :, ::1] y, floating[::1] mean, floating[::1] invstd, double[:, ::1] rows,
            floating[::1] scale, int num_threads):
    """Training mode: batch statistics into ``mean``/``invstd`` and the normalised, scaled ``y``.

    ``rows (N*C, 2)`` and ``scale (C,)`` are work space: each row's shifted sums, each channel's
    ``gamma * invstd``. Both passes over ``x`` stream rows in memory order, split between the threads.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], M = x.shape[2], nc, n, c, groups = 1 if M == 1 else N
    cdef double mu, var, count = N * M
    cdef double total[2]
    with nogil:       # each channel centred on its first value
        sums_of_rows(&x[0, 0, 0], &x[0, 0, 0], N, C, M, &x[0, 0, 0], M, 0, &rows[0, 0], num_threads)
        for c in range(C):
            channel_totals(&rows[0, 0], groups, C, c, total)
            mu = total[0] / count
            var = total[1] / count - mu * mu
            var = var if var > 0 else 0
            mean[c] = <floating>(x[0, c, 0] + mu)
            invstd[c] = <floating>(1.0 / sqrt(var + eps))
            scale[c] = gamma[c] * invstd[c]
        if M == 1:
            for n in prange(N, schedule="static", num_threads=num_threads):
                normalize_sample(&x[n, 0, 0], &mean[0], &scale[0], &beta[0], &y[n, 0, 0], C)
        else:
            for nc in prange(N * C, schedule="static", num_threads=num_threads):
                normalize_row(&x[nc // C, nc % C, 0], mean[nc % C], scale[nc % C], beta[nc % C],
                              &y[nc // C, nc % C, 0], M)


def backward(const floating[:, :, ::1] dy, const floating[:, :, ::1] x, const floating[::1] gamma,
             const floating[::1] mean, const floating[::1] invstd,
             floating[:, :, ::1] dx, floating[::1] dgamma, floating[::1] dbeta, double[:, ::1] rows,
             floating[:, ::1] coef, int num_threads):
    """Gradients of :func:`forward` into ``dx``, ``dgamma``, ``dbeta``:
    ``dx = gamma*invstd * (dy - mean(dy) - xhat*mean(dy*xhat))``, written as ``k1*dy + k2*(x - mean) + k3``.

    ``rows (N*C, 2)`` and ``coef (3, C)`` are work space (each row's sums, each channel's ``k1, k2, k3``).
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], M = x.shape[2], nc, n, c, groups = 1 if M == 1 else N
    cdef double sdy, sdyx, inv, count = N * M
    cdef double total[2]
    with nogil:
        sums_of_rows(&dy[0, 0, 0], &x[0, 0, 0], N, C, M, &mean[0], 1, 1, &rows[0, 0], num_threads)
        for c in range(C):
            channel_totals(&rows[0, 0], groups, C, c, total)
            sdy = total[0]
            sdyx = total[1]
            inv = invstd[c]
            dbeta[c] = <floating>sdy
            dgamma[c] = <floating>(sdyx * inv)
            coef[0, c] = <floating>(gamma[c] * inv)
            coef[1, c] = <floating>(-gamma[c] * inv * inv * inv * sdyx / count)
            coef[2, c] = <floating>(-gamma[c] * inv * sdy / count)
        if M == 1:
            for n in prange(N, schedule="static", num_threads=num_threads):
                gradient_sample(&dy[n, 0, 0], &x[n, 0, 0], &mean[0], &coef[0, 0], &dx[n, 0, 0], C)
        else:
            for nc in prange(N * C, schedule="static", num_threads=num_threads):
                c = nc % C
                gradient_row(&dy[nc // C, c, 0], &x[nc // C, c, 0], mean[c], coef[0, c], coef[1, c], coef[2, c],
                             &dx[nc // C, c, 0], M)


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

"""Convolution kernels: im2col ("unfold"), its adjoint ("fold"), and convolution as unfold + GEMM.

Column layout: ``cols (C*kh*kw, pixels)``; row ``(c*kh + u)*kw + v`` holds, for each output pixel, the input
value under kernel tap ``(u, v)`` of channel ``c`` (0 in the padding).

The convolution runs in ONE OpenMP region. Each task is a block of output pixels of one image: the thread
unfolds the block into its own cache-sized column buffer and calls a single-threaded BLAS GEMM that writes
straight into the NCHW output (leading dimension OH*OW), so no batch-sized matrix is ever built or moved.
Backward works per image (its fold writes only that image's ``dx``), with per-thread ``dW``/``db`` partial sums
added up at the end. BLAS is SciPy's (``scipy.linalg.cython_blas``), which fastconv keeps single-threaded.
"""
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

from ._blas cimport floating, gemm


cdef struct Geometry:
    int C, H, W, kh, kw, sh, sw, ph, pw, OH, OW


cdef inline Py_ssize_t first_valid(Py_ssize_t offset, Py_ssize_t stride) noexcept nogil:
    """Smallest j >= 0 with j*stride + offset >= 0."""
    return 0 if offset >= 0 else (-offset + stride - 1) // stride


cdef inline Py_ssize_t end_valid(Py_ssize_t offset, Py_ssize_t stride, Py_ssize_t size,
                                 Py_ssize_t n_out) noexcept nogil:
    """One past the largest j < n_out with j*stride + offset < size."""
    cdef Py_ssize_t j
    if size - 1 - offset < 0:
        return 0
    j = (size - 1 - offset) // stride + 1
    return j if j < n_out else n_out


cdef inline bint rows_are_flat(Geometry g) noexcept nogil:
    """Stride 1 and output rows as wide as input rows ("same" width): an output block of one kernel tap is then
    one contiguous run of the input plane, shifted by a constant, apart from the columns that fall in the
    padding. This covers the common 3x3 / padding 1 convolution."""
    return g.sh == 1 and g.sw == 1 and g.OW == g.W


cdef void tap_span(Geometry g, Py_ssize_t u, Py_ssize_t v, Py_ssize_t p0, Py_ssize_t p1,
                   Py_ssize_t *q0, Py_ssize_t *q1, Py_ssize_t *shift) noexcept nogil:
    """For tap ``(u, v)`` on a flat-row geometry: pixels ``[q0, q1)`` of ``[p0, p1)`` lie on valid input rows and
    read input ``p + shift`` of the plane; ``q0, q1`` are also clipped so those reads stay inside the plane."""
    cdef Py_ssize_t i_lo = g.ph - u if g.ph > u else 0
    cdef Py_ssize_t i_hi = g.H + g.ph - u if g.H + g.ph - u < g.OH else g.OH
    shift[0] = (u - g.ph) * g.W + (v - g.pw)
    q0[0] = i_lo * g.OW if i_lo * g.OW > p0 else p0
    q0[0] = -shift[0] if -shift[0] > q0[0] else q0[0]
    q1[0] = i_hi * g.OW if i_hi * g.OW < p1 else p1
    q1[0] = g.H * g.W - shift[0] if g.H * g.W - shift[0] < q1[0] else q1[0]
    q0[0] = q0[0] if q0[0] < p1 else p1
    q1[0] = q1[0] if q1[0] > q0[0] else q0[0]


cdef void zero_padding_columns(floating *dst, Geometry g, Py_ssize_t v, Py_ssize_t p0, Py_ssize_t q0,
                               Py_ssize_t q1) noexcept nogil:
    """Zero ``dst[p - p0]`` for pixels ``p`` in ``[q0, q1)`` whose column falls in the padding for tap column ``v``."""
    cdef Py_ssize_t i, j, p, j_lo = g.pw - v, j_hi = g.W + g.pw - v
    if q1 <= q0:
        return
    for i in range(q0 // g.OW, (q1 - 1) // g.OW + 1):
        for j in range(0, j_lo):
            p = i * g.OW + j
            if q0 <= p < q1:
                dst[p - p0] = 0
        for j in range(j_hi if j_hi > 0 else 0, g.OW):
            p = i * g.OW + j
            if q0 <= p < q1:
                dst[p - p0] = 0


cdef void unfold_flat(const floating *img, Geometry g, Py_ssize_t p0, Py_ssize_t p1,
                      floating *cols, Py_ssize_t ld) noexcept nogil:
    """:func:`unfold_block` for :func:`rows_are_flat` geometries: one contiguous copy per kernel tap."""
    cdef Py_ssize_t row, c, u, v, q0, q1, shift
    cdef floating *dst
    for row in range(g.C * g.kh * g.kw):
        c = row // (g.kh * g.kw)
        u = (row // g.kw) % g.kh
        v = row % g.kw
        dst = cols + row * ld
        tap_span(g, u, v, p0, p1, &q0, &q1, &shift)
        memset(dst, 0, (q0 - p0) * sizeof(floating))
        memcpy(dst + (q0 - p0), img + c * g.H * g.W + q0 + shift, (q1 - q0) * sizeof(floating))
        memset(dst + (q1 - p0), 0, (p1 - q1) * sizeof(floating))
        zero_padding_columns(dst, g, v, p0, q0, q1)


cdef void fold_flat(floating *cols, Py_ssize_t ld, Geometry g, Py_ssize_t p0, Py_ssize_t p1,
                    floating *img) noexcept nogil:
    """:func:`fold_block` for :func:`rows_are_flat` geometries. Zeroes the padding entries of ``cols`` (scratch)
    first, so each tap is one contiguous add."""
    cdef Py_ssize_t row, c, u, v, q0, q1, shift, p
    cdef floating *src
    cdef floating *dst
    for row in range(g.C * g.kh * g.kw):
        c = row // (g.kh * g.kw)
        u = (row // g.kw) % g.kh
        v = row % g.kw
        src = cols + row * ld - p0
        tap_span(g, u, v, p0, p1, &q0, &q1, &shift)
        zero_padding_columns(src + p0, g, v, p0, q0, q1)
        dst = img + c * g.H * g.W + shift
        for p in range(q0, q1):
            dst[p] += src[p]


cdef void unfold_block(const floating *img, Geometry g, Py_ssize_t p0, Py_ssize_t p1,
                       floating *cols, Py_ssize_t ld) noexcept nogil:
    """Columns ``p0 .. p1-1`` (output pixels of one image ``img (C, H, W)``) into ``cols`` rows of stride ``ld``."""
    cdef Py_ssize_t row, c, u, v, i, j, ja, jb, j0, j1, hi, off, p
    cdef floating *dst
    cdef const floating *src
    if rows_are_flat(g):
        unfold_flat(img, g, p0, p1, cols, ld)
        return
    for row in range(g.C * g.kh * g.kw):
        c = row // (g.kh * g.kw)
        u = (row // g.kw) % g.kh
        v = row % g.kw
        off = v - g.pw
        j0 = first_valid(off, g.sw)
        j1 = end_valid(off, g.sw, g.W, g.OW)
        p = p0
        while p < p1:
            i = p // g.OW
            ja = p - i * g.OW
            jb = g.OW if (i + 1) * g.OW <= p1 else p1 - i * g.OW
            dst = cols + row * ld + (p - p0) - ja
            hi = i * g.sh - g.ph + u
            if hi < 0 or hi >= g.H:
                for j in range(ja, jb):
                    dst[j] = 0
            else:
                src = img + (c * g.H + hi) * g.W + off
                for j in range(ja, jb if jb < j0 else j0):
                    dst[j] = 0
                if g.sw == 1:
                    for j in range(ja if ja > j0 else j0, jb if jb < j1 else j1):
                        dst[j] = src[j]
                else:
                    for j in range(ja if ja > j0 else j0, jb if jb < j1 else j1):
                        dst[j] = src[j * g.sw]
                for j in range(ja if ja > j1 else j1, jb):
                    dst[j] = 0
            p = p + (jb - ja)


cdef void fold_block(floating *cols, Py_ssize_t ld, Geometry g, Py_ssize_t p0, Py_ssize_t p1,
                     floating *img) noexcept nogil:
    """Adjoint of :func:`unfold_block`: add the columns ``p0 .. p1-1`` into ``img (C, H, W)``.

    ``cols`` is scratch: entries that correspond to padding may be overwritten with 0.
    """
    cdef Py_ssize_t row, c, u, v, i, j, ja, jb, j0, j1, hi, off, p
    cdef floating *dst
    cdef const floating *src
    if rows_are_flat(g):
        fold_flat(cols, ld, g, p0, p1, img)
        return
    for row in range(g.C * g.kh * g.kw):
        c = row // (g.kh * g.kw)
        u = (row // g.kw) % g.kh
        v = row % g.kw
        off = v - g.pw
        j0 = first_valid(off, g.sw)
        j1 = end_valid(off, g.sw, g.W, g.OW)
        p = p0
        while p < p1:
            i = p // g.OW
            ja = p - i * g.OW
            jb = g.OW if (i + 1) * g.OW <= p1 else p1 - i * g.OW
            hi = i * g.sh - g.ph + u
            if 0 <= hi < g.H:
                src = cols + row * ld + (p - p0) - ja
                dst = img + (c * g.H + hi) * g.W + off
                if g.sw == 1:
                    for j in range(ja if ja > j0 else j0, jb if jb < j1 else j1):
                        dst[j] += src[j]
                else:
                    for j in range(ja if ja > j0 else j0, jb if jb < j1 else j1):
                        dst[j * g.sw] += src[j]
            p = p + (jb - ja)


cdef void add_bias(floating *y, const floating *bias, Py_ssize_t K, Py_ssize_t m, Py_ssize_t ld) noexcept nogil:
    """``y[k, :m] += bias[k]`` for rows of stride ``ld``."""
    cdef Py_ssize_t k, p
    for k in range(K):
        for p in range(m):
            y[k * ld + p] += bias[k]


cdef void add_row_sums(const floating *g, Py_ssize_t K, Py_ssize_t m, Py_ssize_t ld, floating *out) noexcept nogil:
    """``out[k] += sum(g[k, :m])`` for rows of stride ``ld``."""
    cdef Py_ssize_t k, p
    cdef floating acc
    for k in range(K):
        acc = 0
        for p in range(m):
            acc = acc + g[k * ld + p]
        out[k] += acc


cdef Geometry make_geometry(Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, int kh, int kw, int sh, int sw,
                            int ph, int pw):
    cdef Geometry g
    g.C, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw = C, H, W, kh, kw, sh, sw, ph, pw
    g.OH = (H + 2 * ph - kh) // sh + 1
    g.OW = (W + 2 * pw - kw) // sw + 1
    return g


cdef inline bint is_pointwise(Geometry g) noexcept nogil:
    """1x1 kernel, stride 1, no padding: the columns of an image are the image itself."""
    return g.kh == 1 and g.kw == 1 and g.sh == 1 and g.sw == 1 and g.ph == 0 and g.pw == 0


def unfold(const floating[:, :, :, ::1] x, floating[:, ::1] cols,
           int kh, int kw, int sh, int sw, int ph, int pw, int num_threads):
    """Fill ``cols (C*kh*kw, N*OH*OW)`` from ``x (N, C, H, W)`` (image ``n`` in columns ``n*P .. n*P+P-1``)."""
    cdef Geometry g = make_geometry(x.shape[1], x.shape[2], x.shape[3], kh, kw, sh, sw, ph, pw)
    cdef Py_ssize_t n, P = g.OH * g.OW
    with nogil:
        for n in prange(x.shape[0], schedule="dynamic", num_threads=num_threads):
            unfold_block(&x[n, 0, 0, 0], g, 0, P, &cols[0, n * P], cols.shape[1])


def fold(floating[:, ::1] cols, floating[:, :, :, ::1] x,
         int kh, int kw, int sh, int sw, int ph, int pw, int num_threads):
    """Adjoint of :func:`unfold`: ``x (N, C, H, W)`` = sum of the column entries at their input positions.

    ``cols`` is used as scratch (its padding entries may be zeroed)."""
    cdef Geometry g = make_geometry(x.shape[1], x.shape[2], x.shape[3], kh, kw, sh, sw, ph, pw)
    cdef Py_ssize_t n, P = g.OH * g.OW
    with nogil:
        for n in prange(x.shape[0], schedule="dynamic", num_threads=num_threads):
            memset(&x[n, 0, 0, 0], 0, g.C * g.H * g.W * sizeof(floating))
            fold_block(&cols[0, n * P], cols.shape[1], g, 0, P, &x[n, 0, 0, 0])


def forward(const floating[:, :, :, ::1] x, const floating[:, ::1] w, const floating[::1] bias, bint has_bias,
            floating[:, :, ::1] y, floating[:, ::1] work, int block, int kh, int kw, int sh, int sw,
            int ph, int pw, int num_threads):
    """``y (N, K, OH*OW) = conv(x, w (K, C*kh*kw)) + bias``. ``work (threads, C*kh*kw*block)`` is scratch."""
    cdef Geometry g = make_geometry(x.shape[1], x.shape[2], x.shape[3], kh, kw, sh, sw, ph, pw)
    cdef Py_ssize_t N = x.shape[0], K = w.shape[0], R = w.shape[1], P = g.OH * g.OW
    cdef Py_ssize_t nblocks = (P + block - 1) // block
    cdef Py_ssize_t task, n, p0, m
    cdef bint pointwise = is_pointwise(g)
    cdef const floating *cols
    with nogil:
        for task in prange(N * nblocks, schedule="dynamic", num_threads=num_threads):
            n = task // nblocks
            p0 = (task % nblocks) * block
            m = block if p0 + block <= P else P - p0
            if pointwise:
                cols = &x[n, 0, 0, p0]
                gemm("N", "N", m, K, R, 1, cols, P, &w[0, 0], R, 0, &y[n, 0, p0], P)
            else:
                unfold_block(&x[n, 0, 0, 0], g, p0, p0 + m, &work[threadid(), 0], m)
                gemm("N", "N", m, K, R, 1, &work[threadid(), 0], m, &w[0, 0], R, 0, &y[n, 0, p0], P)
            if has_bias:
                add_bias(&y[n, 0, p0], &bias[0], K, m, P)


cdef void backward_image(const floating *dy, const floating *x, const floating *w, floating *dx,
                         floating *dw, floating *db, floating *work, floating *dwork, Py_ssize_t block,
                         Py_ssize_t K, Py_ssize_t R, Geometry g) noexcept nogil:
    """One image: unless ``dw`` is NULL, ``dw += dy @ cols.T`` and ``db += dy.sum(pixels)``; unless ``dx`` is NULL,
    ``dx = fold(w.T @ dy)``.

    ``dy`` is ``(K, P)``, ``x`` and ``dx`` are ``(C, H, W)``; ``work``/``dwork`` hold ``R*block`` values.
    """
    cdef Py_ssize_t P = g.OH * g.OW, p0 = 0, m
    cdef bint pointwise = is_pointwise(g)
    if dx != NULL and not pointwise:
        memset(dx, 0, g.C * g.H * g.W * sizeof(floating))
    while p0 < P:
        m = block if p0 + block <= P else P - p0
        if pointwise:
            if dw != NULL:
                add_row_sums(dy + p0, K, m, P, db)
                gemm("T", "N", R, K, m, 1, x + p0, P, dy + p0, P, 1, dw, R)
            if dx != NULL:
                gemm("N", "T", m, R, K, 1, dy + p0, P, w, R, 0, dx + p0, P)
        else:
            if dw != NULL:
                add_row_sums(dy + p0, K, m, P, db)
                unfold_block(x, g, p0, p0 + m, work, m)
                gemm("T", "N", R, K, m, 1, work, m, dy + p0, P, 1, dw, R)
            if dx != NULL:
                gemm("N", "T", m, R, K, 1, dy + p0, P, w, R, 0, dwork, m)
                fold_block(dwork, m, g, p0, p0 + m, dx)
        p0 = p0 + m


def backward(const floating[:, :, ::1] dy, const floating[:, :, :, ::1] x, const floating[:, ::1] w,
             floating[:, :, :, ::1] dx, bint need_dx, bint need_dw, floating[:, :, ::1] dw_part,
             floating[:, ::1] db_part, floating[:, ::1] work, floating[:, ::1] dwork, int block,
             int kh, int kw, int sh, int sw, int ph, int pw, int num_threads):
    """Gradients into ``dw_part (G, K, R)``, ``db_part (G, K)`` (zeroed by the caller; part ``g`` sums the ``g``-th
    of ``G`` fixed, consecutive groups of images, so the result does not depend on thread timing) unless
    ``need_dw`` is false, and, with ``need_dx``, ``dx (N, C, H, W)``. ``work``/``dwork (threads, R*block)`` are
    per-thread scratch."""
    cdef Geometry g = make_geometry(x.shape[1], x.shape[2], x.shape[3], kh, kw, sh, sw, ph, pw)
    cdef Py_ssize_t N = x.shape[0], K = w.shape[0], R = w.shape[1], G = dw_part.shape[0]
    cdef Py_ssize_t grp, n, n0, n1, t
    with nogil:
        for grp in prange(G, schedule="dynamic", num_threads=num_threads):
            t = threadid()
            n0 = N * grp // G
            n1 = N * (grp + 1) // G
            for n in range(n0, n1):
                backward_image(&dy[n, 0, 0], &x[n, 0, 0, 0], &w[0, 0], &dx[n, 0, 0, 0] if need_dx else NULL,
                               &dw_part[grp, 0, 0] if need_dw else NULL, &db_part[grp, 0] if need_dw else NULL,
                               &work[t, 0], &dwork[t, 0], block, K, R, g)


# ============================================================================= float32: fastconv's own engine
cdef extern from "fc_conv.h" nogil:
    ctypedef struct fc_geom:
        Py_ssize_t N, C, H, W, K, kh, kw, sh, sw, ph, pw, OH, OW
    int FC_ISA_COUNT
    int fc_isa_supported(int isa)
    int fc_get_isa()
    int fc_set_isa(int isa)
    const char *fc_isa_name(int isa)
    size_t fc_conv_forward_workspace(const fc_geom *g, int threads)
    void fc_conv_forward(const fc_geom *g, const float *x, const float *w, const float *bias, float *y,
                         void *workspace, int threads)
    size_t fc_conv_dx_workspace(const fc_geom *g, int threads)
    void fc_conv_dx(const fc_geom *g, const float *dy, const float *w, float *dx, void *workspace, int threads)
    size_t fc_conv_dw_workspace(const fc_geom *g, int threads)
    void fc_conv_dw(const fc_geom *g, const float *dy, const float *x, float *dw, float *db, void *workspace,
                    int threads)
    double fc_fma_peak(double seconds, int threads)
    void fc_conv_algorithms(const fc_geom *g, int threads, int *out)
    const char *fc_algorithm_name(int algo)


def isa_names():
    """Names of the instruction sets the engine is built for, in order of preference (lowest first)."""
    return [fc_isa_name(i).decode() for i in range(FC_ISA_COUNT)]


def isa_supported(str name):
    return bool(fc_isa_supported(isa_names().index(name)))


def get_isa():
    return fc_isa_name(fc_get_isa()).decode()


def set_isa(str name):
    if fc_set_isa(isa_names().index(name)) != 0:
        raise ValueError(f"instruction set {name!r} is not supported by this CPU")


def fma_peak(double seconds, int threads):
    with nogil:
        result = fc_fma_peak(seconds, threads)
    return result


cdef fc_geom geometry(tuple shape):
    cdef fc_geom g
    g.N, g.C, g.H, g.W, g.K, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.OH, g.OW = shape
    return g


def workspace_bytes(str which, tuple shape, int threads):
    """Bytes of workspace the float32 ``which`` ("forward", "dx" or "dw") needs for ``shape`` =
    (N, C, H, W, K, kh, kw, sh, sw, ph, pw, OH, OW) with the current instruction set."""
    cdef fc_geom g = geometry(shape)
    if which == "forward":
        return fc_conv_forward_workspace(&g, threads)
    if which == "dx":
        return fc_conv_dx_workspace(&g, threads)
    return fc_conv_dw_workspace(&g, threads)


def algorithms(tuple shape, int threads):
    """Names of the float32 algorithms for (forward, dx, dw) of ``shape`` (see ``workspace_bytes``)."""
    cdef fc_geom g = geometry(shape)
    cdef int out[3]
    fc_conv_algorithms(&g, threads, out)
    return tuple(fc_algorithm_name(a).decode() for a in out)


def forward_f32(const float[:, :, :, ::1] x, const float[:, :, :, ::1] w, const float[::1] bias, bint has_bias,
                float[:, :, :, ::1] y, unsigned char[::1] workspace, tuple shape, int threads):
    """``y = conv(x, w) + bias`` on the engine (arguments validated by the caller)."""
    cdef fc_geom g = geometry(shape)
    with nogil:
        fc_conv_forward(&g, &x[0, 0, 0, 0], &w[0, 0, 0, 0], &bias[0] if has_bias else NULL, &y[0, 0, 0, 0],
                        &workspace[0], threads)


def dx_f32(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] w, float[:, :, :, ::1] dx,
           unsigned char[::1] workspace, tuple shape, int threads):
    cdef fc_geom g = geometry(shape)
    with nogil:
        fc_conv_dx(&g, &dy[0, 0, 0, 0], &w[0, 0, 0, 0], &dx[0, 0, 0, 0], &workspace[0], threads)


def dw_f32(const float[:, :, :, ::1] dy, const float[:, :, :, ::1] x, float[:, :, :, ::1] dw, float[::1] db,
           unsigned char[::1] workspace, tuple shape, int threads):
    cdef fc_geom g = geometry(shape)
    with nogil:
        fc_conv_dw(&g, &dy[0, 0, 0, 0], &x[0, 0, 0, 0], &dw[0, 0, 0, 0], &db[0], &workspace[0], threads)

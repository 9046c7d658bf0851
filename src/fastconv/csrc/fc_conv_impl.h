/* The float32 convolution engine for one instruction set. fc_conv.c includes this file once per ISA, after
 * defining:
 *   SFX     suffix of every function name (generic, avx2, avx512)
 *   FC_TGT  the target attribute of the hot functions (empty for the baseline build)
 *   VLEN    floats per vector register
 *   FMR/FNV forward micro-tile: FMR output channels x FNV vectors (FNR = FNV*VLEN) of output pixels
 *   WMR/WNR weight-gradient micro-tile: WMR output channels x WNR weight columns, each a VLEN-lane vector of
 *           partial sums over pixels
 *   DNV     direct forward micro-tile: FMR output channels x DNV vectors of flat output positions
 *   DWD_WIDE direct 3x3 weight gradient: 3 when the ISA has the registers for its wide blocks (three input
 *           channels of one output-channel vector, or one channel of two vectors: 27 or 18 accumulators), else 1
 * and undefines all of them at its end.
 *
 * Forward (and dx, as the forward convolution of dy with flipped, transposed weights): C = A^T B with
 *   A = weights packed once per call into FMR-row panels (shared by all threads),
 *   B = a panel of FNR output pixels taken across image boundaries, packed straight from the (padded) images
 *       (implicit im2col: the full column matrix never exists); one panel per task, in the thread's L2.
 * The micro-kernel keeps an FMR x FNR tile in registers over the whole reduction and writes it once.
 *
 * Weight gradient: dW[k][r] = sum_j dy[k][j] cols[r][j] over all pixels j of the batch. dy is copied once
 * into rows over the whole batch; units of work are (group of output channels, group of weight columns),
 * each owned by one thread for the whole batch, so dW needs no per-thread partial sums and the result does
 * not depend on thread timing. A unit walks the pixels in chunks, packs its cols rows for the chunk and
 * accumulates lane-wise partial sums, which are reduced once at the end.
 */
#define FC_CAT_(a, b) a##_##b
#define FC_CAT(a, b) FC_CAT_(a, b)
#define F(name) FC_CAT(name, SFX)
#define VF F(vf)
#define FNR (FNV * VLEN)

typedef float VF __attribute__((vector_size(VLEN * 4), aligned(4), may_alias));

/* ------------------------------------------------------------------------------------------ micro-kernels */

/* tile[i*ldt + 0..FNR) = sum_r A[r][i] * B[r][0..FNR) for i < FMR. A is (R, FMR), B is (R, FNR) with rows of
 * stride ldb. */
static FC_TGT void F(ukr_forward)(ptrdiff_t R, const float *restrict A, const float *restrict B, ptrdiff_t ldb,
                                  float *restrict tile, ptrdiff_t ldt)
{
    VF acc[FMR][FNV];
    for (int i = 0; i < FMR; i++)
        for (int v = 0; v < FNV; v++)
            acc[i][v] = (VF){0};
    for (ptrdiff_t r = 0; r < R; r++) {
        VF b[FNV];
        for (int v = 0; v < FNV; v++)
            b[v] = *(const VF *)(B + r * ldb + v * VLEN);
        for (int i = 0; i < FMR; i++) {
            const float a = A[r * FMR + i];
            for (int v = 0; v < FNV; v++)
                acc[i][v] += a * b[v];
        }
    }
    for (int i = 0; i < FMR; i++)
        for (int v = 0; v < FNV; v++)
            *(VF *)(tile + i * ldt + v * VLEN) = acc[i][v];
}

/* acc[i][j] += sum over s of D[i][s] * Cc[j][s], lane-wise over nvec vectors s; D rows have stride ldd, Cc rows
 * ldc; acc holds WMR*WNR vectors. The call sums its chunk in registers from zero and then adds it to acc (two
 * levels of summation: the rounding error grows with the chunk length plus the number of chunks, not with
 * their product). */
static FC_TGT void F(ukr_dw)(ptrdiff_t nvec, const float *restrict D, ptrdiff_t ldd, const float *restrict Cc,
                             ptrdiff_t ldc, float *restrict acc)
{
    VF a[WMR][WNR];
    for (int i = 0; i < WMR; i++)
        for (int j = 0; j < WNR; j++)
            a[i][j] = (VF){0};
    for (ptrdiff_t s = 0; s < nvec; s++) {
        VF d[WMR];
        for (int i = 0; i < WMR; i++)
            d[i] = *(const VF *)(D + i * ldd + s * VLEN);
        for (int j = 0; j < WNR; j++) {
            const VF c = *(const VF *)(Cc + j * ldc + s * VLEN);
            for (int i = 0; i < WMR; i++)
                a[i][j] += d[i] * c;
        }
    }
    for (int i = 0; i < WMR; i++)
        for (int j = 0; j < WNR; j++)
            *(VF *)(acc + (i * WNR + j) * VLEN) += a[i][j];
}

/* ------------------------------------------------------------------------------------------------ packing */

/* Rows [r0, r0 + nrows) of the column matrix for the pixels described by ``segs`` (``nv`` valid pixels),
 * into ``dst`` rows of stride ``ld``; entries [nv, width) of each row are zeroed. Rows r >= R are all zero.
 * ``index`` (room for nv ints) is scratch: when the runs are short (small output planes), each row is
 * gathered through a table of input offsets instead of copied run by run. */
static FC_TGT void F(pack_cols)(const fc_padded *p, const float *restrict xp, const fc_seg *segs, int nseg,
                                ptrdiff_t nv, ptrdiff_t r0, ptrdiff_t nrows, ptrdiff_t width,
                                float *restrict dst, ptrdiff_t ld, ptrdiff_t *restrict index)
{
    const ptrdiff_t taps = p->kh * p->kw, R = p->C * taps, plane = p->Hp * p->Wp;
    const int gather = nv < 8 * (ptrdiff_t)nseg;
    if (gather)
        for (int s = 0; s < nseg; s++)
            for (ptrdiff_t l = 0; l < segs[s].len; l++)
                index[segs[s].j + l] = segs[s].in + l * p->sw;
    for (ptrdiff_t rr = 0; rr < nrows; rr++) {
        const ptrdiff_t r = r0 + rr;
        float *restrict d = dst + rr * ld;
        if (r >= R) {
            for (ptrdiff_t j = 0; j < width; j++)
                d[j] = 0;
            continue;
        }
        const ptrdiff_t c = r / taps, u = (r / p->kw) % p->kh, v = r % p->kw;
        const float *base = xp + c * plane + u * p->Wp + v;
        if (gather) {
            for (ptrdiff_t j = 0; j < nv; j++)
                d[j] = base[index[j]];
        } else {
            for (int s = 0; s < nseg; s++) {
                const float *restrict src = base + segs[s].in;
                float *restrict o = d + segs[s].j;
                const ptrdiff_t len = segs[s].len;
                if (p->sw == 1) {
                    for (ptrdiff_t l = 0; l < len; l++)
                        o[l] = src[l];
                } else {
                    for (ptrdiff_t l = 0; l < len; l++)
                        o[l] = src[l * p->sw];
                }
            }
        }
        for (ptrdiff_t j = nv; j < width; j++)
            d[j] = 0;
    }
}

/* ------------------------------------------------------------------------------------------------ forward */

typedef struct {
    fc_padded p;
    ptrdiff_t K, R, P, NP, panels, kblocks, chunks, kb_per_chunk, tasks;
    size_t xp_bytes, wp_bytes, thread_bytes;
} F(fwd_plan);

static F(fwd_plan) F(plan_forward)(const fc_geom *g, int threads)
{
    F(fwd_plan) q;
    q.p = padded_geometry(g);
    q.K = g->K;
    q.R = g->C * g->kh * g->kw;
    q.P = g->OH * g->OW;
    q.NP = g->N * q.P;
    q.panels = (q.NP + FNR - 1) / FNR;
    q.kblocks = (q.K + FMR - 1) / FMR;
    /* Enough tasks for every thread: when the batch has few pixel panels, split the output channels too (each
     * such task packs its panel again, which costs little beside the arithmetic of a small batch). */
    q.chunks = 1;
    if (q.panels < 4 * (ptrdiff_t)threads) {
        q.chunks = (4 * threads + q.panels - 1) / q.panels;
        if (q.chunks > q.kblocks)
            q.chunks = q.kblocks;
    }
    q.kb_per_chunk = (q.kblocks + q.chunks - 1) / q.chunks;
    q.chunks = (q.kblocks + q.kb_per_chunk - 1) / q.kb_per_chunk;
    q.tasks = q.panels * q.chunks;
    q.xp_bytes = needs_padding(g) ? align_up(sizeof(float) * g->N * g->C * q.p.Hp * q.p.Wp) : 0;
    q.wp_bytes = align_up(sizeof(float) * q.kblocks * FMR * q.R);
    q.thread_bytes = align_up(sizeof(float) * q.R * FNR) + align_up(sizeof(float) * FMR * FNR) +
                     align_up(sizeof(fc_seg) * FNR) + align_up(sizeof(ptrdiff_t) * FNR);
    return q;
}

static size_t F(forward_workspace)(const fc_geom *g, int threads)
{
    F(fwd_plan) q = F(plan_forward)(g, threads);
    return q.xp_bytes + q.wp_bytes + q.thread_bytes * (size_t)threads + FC_ALIGN;
}

/* y = conv(x, weights) + bias, where the weights are ``w`` as given (transposed = 0) or, for dx, the flipped
 * transpose of a (C, K, kh, kw) array (transposed = 1; see pack_weights). */
static void F(forward)(const fc_geom *g, int transposed, const float *x, const float *w, const float *bias,
                       float *y, void *workspace, int threads)
{
    const F(fwd_plan) q = F(plan_forward)(g, threads);
    char *ws = align_ptr(workspace);
    float *xp = q.xp_bytes ? (float *)ws : (float *)x;
    float *wp = (float *)(ws + q.xp_bytes);
    char *thread_ws = ws + q.xp_bytes + q.wp_bytes;
    const ptrdiff_t out_image = q.K * q.P;

    #pragma omp parallel num_threads(threads)
    {
        char *mine = thread_ws + q.thread_bytes * (size_t)fc_thread_num();
        float *panel = (float *)mine;
        float *tile = (float *)(mine + align_up(sizeof(float) * q.R * FNR));
        fc_seg *segs = (fc_seg *)(mine + align_up(sizeof(float) * q.R * FNR) + align_up(sizeof(float) * FMR * FNR));
        ptrdiff_t *index = (ptrdiff_t *)((char *)segs + align_up(sizeof(fc_seg) * FNR));
        if (q.xp_bytes)
            pad_images(g, x, xp);
        pack_weights(g, transposed, w, FMR, wp);

        #pragma omp for schedule(dynamic)
        for (ptrdiff_t task = 0; task < q.tasks; task++) {
            const ptrdiff_t pan = task / q.chunks, chunk = task % q.chunks;
            const ptrdiff_t q0 = pan * FNR, nv = q.NP - q0 < FNR ? q.NP - q0 : FNR;
            const int nseg = make_segments(&q.p, q.P, out_image, q0, nv, segs);
            const ptrdiff_t kb0 = chunk * q.kb_per_chunk;
            const ptrdiff_t kb1 = kb0 + q.kb_per_chunk < q.kblocks ? kb0 + q.kb_per_chunk : q.kblocks;
            F(pack_cols)(&q.p, xp, segs, nseg, nv, 0, q.R, FNR, panel, FNR, index);
            for (ptrdiff_t kb = kb0; kb < kb1; kb++) {
                F(ukr_forward)(q.R, wp + kb * q.R * FMR, panel, FNR, tile, FNR);
                store_tile(tile, FNR, kb * FMR, q.K - kb * FMR < FMR ? q.K - kb * FMR : FMR, segs, nseg, q.P,
                           bias, y);
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ weight gradient */

enum { F(DW_CHUNK) = 256 };   /* pixels per chunk: a multiple of every VLEN */

typedef struct {
    fc_padded p;
    ptrdiff_t K, R, P, NP, NPp, chunk, ktiles, rtiles, kt_per_unit, rt_per_unit, kgroups, rgroups, units;
    size_t xp_bytes, dyt_bytes, thread_bytes;
} F(dw_plan);

static F(dw_plan) F(plan_dw)(const fc_geom *g, int threads)
{
    F(dw_plan) q;
    q.p = padded_geometry(g);
    q.K = g->K;
    q.R = g->C * g->kh * g->kw;
    q.P = g->OH * g->OW;
    q.NP = g->N * q.P;
    q.NPp = (q.NP + VLEN - 1) / VLEN * VLEN;
    q.chunk = q.NPp < F(DW_CHUNK) ? q.NPp : F(DW_CHUNK);
    q.ktiles = (q.K + WMR - 1) / WMR;
    q.rtiles = (q.R + WNR - 1) / WNR;
    /* Up to 64 output channels by up to 8 column tiles per unit (their partial sums stay in L2); fewer column
     * tiles when that leaves too few units to keep every thread busy. */
    q.kt_per_unit = 64 / WMR < q.ktiles ? 64 / WMR : q.ktiles;
    q.kgroups = (q.ktiles + q.kt_per_unit - 1) / q.kt_per_unit;
    q.rt_per_unit = 8 < q.rtiles ? 8 : q.rtiles;
    while (q.rt_per_unit > 1 &&
           q.kgroups * ((q.rtiles + q.rt_per_unit - 1) / q.rt_per_unit) < 4 * (ptrdiff_t)threads)
        q.rt_per_unit--;
    q.rgroups = (q.rtiles + q.rt_per_unit - 1) / q.rt_per_unit;
    q.units = q.kgroups * q.rgroups;
    q.xp_bytes = needs_padding(g) ? align_up(sizeof(float) * g->N * g->C * q.p.Hp * q.p.Wp) : 0;
    q.dyt_bytes = align_up(sizeof(float) * q.ktiles * WMR * q.NPp);
    q.thread_bytes = align_up(sizeof(float) * q.rt_per_unit * WNR * q.chunk) +
                     align_up(sizeof(float) * q.kt_per_unit * q.rt_per_unit * WMR * WNR * VLEN) +
                     align_up(sizeof(fc_seg) * q.chunk) + align_up(sizeof(ptrdiff_t) * q.chunk);
    return q;
}

static size_t F(dw_workspace)(const fc_geom *g, int threads)
{
    F(dw_plan) q = F(plan_dw)(g, threads);
    return q.xp_bytes + q.dyt_bytes + q.thread_bytes * (size_t)threads + FC_ALIGN;
}

static void F(dw)(const fc_geom *g, const float *dy, const float *x, float *dw, float *db, void *workspace,
                  int threads)
{
    const F(dw_plan) q = F(plan_dw)(g, threads);
    char *ws = align_ptr(workspace);
    float *xp = q.xp_bytes ? (float *)ws : (float *)x;
    float *dyt = (float *)(ws + q.xp_bytes);
    char *thread_ws = ws + q.xp_bytes + q.dyt_bytes;
    const ptrdiff_t tile_floats = WMR * WNR * VLEN;

    #pragma omp parallel num_threads(threads)
    {
        char *mine = thread_ws + q.thread_bytes * (size_t)fc_thread_num();
        float *cols = (float *)mine;
        float *acc = (float *)(mine + align_up(sizeof(float) * q.rt_per_unit * WNR * q.chunk));
        fc_seg *segs = (fc_seg *)(mine + align_up(sizeof(float) * q.rt_per_unit * WNR * q.chunk) +
                                  align_up(sizeof(float) * q.kt_per_unit * q.rt_per_unit * tile_floats));
        ptrdiff_t *index = (ptrdiff_t *)((char *)segs + align_up(sizeof(fc_seg) * q.chunk));
        if (q.xp_bytes)
            pad_images(g, x, xp);
        gather_dy_rows(g, dy, q.ktiles * WMR, q.NPp, dyt);
        sum_dy(g, dy, db);

        #pragma omp for schedule(dynamic)
        for (ptrdiff_t unit = 0; unit < q.units; unit++) {
            const ptrdiff_t kg = unit / q.rgroups, rg = unit % q.rgroups;
            const ptrdiff_t kt0 = kg * q.kt_per_unit, rt0 = rg * q.rt_per_unit;
            const ptrdiff_t nkt = q.ktiles - kt0 < q.kt_per_unit ? q.ktiles - kt0 : q.kt_per_unit;
            const ptrdiff_t nrt = q.rtiles - rt0 < q.rt_per_unit ? q.rtiles - rt0 : q.rt_per_unit;
            for (ptrdiff_t i = 0; i < nkt * nrt * tile_floats; i++)
                acc[i] = 0;
            for (ptrdiff_t j0 = 0; j0 < q.NPp; j0 += q.chunk) {
                const ptrdiff_t pc = q.NPp - j0 < q.chunk ? q.NPp - j0 : q.chunk;
                const ptrdiff_t nv = q.NP - j0 < pc ? q.NP - j0 : pc;
                const int nseg = make_segments(&q.p, q.P, 0, j0, nv, segs);
                F(pack_cols)(&q.p, xp, segs, nseg, nv, rt0 * WNR, nrt * WNR, pc, cols, q.chunk, index);
                for (ptrdiff_t kt = 0; kt < nkt; kt++)
                    for (ptrdiff_t rt = 0; rt < nrt; rt++)
                        F(ukr_dw)(pc / VLEN, dyt + (kt0 + kt) * WMR * q.NPp + j0, q.NPp,
                                  cols + rt * WNR * q.chunk, q.chunk, acc + (kt * nrt + rt) * tile_floats);
            }
            for (ptrdiff_t kt = 0; kt < nkt; kt++)
                for (ptrdiff_t rt = 0; rt < nrt; rt++)
                    reduce_tile(acc + (kt * nrt + rt) * tile_floats, WMR, WNR, VLEN, (kt0 + kt) * WMR,
                                (rt0 + rt) * WNR, q.K, q.R, dw);
        }
    }
}

/* Weight gradient, outer-product form, for layers with many output channels (deep layers on small planes):
 * dW[k][r0 .. r0+FNR) tiles come straight from the forward micro-kernel, with A = dy packed as [kb][pixel][FMR]
 * (once per call, shared) and B = the transposed columns [pixel][FNR] of one column block, packed per pixel
 * chunk. A unit of work is one column block over the whole batch (deterministic, no partial sums). */
typedef struct {
    fc_padded p;
    ptrdiff_t K, R, P, NP, chunk, kblocks, rblocks;
    size_t xp_bytes, dyp_bytes, thread_bytes;
} F(dwo_plan);

static F(dwo_plan) F(plan_dw_outer)(const fc_geom *g)
{
    F(dwo_plan) q;
    q.p = padded_geometry(g);
    q.K = g->K;
    q.R = g->C * g->kh * g->kw;
    q.P = g->OH * g->OW;
    q.NP = g->N * q.P;
    q.chunk = q.NP < F(DW_CHUNK) ? q.NP : F(DW_CHUNK);
    q.kblocks = (q.K + FMR - 1) / FMR;
    q.rblocks = (q.R + FNR - 1) / FNR;
    q.xp_bytes = needs_padding(g) ? align_up(sizeof(float) * g->N * g->C * q.p.Hp * q.p.Wp) : 0;
    q.dyp_bytes = align_up(sizeof(float) * q.kblocks * FMR * q.NP);
    q.thread_bytes = align_up(sizeof(float) * q.chunk * FNR) + align_up(sizeof(float) * FMR * FNR) +
                     align_up(sizeof(fc_seg) * q.chunk) + align_up(sizeof(ptrdiff_t) * FNR);
    return q;
}

/* The outer-product form wins when each packed column value feeds enough multiply-adds (many output channels)
 * and there are enough column blocks to share among the threads. */
static int F(use_dw_outer)(const fc_geom *g, int threads)
{
    const ptrdiff_t R = g->C * g->kh * g->kw;
    return g->K >= 96 && (R + FNR - 1) / FNR >= 4 * (ptrdiff_t)threads;
}

/* colsT[j][rr] = column (r0 + rr) of pixel j for the pixels of ``segs`` (nv of them), rr < FNR (0 past R). */
static FC_TGT void F(pack_cols_t)(const fc_padded *p, const float *restrict xp, const fc_seg *segs, int nseg,
                                  ptrdiff_t r0, ptrdiff_t R, float *restrict colsT, ptrdiff_t *restrict roff)
{
    const ptrdiff_t taps = p->kh * p->kw, plane = p->Hp * p->Wp;
    const ptrdiff_t nr = R - r0 < FNR ? R - r0 : FNR;
    for (ptrdiff_t rr = 0; rr < nr; rr++) {
        const ptrdiff_t r = r0 + rr, c = r / taps, u = (r / p->kw) % p->kh, v = r % p->kw;
        roff[rr] = c * plane + u * p->Wp + v;
    }
    for (int s = 0; s < nseg; s++)
        for (ptrdiff_t l = 0; l < segs[s].len; l++) {
            const float *restrict src = xp + segs[s].in + l * p->sw;
            float *restrict d = colsT + (segs[s].j + l) * FNR;
            for (ptrdiff_t rr = 0; rr < nr; rr++)
                d[rr] = src[roff[rr]];
            for (ptrdiff_t rr = nr; rr < FNR; rr++)
                d[rr] = 0;
        }
}

static void F(dw_outer)(const fc_geom *g, const float *dy, const float *x, float *dw, float *db, void *workspace,
                        int threads)
{
    const F(dwo_plan) q = F(plan_dw_outer)(g);
    char *ws = align_ptr(workspace);
    float *xp = q.xp_bytes ? (float *)ws : (float *)x;
    float *dyp = (float *)(ws + q.xp_bytes);
    char *thread_ws = ws + q.xp_bytes + q.dyp_bytes;

    #pragma omp parallel num_threads(threads)
    {
        char *mine = thread_ws + q.thread_bytes * (size_t)fc_thread_num();
        float *colsT = (float *)mine;
        float *tile = (float *)(mine + align_up(sizeof(float) * q.chunk * FNR));
        fc_seg *segs = (fc_seg *)((char *)tile + align_up(sizeof(float) * FMR * FNR));
        ptrdiff_t *roff = (ptrdiff_t *)((char *)segs + align_up(sizeof(fc_seg) * q.chunk));
        if (q.xp_bytes)
            pad_images(g, x, xp);
        pack_dy_blocks(g, dy, FMR, dyp, db);

        #pragma omp for schedule(dynamic)
        for (ptrdiff_t rb = 0; rb < q.rblocks; rb++) {
            const ptrdiff_t r0 = rb * FNR, nr = q.R - r0 < FNR ? q.R - r0 : FNR;
            for (ptrdiff_t j0 = 0; j0 < q.NP; j0 += q.chunk) {
                const ptrdiff_t pc = q.NP - j0 < q.chunk ? q.NP - j0 : q.chunk;
                const int nseg = make_segments(&q.p, q.P, 0, j0, pc, segs);
                F(pack_cols_t)(&q.p, xp, segs, nseg, r0, q.R, colsT, roff);
                for (ptrdiff_t kb = 0; kb < q.kblocks; kb++) {
                    F(ukr_forward)(pc, dyp + (kb * q.NP + j0) * FMR, colsT, FNR, tile, FNR);
                    add_tile(tile, FNR, kb * FMR, q.K - kb * FMR < FMR ? q.K - kb * FMR : FMR, r0, nr, q.R,
                             j0 == 0, dw);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------- direct */
/* Convolutions of few channels on planes of moderate size, where packing would cost as much as the arithmetic
 * (each packed value would feed few multiply-adds). Each task copies one image into the thread's buffer,
 * zero-padded and, for stride s > 1, split into its s x s phases (phase (a, b) holds the padded pixels
 * (i*s + a, j*s + b)), every plane Hq x Wq. An output (oh, ow) then sums, over the channels and taps (u, v),
 * w[k][c][u][v] * plane(c, u % s, v % s)[oh + u / s][ow + v / s]: on the *flattened* planes, flat output
 * position q = oh*Wq + ow reads position q + toff(u, v) of channel c, so a tile of DNR consecutive q reads DNV
 * plain vectors per (c, u, v) and needs no packing. Positions with ow >= OW (where a row wraps) are computed
 * and dropped: the tiles run at OW / Wq of the vector width, also on narrow planes where one tile spans rows.
 * A tile is FMR output channels x DNR flat positions (DNV vectors, set per ISA); it is written from the
 * registers into the thread's flat output rows, which are compacted into y once per image. Strided layers on
 * small planes stack the phase planes of G images (G * Hq rows of Wq): the tiles run on from one image's rows
 * into the next one's, and the few lanes a plane would leave unused in its last tile are not lost per image. */
#define DNR (DNV * VLEN)

/* out[i * ldo][0..DNR) = sum over (c, t) of A[c*taps + t][i] * src[c*cstride + toff[t] ..][0..DNR). */
static FC_TGT void F(ukr_direct)(ptrdiff_t C, ptrdiff_t taps, const ptrdiff_t *restrict toff, ptrdiff_t cstride,
                                 const float *restrict A, const float *restrict src, float *restrict out,
                                 ptrdiff_t ldo)
{
    VF acc[FMR][DNV];
    for (int i = 0; i < FMR; i++)
        for (int v = 0; v < DNV; v++)
            acc[i][v] = (VF){0};
    for (ptrdiff_t c = 0; c < C; c++) {
        const float *plane = src + c * cstride;
        for (ptrdiff_t t = 0; t < taps; t++, A += FMR) {
            const float *row = plane + toff[t];
            VF b[DNV];
            for (int j = 0; j < DNV; j++)
                b[j] = *(const VF *)(row + j * VLEN);
            for (int i = 0; i < FMR; i++) {
                const float a = A[i];
                for (int j = 0; j < DNV; j++)
                    acc[i][j] += a * b[j];
            }
        }
    }
    for (int i = 0; i < FMR; i++)
        for (int v = 0; v < DNV; v++)
            *(VF *)(out + i * ldo + v * VLEN) = acc[i][v];
}

/* out[oh][0..OW) = flat[oh*Wq ..][0..OW) + b: one output channel of an image from its flat rows. */
static FC_TGT void F(direct_store)(const fc_geom *g, ptrdiff_t Wq, const float *restrict flat, float b,
                                   float *restrict out)
{
    for (ptrdiff_t oh = 0; oh < g->OH; oh++)
        for (ptrdiff_t ow = 0; ow < g->OW; ow++)
            out[oh * g->OW + ow] = flat[oh * Wq + ow] + b;
}

/* dst (C, sh, sw, [pstride]): the image src (C, H, W) zero-padded and split into its sh x sw phases, the Hq x Wq
 * plane of phase (a, b) of channel c (at dst + ((c*sh + a)*sw + b) * pstride) holding the padded pixels
 * (i*sh + a, j*sw + b); zero where that is outside the padded image. (Compiled per ISA: the strided reads of a row
 * vectorise as permutes.) */
static FC_TGT void F(pad_image_phases)(const fc_geom *g, ptrdiff_t Hq, ptrdiff_t Wq, ptrdiff_t pstride,
                                       const float *src, float *dst)
{
    for (ptrdiff_t a = 0; a < g->sh; a++) {
        /* rows i with 0 <= i*sh + a - ph < H: [i0, i1) */
        const ptrdiff_t i0 = g->ph - a > 0 ? (g->ph - a + g->sh - 1) / g->sh : 0;
        ptrdiff_t i1 = (g->H + g->ph - a + g->sh - 1) / g->sh;
        i1 = i1 > Hq ? Hq : i1 < i0 ? i0 : i1;
        for (ptrdiff_t b = 0; b < g->sw; b++) {
            /* columns j with 0 <= j*sw + b - pw < W: [j0, j1) */
            const ptrdiff_t j0 = g->pw - b > 0 ? (g->pw - b + g->sw - 1) / g->sw : 0;
            ptrdiff_t j1 = (g->W + g->pw - b + g->sw - 1) / g->sw;
            j1 = j1 > Wq ? Wq : j1 < j0 ? j0 : j1;
            for (ptrdiff_t c = 0; c < g->C; c++) {
                float *restrict out = dst + ((c * g->sh + a) * g->sw + b) * pstride;
                memset(out, 0, sizeof(float) * i0 * Wq);
                memset(out + i1 * Wq, 0, sizeof(float) * (Hq - i1) * Wq);
                for (ptrdiff_t i = i0; i < i1; i++) {
                    float *restrict row = out + i * Wq;
                    const float *restrict in = src + (c * g->H + i * g->sh + a - g->ph) * g->W + b - g->pw;
                    for (ptrdiff_t j = 0; j < j0; j++)
                        row[j] = 0;
                    if (g->sw == 2)
                        for (ptrdiff_t j = j0; j < j1; j++)
                            row[j] = in[2 * j];
                    else
                        for (ptrdiff_t j = j0; j < j1; j++)
                            row[j] = in[j * g->sw];
                    for (ptrdiff_t j = j1; j < Wq; j++)
                        row[j] = 0;
                }
            }
        }
    }
}

typedef struct {
    ptrdiff_t Hq, Wq, G, groups, pstride, cstride, R, taps, kblocks, flat, tiles, ldo, kchunks, kb_per_chunk, tasks;
    size_t wp_bytes, toff_bytes, xpad_bytes, thread_bytes;
} F(direct_plan);

/* Flat positions the tiles cover for G stacked images: the last image's OH rows after G - 1 whole planes. */
static ptrdiff_t F(direct_flat)(const fc_geom *g, ptrdiff_t Hq, ptrdiff_t Wq, ptrdiff_t G)
{
    return ((G - 1) * Hq + g->OH) * Wq;
}

/* Images per task: 1 at stride 1; for strided layers the G <= 8 (at most the batch, and with at least two
 * groups per thread, the planes of a group within 192 KiB) whose tiles use the most lanes (the smallest G of
 * those within a point of the best): 64 -> 128 channels at 14x14 -> 7x7 stride 2 go from 51 % to 75 % of the
 * lanes of AVX-512's 48-wide tiles. */
static ptrdiff_t F(direct_images)(const fc_geom *g, ptrdiff_t Hq, ptrdiff_t Wq, int threads)
{
    if (g->sh == 1 && g->sw == 1)
        return 1;
    const size_t image_bytes = sizeof(float) * g->C * g->sh * g->sw * Hq * Wq;
    ptrdiff_t best = 1, best_used = 0;
    for (ptrdiff_t G = 1; G <= 8 && G <= g->N; G++) {
        if (G > 1 && ((size_t)G * image_bytes > (192u << 10) || (g->N + G - 1) / G < 2 * (ptrdiff_t)threads))
            break;
        const ptrdiff_t lanes = (F(direct_flat)(g, Hq, Wq, G) + DNR - 1) / DNR * DNR;
        const ptrdiff_t used = 1000 * G * g->OH * g->OW / lanes;     /* per mille */
        if (used > best_used + 10) {
            best = G;
            best_used = used;
        }
    }
    return best;
}

static F(direct_plan) F(plan_direct)(const fc_geom *g, int threads)
{
    F(direct_plan) q;
    const ptrdiff_t Hp = g->H + 2 * g->ph, Wp = g->W + 2 * g->pw;
    q.Hq = (Hp + g->sh - 1) / g->sh;
    q.Wq = (Wp + g->sw - 1) / g->sw;
    q.G = F(direct_images)(g, q.Hq, q.Wq, threads);
    q.groups = (g->N + q.G - 1) / q.G;
    q.pstride = q.G * q.Hq * q.Wq;
    q.cstride = g->sh * g->sw * q.pstride;
    q.taps = g->kh * g->kw;
    q.R = g->C * q.taps;
    q.kblocks = (g->K + FMR - 1) / FMR;
    q.flat = F(direct_flat)(g, q.Hq, q.Wq, q.G);
    q.tiles = (q.flat + DNR - 1) / DNR;
    q.ldo = q.tiles * DNR;
    /* tasks are (group of images, group of output-channel blocks); split the channels when there are few
     * groups of images */
    q.kchunks = 1;
    if (q.groups < 4 * (ptrdiff_t)threads) {
        q.kchunks = (4 * threads + q.groups - 1) / q.groups;
        q.kchunks = q.kchunks > q.kblocks ? q.kblocks : q.kchunks;
    }
    q.kb_per_chunk = (q.kblocks + q.kchunks - 1) / q.kchunks;
    q.kchunks = (q.kblocks + q.kb_per_chunk - 1) / q.kb_per_chunk;
    q.tasks = q.groups * q.kchunks;
    q.wp_bytes = align_up(sizeof(float) * q.kblocks * FMR * q.R);
    q.toff_bytes = align_up(sizeof(ptrdiff_t) * q.taps);
    /* the group's planes (plus room for the reads of the last tile past their end: the wrapped positions of the
     * last row read at most DNR + kw values further) and the outputs on the flat planes, ldo per channel */
    q.xpad_bytes = align_up(sizeof(float) * (g->C * q.cstride + DNR + g->kw));
    q.thread_bytes = q.xpad_bytes + align_up(sizeof(float) * q.kblocks * FMR * q.ldo);
    return q;
}

/* Measured: for stride 1, wins over the packed GEMM and Winograd below 32 output channels or up to 16 input
 * channels when at least 85 % of the tiles' lanes are outputs (28x28 planes on every ISA; not 14x14 on AVX-512,
 * where a tile is 48 wide; Winograd is 10-20 % faster on 32 -> 32 channels at 28x28, AVX2 and AVX-512). Strided layers have no Winograd, and their packed GEMM gathers every column: the direct kernel wins
 * there up to 128 output channels at 75 % of lanes used (28x28 -> 14x14 at stride 2; 14x14 -> 7x7 with groups
 * of images: 64 -> 128 channels 7.4 -> 6.9 ms, 32 -> 64 2.5 -> 2.2 ms, batch 128, 2 threads, AVX-512). */
static int F(use_direct)(const fc_geom *g, int threads)
{
    const F(direct_plan) q = F(plan_direct)(g, threads);
    const ptrdiff_t used = 100 * q.G * g->OH * g->OW, lanes = q.ldo;   /* tiles x DNR */
    if (g->sh == 1 && g->sw == 1)
        return (g->K < 32 || g->C <= 16) && used >= 85 * lanes;
    return g->K <= 128 && used >= 75 * lanes;
}

static size_t F(direct_workspace)(const fc_geom *g, int threads)
{
    F(direct_plan) q = F(plan_direct)(g, threads);
    return q.wp_bytes + q.toff_bytes + q.thread_bytes * (size_t)threads + FC_ALIGN;
}

static void F(direct)(const fc_geom *g, int transposed, const float *x, const float *w, const float *bias,
                      float *y, void *workspace, int threads)
{
    const F(direct_plan) q = F(plan_direct)(g, threads);
    const ptrdiff_t P = g->OH * g->OW;
    char *ws = align_ptr(workspace);
    float *wp = (float *)ws;
    ptrdiff_t *toff = (ptrdiff_t *)(ws + q.wp_bytes);

    #pragma omp parallel num_threads(threads)
    {
        char *mine = ws + q.wp_bytes + q.toff_bytes + q.thread_bytes * (size_t)fc_thread_num();
        float *xpad = (float *)mine;
        float *flat = (float *)(mine + q.xpad_bytes);
        ptrdiff_t padded = -1;       /* the group of images now in xpad */
        for (ptrdiff_t j = g->C * q.cstride; j < g->C * q.cstride + DNR + g->kw; j++)
            xpad[j] = 0;
        #pragma omp single
        for (ptrdiff_t u = 0; u < g->kh; u++)
            for (ptrdiff_t v = 0; v < g->kw; v++)
                toff[u * g->kw + v] = ((u % g->sh) * g->sw + v % g->sw) * q.pstride + u / g->sh * q.Wq + v / g->sw;
        pack_weights(g, transposed, w, FMR, wp);      /* (its barrier also publishes toff) */
        #pragma omp for schedule(static)
        for (ptrdiff_t task = 0; task < q.tasks; task++) {
            const ptrdiff_t group = task / q.kchunks, kb0 = task % q.kchunks * q.kb_per_chunk;
            const ptrdiff_t kb1 = kb0 + q.kb_per_chunk < q.kblocks ? kb0 + q.kb_per_chunk : q.kblocks;
            const ptrdiff_t n0 = group * q.G, images = g->N - n0 < q.G ? g->N - n0 : q.G;
            const ptrdiff_t chw = g->C * g->H * g->W;
            if (padded != group) {
                for (ptrdiff_t j = 0; j < images; j++) {
                    if (g->sh == 1 && g->sw == 1)
                        pad_image(g, x + (n0 + j) * chw, xpad);       /* (G is 1) */
                    else
                        F(pad_image_phases)(g, q.Hq, q.Wq, q.pstride, x + (n0 + j) * chw, xpad + j * q.Hq * q.Wq);
                }
                padded = group;
            }
            /* while this group is computed, bring the next one's input in from memory, spread over the tiles */
            const ptrdiff_t left = g->N - n0 - images, next_images = left < q.G ? left : q.G;
            const char *next = (const char *)(x + (n0 + images) * chw);     /* read only when next_images > 0 */
            const ptrdiff_t lines = (ptrdiff_t)(sizeof(float) * next_images * chw / 64);
            const ptrdiff_t tiles = (F(direct_flat)(g, q.Hq, q.Wq, images) + DNR - 1) / DNR;
            const ptrdiff_t steps = tiles * (kb1 - kb0), per_step = (lines + steps - 1) / steps;
            ptrdiff_t line = 0;
            for (ptrdiff_t t = 0; t < tiles; t++)
                for (ptrdiff_t kb = kb0; kb < kb1; kb++) {
                    for (ptrdiff_t e = line + per_step; line < e && line < lines; line++)
                        __builtin_prefetch(next + 64 * line, 0, 1);
                    F(ukr_direct)(g->C, q.taps, toff, q.cstride, wp + kb * q.R * FMR, xpad + t * DNR,
                                  flat + kb * FMR * q.ldo + t * DNR, q.ldo);
                }
            for (ptrdiff_t j = 0; j < images; j++)
                for (ptrdiff_t k = kb0 * FMR; k < kb1 * FMR && k < g->K; k++)
                    F(direct_store)(g, q.Wq, flat + k * q.ldo + j * q.Hq * q.Wq, bias ? bias[k] : 0.0f,
                                    y + ((n0 + j) * g->K + k) * P);
        }
    }
}
#undef DNR

/* ------------------------------------------------------------------- Winograd F(4x4, 3x3) and F(3x3, 3x3) */
/* 3x3 stride-1 convolutions (and their dx) as Y = A^T [(G g G^T) . (B^T d B)] A on (m+2)x(m+2) input tiles that
 * step by m (Lavin & Gray 2016): F(4x4, 3x3) makes 36 multiplies per 4x4 outputs instead of 144, F(3x3, 3x3)
 * 25 per 3x3 instead of 81; each plane takes the one that multiplies less over its tiles (3x3, 5x5 and 6x6
 * planes take m = 3: one 4x4 tile would throw 7 of its 16 outputs away on a 3x3 plane). The images are first
 * transposed to (C, Hq, Wq, batch) so that every transform works on vectors of VLEN images with contiguous
 * loads; the products are GEMMs (K x C times C x tiles, tiles = tile position x image), one per transform point,
 * on the forward micro-kernel. */
typedef struct {
    ptrdiff_t N, C, K, H, W, ph, pw, OH, OW, m, n, pts, th, tw, Hq, Wq, Nv, T, kblocks;
    ptrdiff_t tc, chunks, kb_per_group, kgroups, tasks;     /* forward: tile chunks x groups of channels */
    /* shared: xt, U (0 with groups of channels) and V (only with groups); per thread: ``own`` (a chunk's V, or
     * the group's U) and its products M */
    size_t xt_bytes, u_bytes, vs_bytes, own_bytes, m_bytes;
} F(wino_plan);

/* The output tile (4 or 3) that makes fewer multiplies over the plane; ties go to 4. */
static ptrdiff_t F(wino_tile)(const fc_geom *g)
{
    const ptrdiff_t m4 = (g->OH + 3) / 4 * ((g->OW + 3) / 4) * 36, m3 = (g->OH + 2) / 3 * ((g->OW + 2) / 3) * 25;
    return m3 < m4 ? 3 : 4;
}

/* ``m``: the output tile, 4 or 3 (the weight gradient has only m = 4). */
static F(wino_plan) F(plan_winograd)(const fc_geom *g, int threads, ptrdiff_t m)
{
    F(wino_plan) q;
    q.N = g->N; q.C = g->C; q.K = g->K; q.H = g->H; q.W = g->W; q.ph = g->ph; q.pw = g->pw;
    q.OH = g->OH; q.OW = g->OW;
    q.m = m;
    q.n = m + 2;
    q.pts = q.n * q.n;
    q.th = (q.OH + m - 1) / m;
    q.tw = (q.OW + m - 1) / m;
    q.Hq = m * q.th + 2;
    q.Wq = m * q.tw + 2;
    q.Nv = (q.N + VLEN - 1) / VLEN * VLEN;
    q.T = q.th * q.tw * q.Nv;
    q.kblocks = (q.K + FMR - 1) / FMR;
    /* A chunk of tiles is transformed, multiplied and transformed back by one thread: about 0.5 MB of
     * transformed data per chunk (at least one panel), so it stays in the caches (a whole batch of transforms
     * would not; measured: 1.5 MB chunks were 10-15 % slower on 32 -> 32 channels at 14x14). */
    q.tc = (ptrdiff_t)(512 * 1024 / (sizeof(float) * q.pts * (q.C + q.kblocks * FMR))) / FNR * FNR;
    q.tc = q.tc < FNR ? FNR : q.tc;
    if (q.tc > (q.T + FNR - 1) / FNR * FNR)
        q.tc = (q.T + FNR - 1) / FNR * FNR;
    q.chunks = (q.T + q.tc - 1) / q.tc;
    /* few chunks (small batch or planes): the tasks are groups of output channels instead (8 per thread), each
     * over all chunks. The chunks' input transforms are then made once, into a shared V, and each group
     * transforms its own weights into the thread's U (so the transformed weights, as large as all of V on 3x3
     * planes, never leave the thread's cache: 128x256x3x3 -> 256 forward 3.7 -> 3.5 ms). */
    q.kgroups = 1;
    if (q.chunks < 4 * (ptrdiff_t)threads)
        q.kgroups = 8 * threads < q.kblocks ? 8 * threads : q.kblocks;
    q.kb_per_group = (q.kblocks + q.kgroups - 1) / q.kgroups;
    q.kgroups = (q.kblocks + q.kb_per_group - 1) / q.kb_per_group;
    q.tasks = q.kgroups > 1 ? q.kgroups : q.chunks;
    q.xt_bytes = align_up(sizeof(float) * q.C * q.Hq * q.Wq * q.Nv);
    const size_t group_u = align_up(sizeof(float) * q.pts * q.kb_per_group * FMR * q.C);
    q.u_bytes = q.kgroups > 1 ? 0 : align_up(sizeof(float) * q.pts * q.kblocks * FMR * q.C);
    q.vs_bytes = q.kgroups > 1 ? align_up(sizeof(float) * q.pts * q.C * q.tc * q.chunks) : 0;
    q.own_bytes = q.kgroups > 1 ? group_u : align_up(sizeof(float) * q.pts * q.C * q.tc);
    q.m_bytes = align_up(sizeof(float) * q.pts * q.kb_per_group * FMR * q.tc);
    return q;
}

static size_t F(winograd_workspace)(const fc_geom *g, int threads)
{
    F(wino_plan) q = F(plan_winograd)(g, threads, F(wino_tile)(g));
    return q.xt_bytes + q.u_bytes + q.vs_bytes + (q.own_bytes + q.m_bytes) * (size_t)threads + FC_ALIGN;
}

/* The transforms along one axis, for output tile m = 4 (points 0, +-1, +-2, infinity) or m = 3 (0, +-1, 2,
 * infinity). Always inlined into callers that pass a constant m, so that each is compiled for one tile. */
#define WINO_INLINE static inline __attribute__((always_inline)) FC_TGT

/* out = B^T in: m + 2 values -> m + 2. */
WINO_INLINE void F(wino_bt)(int m, const VF *in, VF *out)
{
    if (m == 4) {
        out[0] = 4 * in[0] - 5 * in[2] + in[4];
        out[1] = -4 * in[1] - 4 * in[2] + in[3] + in[4];
        out[2] = 4 * in[1] - 4 * in[2] - in[3] + in[4];
        out[3] = -2 * in[1] - in[2] + 2 * in[3] + in[4];
        out[4] = 2 * in[1] - in[2] - 2 * in[3] + in[4];
        out[5] = 4 * in[1] - 5 * in[3] + in[5];
    } else {
        out[0] = 2 * (in[0] - in[2]) - in[1] + in[3];
        out[1] = -2 * in[1] - in[2] + in[3];
        out[2] = 2 * in[1] - 3 * in[2] + in[3];
        out[3] = in[3] - in[1];
        out[4] = 2 * (in[1] - in[3]) - in[2] + in[4];
    }
}

/* out = A^T in: m + 2 values -> m. */
WINO_INLINE void F(wino_at)(int m, const VF *in, VF *out)
{
    const VF s12 = in[1] + in[2], d12 = in[1] - in[2];
    if (m == 4) {
        const VF s34 = in[3] + in[4], d34 = in[3] - in[4];
        out[0] = in[0] + s12 + s34;
        out[1] = d12 + 2 * d34;
        out[2] = s12 + 4 * s34;
        out[3] = d12 + 8 * d34 + in[5];
    } else {
        out[0] = in[0] + s12 + in[3];
        out[1] = d12 + 2 * in[3];
        out[2] = s12 + 4 * in[3] + in[4];
    }
}

/* out = G in: 3 filter taps -> m + 2 values. */
WINO_INLINE void F(wino_g)(int m, const VF *in, VF *out)
{
    if (m == 4) {
        const float q4 = 1.0f / 4, q6 = 1.0f / 6, q12 = 1.0f / 12, q24 = 1.0f / 24;
        out[0] = in[0] * q4;
        out[1] = -(in[0] + in[1] + in[2]) * q6;
        out[2] = -(in[0] - in[1] + in[2]) * q6;
        out[3] = in[0] * q24 + in[1] * q12 + in[2] * q6;
        out[4] = in[0] * q24 - in[1] * q12 + in[2] * q6;
        out[5] = in[2];
    } else {
        const float q6 = 1.0f / 6;
        out[0] = in[0] * 0.5f;
        out[1] = -(in[0] + in[1] + in[2]) * 0.5f;
        out[2] = (in[1] - in[0] - in[2]) * q6;
        out[3] = (in[0] + 2 * in[1] + 4 * in[2]) * q6;
        out[4] = in[2];
    }
}

/* U[pt][kb - kb0][c][i] (blocks of ukb per point) = (G g G^T)[pt] for the 3x3 filter g of output channel
 * kb*FMR + i and input channel c (0 past K), for job ``job`` of the blocks from kb0: block kb0 + job / cgroups,
 * CPV input channels from job % cgroups * CPV; ``transposed`` as in pack_weights. The FMR filters of a block are
 * transformed together, one per vector lane. */
WINO_INLINE void F(wino_weights_job)(int m, const fc_geom *g, int transposed, const float *w, float *restrict U,
                                     ptrdiff_t ukb, ptrdiff_t kb0, ptrdiff_t job)
{
    /* CPV input channels per vector: their FMR-filter groups are adjacent in U, so a vector is one store */
    enum { CPV = VLEN / FMR > 0 ? VLEN / FMR : 1 };
    const int n = m + 2;
    const ptrdiff_t K = g->K, C = g->C, cgroups = (C + CPV - 1) / CPV;
    const ptrdiff_t kb = kb0 + job / cgroups, c0 = job % cgroups * CPV, nc = C - c0 < CPV ? C - c0 : CPV;
    float lanes[9][VLEN] = {{0}};       /* lane j*FMR + i: filter kb*FMR + i of channel c0 + j, tap-major */
    for (ptrdiff_t j = 0; j < nc; j++)
        for (int i = 0; i < FMR && kb * FMR + i < K; i++) {
            const ptrdiff_t k = kb * FMR + i, c = c0 + j;
            const float *src = transposed ? w + (c * K + k) * 9 : w + (k * C + c) * 9;
            for (int ab = 0; ab < 9; ab++)
                lanes[ab][j * FMR + i] = src[transposed ? 8 - ab : ab];
        }
    VF f[3][3], t[6][3];
    for (int ab = 0; ab < 9; ab++)
        f[ab % 3][ab / 3] = *(const VF *)lanes[ab];     /* f[column][row] */
    for (int b = 0; b < 3; b++) {       /* t = G f, column b */
        VF col[6];
        F(wino_g)(m, f[b], col);
        for (int a = 0; a < n; a++)
            t[a][b] = col[a];
    }
    for (int a = 0; a < n; a++) {       /* u = t G^T, row a */
        VF u[6];
        F(wino_g)(m, t[a], u);
        for (int b = 0; b < n; b++) {
            float *dst = U + (((a * n + b) * ukb + kb - kb0) * C + c0) * FMR;
            if (nc == CPV)
                memcpy(dst, &u[b], sizeof(float) * FMR * CPV);     /* a constant size: one store */
            else
                memcpy(dst, &u[b], sizeof(float) * FMR * nc);
        }
    }
}

/* All jobs of the blocks kb0 .. kb1: work-shared with ``shared`` (call inside a parallel region), else all made by
 * the calling thread. */
WINO_INLINE void F(wino_weights_m)(int m, const fc_geom *g, int transposed, const float *w, float *restrict U,
                                   ptrdiff_t kb0, ptrdiff_t kb1, ptrdiff_t ukb, int shared)
{
    enum { CPV = VLEN / FMR > 0 ? VLEN / FMR : 1 };
    const ptrdiff_t jobs = (kb1 - kb0) * ((g->C + CPV - 1) / CPV);
    if (shared) {
        #pragma omp for schedule(static)
        for (ptrdiff_t job = 0; job < jobs; job++)
            F(wino_weights_job)(m, g, transposed, w, U, ukb, kb0, job);
    } else {
        for (ptrdiff_t job = 0; job < jobs; job++)
            F(wino_weights_job)(m, g, transposed, w, U, ukb, kb0, job);
    }
}

static FC_TGT void F(wino_weights)(ptrdiff_t m, const fc_geom *g, int transposed, const float *w, float *restrict U,
                                   ptrdiff_t kb0, ptrdiff_t kb1, ptrdiff_t ukb, int shared)
{
    if (m == 4)
        F(wino_weights_m)(4, g, transposed, w, U, kb0, kb1, ukb, shared);
    else
        F(wino_weights_m)(3, g, transposed, w, U, kb0, kb1, ukb, shared);
}

/* v[r][c] <- v[c][r] for the VLEN x VLEN block held in v[0 .. VLEN): the off-diagonal blocks of every size b
 * (VLEN/2 .. 1) swapped, two shuffles per pair of vectors. */
WINO_INLINE void F(transpose_block)(VF *v)
{
    typedef int VI __attribute__((vector_size(VLEN * 4)));
    for (int b = VLEN / 2; b >= 1; b /= 2) {
        VI lo, hi;
        for (int c = 0; c < VLEN; c++) {
            lo[c] = c & b ? VLEN + c - b : c;
            hi[c] = c & b ? VLEN + c : c + b;
        }
        for (int r = 0; r < VLEN; r++)
            if (!(r & b)) {
                const VF a = v[r], d = v[r + b];
                v[r] = __builtin_shuffle(a, d, lo);
                v[r + b] = __builtin_shuffle(a, d, hi);
            }
    }
}

/* The (m+2)^2 transformed values (B^T d B) of the (m+2)x(m+2) input tiles of VLEN images (one per lane) whose
 * top-left corner is ``base`` (input rows ``rowstride`` apart, columns ``colstride`` apart): dst[pt * pt_stride]. */
WINO_INLINE void F(wino_in_vec)(int m, const float *base, ptrdiff_t rowstride, ptrdiff_t colstride, float *dst,
                                ptrdiff_t pt_stride)
{
    const int n = m + 2;
    VF t[6][6];
    for (int j = 0; j < n; j++) {
        VF col[6], out[6];
        for (int i = 0; i < n; i++)
            col[i] = *(const VF *)(base + i * rowstride + j * colstride);
        F(wino_bt)(m, col, out);
        for (int a = 0; a < n; a++)
            t[a][j] = out[a];
    }
    for (int a = 0; a < n; a++) {
        VF out[6];
        F(wino_bt)(m, t[a], out);
        for (int b = 0; b < n; b++)
            *(VF *)(dst + (a * n + b) * pt_stride) = out[b];
    }
}

/* y[n][k][m*ti + i][m*tj + j] = (A^T s A)[i][j] + b for the VLEN images n0.. of one tile position (those below
 * N) and the outputs inside the plane; s[pt] = src[pt * pt_stride]. */
WINO_INLINE void F(wino_out_vec)(int m, const F(wino_plan) *q, const float *src, ptrdiff_t pt_stride, float b,
                                 float *restrict y, ptrdiff_t k, ptrdiff_t n0, ptrdiff_t ti, ptrdiff_t tj)
{
    const int n = m + 2;
    const ptrdiff_t P = q->OH * q->OW;
    const ptrdiff_t rows = q->OH - m * ti < m ? q->OH - m * ti : m, cols = q->OW - m * tj < m ? q->OW - m * tj : m;
    VF t[4][6];
    for (int bj = 0; bj < n; bj++) {
        VF col[6], out[4];
        for (int a = 0; a < n; a++)
            col[a] = *(const VF *)(src + (a * n + bj) * pt_stride);
        F(wino_at)(m, col, out);
        for (int i = 0; i < m; i++)
            t[i][bj] = out[i];
    }
    const ptrdiff_t lanes = q->N - n0 < VLEN ? q->N - n0 : VLEN;
    if (m == 4 && cols == 4) {
        /* the 16 outputs of the tile as 16 vectors (lanes: images), transposed in blocks of VLEN so that each
         * image's rows of 4 outputs are contiguous, then stored a row at a time */
        enum { RPB = VLEN / 4 };    /* tile rows per block */
        VF pix[16];
        for (int i = 0; i < 4; i++) {
            VF out[4];
            F(wino_at)(m, t[i], out);
            for (int j = 0; j < 4; j++)
                pix[i * 4 + j] = out[j] + b;
        }
        for (int blk = 0; blk < 16 / VLEN; blk++)
            F(transpose_block)(pix + blk * VLEN);
        for (ptrdiff_t l = 0; l < lanes; l++) {
            float *dst = y + ((n0 + l) * q->K + k) * P + m * ti * q->OW + m * tj;
            for (int i = 0; i < rows; i++) {
                const float *row = (const float *)&pix[i / RPB * VLEN + l] + i % RPB * 4;
                memcpy(dst + i * q->OW, row, sizeof(float) * 4);
            }
        }
        return;
    }
    for (int i = 0; i < rows; i++) {
        VF out[4];
        F(wino_at)(m, t[i], out);
        for (int j = 0; j < cols; j++) {
            float *dst = y + ((n0 * q->K + k) * q->OH + m * ti + i) * q->OW + m * tj + j;
            for (ptrdiff_t l = 0; l < lanes; l++)
                dst[l * q->K * P] = out[j][l] + b;
        }
    }
}

/* The output transforms of channels k0 .. k1 for the tiles t0 .. t0 + nt, from Mc[pt][k - k0][t - t0] (rows of
 * tc, points Mrows*tc apart). */
WINO_INLINE void F(wino_output_chunk_m)(int m, const F(wino_plan) *q, const float *Mc, ptrdiff_t Mrows,
                                        const float *bias, float *restrict y, ptrdiff_t k0, ptrdiff_t k1,
                                        ptrdiff_t t0, ptrdiff_t nt)
{
    for (ptrdiff_t k = k0; k < k1; k++)
        for (ptrdiff_t t = t0; t < t0 + nt; t += VLEN) {
            const ptrdiff_t pos = t / q->Nv;
            F(wino_out_vec)(m, q, Mc + (k - k0) * q->tc + (t - t0), Mrows * q->tc, bias ? bias[k] : 0.0f, y, k,
                            t % q->Nv, pos / q->tw, pos % q->tw);
        }
}

static FC_TGT void F(wino_output_chunk)(const F(wino_plan) *q, const float *Mc, ptrdiff_t Mrows, const float *bias,
                                        float *restrict y, ptrdiff_t k0, ptrdiff_t k1, ptrdiff_t t0, ptrdiff_t nt)
{
    if (q->m == 4)
        F(wino_output_chunk_m)(4, q, Mc, Mrows, bias, y, k0, k1, t0, nt);
    else
        F(wino_output_chunk_m)(3, q, Mc, Mrows, bias, y, k0, k1, t0, nt);
}

/* Vc[pt][c][t - t0] (rows of tc, points C*tc apart) = the transformed input tiles t0 .. t0 + nt of channel c. */
WINO_INLINE void F(wino_input_chunk_m)(int m, const F(wino_plan) *q, const float *restrict xt, ptrdiff_t c,
                                       ptrdiff_t t0, ptrdiff_t nt, float *restrict Vc)
{
    for (ptrdiff_t t = t0; t < t0 + nt; t += VLEN) {
        const ptrdiff_t pos = t / q->Nv, ti = pos / q->tw, tj = pos % q->tw;
        F(wino_in_vec)(m, xt + ((c * q->Hq + m * ti) * q->Wq + m * tj) * q->Nv + t % q->Nv, q->Wq * q->Nv, q->Nv,
                       Vc + c * q->tc + (t - t0), q->C * q->tc);
    }
}

static FC_TGT void F(wino_input_chunk)(const F(wino_plan) *q, const float *restrict xt, ptrdiff_t c, ptrdiff_t t0,
                                       ptrdiff_t nt, float *restrict Vc)
{
    if (q->m == 4)
        F(wino_input_chunk_m)(4, q, xt, c, t0, nt, Vc);
    else
        F(wino_input_chunk_m)(3, q, xt, c, t0, nt, Vc);
}

static void F(winograd)(const fc_geom *g, int transposed, const float *x, const float *w, const float *bias,
                        float *y, void *workspace, int threads)
{
    const F(wino_plan) q = F(plan_winograd)(g, threads, F(wino_tile)(g));
    const int grouped = q.kgroups > 1;      /* tasks: groups of output channels (own U, shared V), else chunks */
    char *ws = align_ptr(workspace);
    float *xt = (float *)ws;
    float *Ushared = (float *)(ws + q.xt_bytes);
    float *Vs = (float *)(ws + q.xt_bytes + q.u_bytes);
    char *thread_ws = ws + q.xt_bytes + q.u_bytes + q.vs_bytes;
    const ptrdiff_t Mrows = q.kb_per_group * FMR;

    #pragma omp parallel num_threads(threads)
    {
        float *mine = (float *)(thread_ws + (q.own_bytes + q.m_bytes) * (size_t)fc_thread_num());
        float *Mc = (float *)((char *)mine + q.own_bytes);
        float *U = grouped ? mine : Ushared;
        const ptrdiff_t ukb = grouped ? q.kb_per_group : q.kblocks;
        winograd_transpose_images(g, q.Hq, q.Wq, q.Nv, x, xt);
        if (grouped) {      /* every chunk's input transform once, shared by the groups */
            #pragma omp for schedule(static)
            for (ptrdiff_t unit = 0; unit < q.chunks * q.C; unit++) {
                const ptrdiff_t chunk = unit / q.C, t0 = chunk * q.tc, nt = q.T - t0 < q.tc ? q.T - t0 : q.tc;
                F(wino_input_chunk)(&q, xt, unit % q.C, t0, nt, Vs + chunk * q.pts * q.C * q.tc);
            }
        } else {
            F(wino_weights)(q.m, g, transposed, w, U, 0, q.kblocks, ukb, 1);
        }
        #pragma omp for schedule(dynamic)
        for (ptrdiff_t task = 0; task < q.tasks; task++) {
            const ptrdiff_t kb0 = grouped ? task * q.kb_per_group : 0;
            const ptrdiff_t kb1 = kb0 + q.kb_per_group < q.kblocks ? kb0 + q.kb_per_group : q.kblocks;
            const ptrdiff_t ub = grouped ? kb0 : 0;     /* the first block in U */
            if (grouped)
                F(wino_weights)(q.m, g, transposed, w, U, kb0, kb1, ukb, 0);
            for (ptrdiff_t chunk = grouped ? 0 : task; chunk < (grouped ? q.chunks : task + 1); chunk++) {
                const ptrdiff_t t0 = chunk * q.tc, nt = q.T - t0 < q.tc ? q.T - t0 : q.tc;
                const ptrdiff_t panels = (nt + FNR - 1) / FNR;
                float *Vc = grouped ? Vs + chunk * q.pts * q.C * q.tc : mine;
                if (!grouped)
                    for (ptrdiff_t c = 0; c < q.C; c++)
                        F(wino_input_chunk)(&q, xt, c, t0, nt, Vc);
                for (ptrdiff_t pt = 0; pt < q.pts; pt++)
                    for (ptrdiff_t kb = kb0; kb < kb1; kb++)
                        for (ptrdiff_t p = 0; p < panels; p++) {
                            F(ukr_forward)(q.C, U + (pt * ukb + kb - ub) * q.C * FMR, Vc + pt * q.C * q.tc + p * FNR,
                                           q.tc, Mc + (pt * Mrows + (kb - kb0) * FMR) * q.tc + p * FNR, q.tc);
                        }
                F(wino_output_chunk)(&q, Mc, Mrows, bias, y, kb0 * FMR, kb1 * FMR < q.K ? kb1 * FMR : q.K, t0, nt);
            }
        }
    }
}

/* Weight gradient of a 3x3 stride-1 convolution by the transposed algorithm F(3x3, m x m) on the forward's tiles:
 * dW = G^T [ sum over tiles and images of (A^T e A) . (B^T d B) ] G, where e is an m x m tile of dy and d the
 * (m+2)x(m+2) input tile under it. Per transform point this is a GEMM that reduces over all T tiles of the
 * batch, Wt[pt] (K x C) = E[pt] (K x T) V[pt] (T x C), on the forward micro-kernel: the channels sit on the
 * vector lanes of the transforms (each image is first transposed to (pixels, channels) in the thread's buffer),
 * so E is stored in FMR-channel blocks with the tiles as the depth, and V with the tiles as rows. Every Wt entry
 * is computed by one thread, in chunks of tiles summed in order. */
typedef struct {
    ptrdiff_t m, n, pts, th, tw, Hq, Wq, Hy, Wy, gimg, T, kblocks, Cp, Kl, cpanels;   /* T: tiles of gimg images */
    size_t v_bytes, e_bytes, wt_bytes, thread_bytes;
} F(wdw_plan);

static F(wdw_plan) F(plan_winograd_dw)(const fc_geom *g)
{
    enum { CPV = VLEN / FMR > 0 ? VLEN / FMR : 1 };
    F(wdw_plan) q;
    q.m = F(wino_tile)(g);
    q.n = q.m + 2;
    q.pts = q.n * q.n;
    q.th = (g->OH + q.m - 1) / q.m;
    q.tw = (g->OW + q.m - 1) / q.m;
    q.Hq = q.m * q.th + 2;
    q.Wq = q.m * q.tw + 2;
    q.Hy = q.m * q.th;
    q.Wy = q.m * q.tw;
    /* the batch goes through in groups of images with about WDW_DEPTH tiles, whose transforms stay in the
     * caches between the two phases (measured at batch 128: 128 -> 128 channels at 14x14 7 % faster than
     * the whole batch at once, 72 -> 72 at 16x15 17-27 %) */
    q.gimg = (WDW_DEPTH + q.th * q.tw - 1) / (q.th * q.tw);
    q.gimg = q.gimg < g->N ? q.gimg : g->N;
    q.T = q.gimg * q.th * q.tw;
    q.kblocks = (g->K + FMR - 1) / FMR;
    q.Cp = (g->C + VLEN - 1) / VLEN * VLEN;
    q.Kl = (q.kblocks + CPV - 1) / CPV * CPV * FMR + VLEN;    /* a vector load at every step of CPV blocks */
    q.cpanels = (q.Cp + FNR - 1) / FNR;
    q.v_bytes = align_up(sizeof(float) * (q.pts * q.T * q.Cp + FNR));    /* the last panel reads past Cp */
    q.e_bytes = align_up(sizeof(float) * q.pts * q.kblocks * q.T * FMR);
    q.wt_bytes = align_up(sizeof(float) * q.pts * g->K * q.Cp);
    q.thread_bytes = align_up(sizeof(float) * (q.Hq * q.Wq * q.Cp + q.Hy * q.Wy * q.Kl));
    return q;
}

static size_t F(winograd_dw_workspace)(const fc_geom *g, int threads)
{
    F(wdw_plan) q = F(plan_winograd_dw)(g);
    return q.v_bytes + q.e_bytes + q.wt_bytes + q.thread_bytes * (size_t)threads + FC_ALIGN;
}

/* out = A in (the transpose of the output transform): m values -> m + 2. */
WINO_INLINE void F(wino_a)(int m, const VF *in, VF *out)
{
    if (m == 4) {
        out[0] = in[0];
        out[1] = in[0] + in[1] + in[2] + in[3];
        out[2] = in[0] - in[1] + in[2] - in[3];
        out[3] = in[0] + 2 * in[1] + 4 * in[2] + 8 * in[3];
        out[4] = in[0] - 2 * in[1] + 4 * in[2] - 8 * in[3];
        out[5] = in[3];
    } else {
        out[0] = in[0];
        out[1] = in[0] + in[1] + in[2];
        out[2] = in[0] - in[1] + in[2];
        out[3] = in[0] + 2 * in[1] + 4 * in[2];
        out[4] = in[2];
    }
}

/* out = G^T in (the transpose of the filter transform): m + 2 values -> 3. */
WINO_INLINE void F(wino_gt)(int m, const VF *in, VF *out)
{
    const float q6 = 1.0f / 6;
    if (m == 4) {
        const float q4 = 1.0f / 4, q12 = 1.0f / 12, q24 = 1.0f / 24;
        out[0] = in[0] * q4 - (in[1] + in[2]) * q6 + (in[3] + in[4]) * q24;
        out[1] = (in[2] - in[1]) * q6 + (in[3] - in[4]) * q12;
        out[2] = (in[3] + in[4] - in[1] - in[2]) * q6 + in[5];
    } else {
        out[0] = (in[0] - in[1]) * 0.5f + (in[3] - in[2]) * q6;
        out[1] = in[1] * -0.5f + (in[2] + 2 * in[3]) * q6;
        out[2] = in[1] * -0.5f + (4 * in[3] - in[2]) * q6 + in[4];
    }
}

/* V[pt][t][c] and E[pt][kb][t][i] (channel kb*FMR + i) for the tiles t of image ``img`` (the ``slot``-th of its
 * group), through the thread's
 * buffers xl (Hq, Wq, Cp: the zero-padded image, channels last) and yl (Hy, Wy, Kl: its dy). */
WINO_INLINE void F(wdw_image_m)(int m, const F(wdw_plan) *q, const fc_geom *g, const float *restrict x,
                                const float *restrict dy, ptrdiff_t img, ptrdiff_t slot, float *restrict xl,
                                float *restrict yl, float *restrict V, float *restrict E)
{
    enum { CPV = VLEN / FMR > 0 ? VLEN / FMR : 1 };
    const int n = m + 2;
    const ptrdiff_t Cp = q->Cp, Kl = q->Kl, T = q->T;
    memset(xl, 0, sizeof(float) * q->Hq * q->Wq * Cp);
    memset(yl, 0, sizeof(float) * q->Hy * q->Wy * Kl);
    for (ptrdiff_t c = 0; c < g->C; c++)
        for (ptrdiff_t h = 0; h < g->H; h++) {
            const float *src = x + ((img * g->C + c) * g->H + h) * g->W;
            float *dst = xl + ((h + g->ph) * q->Wq + g->pw) * Cp + c;
            for (ptrdiff_t w = 0; w < g->W; w++)
                dst[w * Cp] = src[w];
        }
    for (ptrdiff_t k = 0; k < g->K; k++)
        for (ptrdiff_t h = 0; h < g->OH; h++) {
            const float *src = dy + ((img * g->K + k) * g->OH + h) * g->OW;
            float *dst = yl + h * q->Wy * Kl + k;
            for (ptrdiff_t w = 0; w < g->OW; w++)
                dst[w * Kl] = src[w];
        }
    for (ptrdiff_t ti = 0; ti < q->th; ti++)
        for (ptrdiff_t tj = 0; tj < q->tw; tj++) {
            const ptrdiff_t t = (slot * q->th + ti) * q->tw + tj;
            for (ptrdiff_t c0 = 0; c0 < Cp; c0 += VLEN)
                F(wino_in_vec)(m, xl + (m * ti * q->Wq + m * tj) * Cp + c0, q->Wq * Cp, Cp, V + t * Cp + c0, T * Cp);
            for (ptrdiff_t kb0 = 0; kb0 < q->kblocks; kb0 += CPV) {
                const float *base = yl + (m * ti * q->Wy + m * tj) * Kl + kb0 * FMR;
                VF s[6][4];        /* s = A^T e along the rows, column j */
                for (int j = 0; j < m; j++) {
                    VF col[4], out[6];
                    for (int i = 0; i < m; i++)
                        col[i] = *(const VF *)(base + (i * q->Wy + j) * Kl);
                    F(wino_a)(m, col, out);
                    for (int a = 0; a < n; a++)
                        s[a][j] = out[a];
                }
                for (int a = 0; a < n; a++) {
                    VF out[6];
                    F(wino_a)(m, s[a], out);
                    for (int b = 0; b < n; b++)
                        for (int v = 0; v < CPV && kb0 + v < q->kblocks; v++)
                            memcpy(E + (((a * n + b) * q->kblocks + kb0 + v) * T + t) * FMR,
                                   (const float *)&out[b] + v * FMR, sizeof(float) * FMR);
                }
            }
        }
}

static FC_TGT void F(wdw_image)(const F(wdw_plan) *q, const fc_geom *g, const float *x, const float *dy,
                                ptrdiff_t img, ptrdiff_t slot, float *xl, float *yl, float *V, float *E)
{
    if (q->m == 4)
        F(wdw_image_m)(4, q, g, x, dy, img, slot, xl, yl, V, E);
    else
        F(wdw_image_m)(3, q, g, x, dy, img, slot, xl, yl, V, E);
}

/* dw[k][c][u][v] = (G^T Wt[.][k][c] G)[u][v] for all c of output channel k. */
WINO_INLINE void F(wdw_output_m)(int m, const F(wdw_plan) *q, const fc_geom *g, const float *restrict Wt,
                                 float *restrict dw, ptrdiff_t k)
{
    const int n = m + 2;
    for (ptrdiff_t c0 = 0; c0 < g->C; c0 += VLEN) {
        VF t[3][6];
        for (int b = 0; b < n; b++) {       /* t = G^T s, column b */
            VF s[6], out[3];
            for (int a = 0; a < n; a++)
                s[a] = *(const VF *)(Wt + ((a * n + b) * g->K + k) * q->Cp + c0);
            F(wino_gt)(m, s, out);
            for (int u = 0; u < 3; u++)
                t[u][b] = out[u];
        }
        const ptrdiff_t lanes = g->C - c0 < VLEN ? g->C - c0 : VLEN;
        for (int u = 0; u < 3; u++) {       /* (t G)[u][v] */
            VF out[3];
            F(wino_gt)(m, t[u], out);
            for (int v = 0; v < 3; v++)
                for (ptrdiff_t l = 0; l < lanes; l++)
                    dw[((k * g->C + c0 + l) * 3 + u) * 3 + v] = out[v][l];
        }
    }
}

static FC_TGT void F(wdw_output)(const F(wdw_plan) *q, const fc_geom *g, const float *Wt, float *dw, ptrdiff_t k)
{
    if (q->m == 4)
        F(wdw_output_m)(4, q, g, Wt, dw, k);
    else
        F(wdw_output_m)(3, q, g, Wt, dw, k);
}

static void F(winograd_dw)(const fc_geom *g, const float *dy, const float *x, float *dw, float *db,
                           void *workspace, int threads)
{
    const F(wdw_plan) q = F(plan_winograd_dw)(g);
    char *ws = align_ptr(workspace);
    float *V = (float *)ws;
    float *E = (float *)(ws + q.v_bytes);
    float *Wt = (float *)(ws + q.v_bytes + q.e_bytes);
    char *thread_ws = ws + q.v_bytes + q.e_bytes + q.wt_bytes;

    #pragma omp parallel num_threads(threads)
    {
        float tile[FMR * FNR];
        float *xl = (float *)(thread_ws + q.thread_bytes * (size_t)fc_thread_num());
        float *yl = xl + q.Hq * q.Wq * q.Cp;
        sum_dy(g, dy, db);
        #pragma omp single nowait
        memset(V + q.pts * q.T * q.Cp, 0, sizeof(float) * FNR);      /* read by the last panel, not used */
        for (ptrdiff_t img0 = 0; img0 < g->N; img0 += q.gimg) {
            const ptrdiff_t imgs = g->N - img0 < q.gimg ? g->N - img0 : q.gimg, tiles = imgs * q.th * q.tw;
            #pragma omp for schedule(dynamic)
            for (ptrdiff_t img = img0; img < img0 + imgs; img++)
                F(wdw_image)(&q, g, x, dy, img, img - img0, xl, yl, V, E);
            #pragma omp for schedule(dynamic)
            for (ptrdiff_t task = 0; task < q.pts * q.kblocks; task++) {
                const ptrdiff_t pt = task / q.kblocks, kb = task % q.kblocks;
                const ptrdiff_t rows = g->K - kb * FMR < FMR ? g->K - kb * FMR : FMR;
                for (ptrdiff_t d0 = 0; d0 < tiles; d0 += WDW_DEPTH) {
                    const ptrdiff_t depth = tiles - d0 < WDW_DEPTH ? tiles - d0 : WDW_DEPTH;
                    for (ptrdiff_t p = 0; p < q.cpanels; p++) {
                        const ptrdiff_t cols = q.Cp - p * FNR < FNR ? q.Cp - p * FNR : FNR;
                        F(ukr_forward)(depth, E + ((pt * q.kblocks + kb) * q.T + d0) * FMR,
                                       V + (pt * q.T + d0) * q.Cp + p * FNR, q.Cp, tile, FNR);
                        for (ptrdiff_t i = 0; i < rows; i++) {
                            float *dst = Wt + (pt * g->K + kb * FMR + i) * q.Cp + p * FNR;
                            if (img0 == 0 && d0 == 0)
                                memcpy(dst, tile + i * FNR, sizeof(float) * cols);
                            else
                                for (ptrdiff_t j = 0; j < cols; j++)
                                    dst[j] += tile[i * FNR + j];
                        }
                    }
                }
            }
        }
        #pragma omp for schedule(dynamic)
        for (ptrdiff_t k = 0; k < g->K; k++)
            F(wdw_output)(&q, g, Wt, dw, k);
    }
}

/* ------------------------------------------------------------------- direct weight gradient of 3x3 layers */
/* dW of a 3x3 convolution (any stride and padding) with the output channels on the vector lanes:
 * dWt[c, u, v][k..] += x_pad[c][oh*sh + u][ow*sw + v] * dyT[oh, ow][k..], with dyT = one image's dy transposed to
 * (pixels, Kp) and x_pad the image zero-padded in the thread's buffer. The micro-kernel keeps the 9 taps of DCH
 * channels by KB vectors of output channels in registers over all pixels of the image: one vector load of dyT
 * and one broadcast of x per multiply-add group, no packing of columns and no lane reductions. Threads take
 * fixed ranges of images (static schedule) and sum into their own dWt (R x Kp, small: the algorithm is chosen
 * for up to 128 output channels), which are added in thread order at the end: the result does not depend on
 * thread timing. */
typedef struct {
    ptrdiff_t Hp, Wp, plane, P, R, Kp, kvecs, rchunks, tasks;
    size_t part_bytes, xpad_bytes, dyt_bytes, db_at, thread_bytes;   /* db_at: offset of the db part */
} F(dwd_plan);

static F(dwd_plan) F(plan_dw_direct)(const fc_geom *g, int threads)
{
    F(dwd_plan) q;
    q.Hp = g->H + 2 * g->ph;
    q.Wp = g->W + 2 * g->pw;
    q.plane = q.Hp * q.Wp;
    q.P = g->OH * g->OW;
    q.R = g->C * 9;
    q.Kp = (g->K + VLEN - 1) / VLEN * VLEN;
    q.kvecs = q.Kp / VLEN;
    /* tasks are (image, range of input channels); split the channels when the batch is small */
    q.rchunks = 1;
    if (g->N < 4 * (ptrdiff_t)threads) {
        q.rchunks = (4 * threads + g->N - 1) / g->N;
        q.rchunks = q.rchunks > g->C ? g->C : q.rchunks;
    }
    q.tasks = g->N * q.rchunks;
    q.part_bytes = align_up(sizeof(float) * q.R * q.Kp);
    q.xpad_bytes = align_up(sizeof(float) * g->C * q.plane);
    q.dyt_bytes = align_up(sizeof(float) * q.P * q.Kp);
    q.db_at = q.part_bytes + q.xpad_bytes + q.dyt_bytes;
    q.thread_bytes = q.db_at + align_up(sizeof(double) * q.Kp);
    return q;
}

static size_t F(dw_direct_workspace)(const fc_geom *g, int threads)
{
    return F(plan_dw_direct)(g, threads).thread_bytes * (size_t)threads + FC_ALIGN;
}

/* part[(c*9 + t)*Kp + kv*VLEN ..] += sum over pixels of x(c, tap t) * dyT[pixel][kv*VLEN ..] for the DCH
 * channels from ``x`` (its channel 0 = c0) and the KB vectors from kv0. Inlined with constant KB, DCH. */
static inline __attribute__((always_inline)) FC_TGT void
F(dwd_block)(const int KB, const int DCH, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t Wp,
             ptrdiff_t plane, const float *restrict x, const float *restrict dyT, ptrdiff_t Kp,
             float *restrict part)
{
    VF acc[3][3][9];
    for (int b = 0; b < KB; b++)
        for (int c = 0; c < DCH; c++)
            for (int t = 0; t < 9; t++)
                acc[b][c][t] = (VF){0};
    for (ptrdiff_t oh = 0; oh < OH; oh++) {
        const float *rows[3][3];    /* one pointer per (channel, kernel row): the taps are displacements */
        for (int c = 0; c < DCH; c++)
            for (int u = 0; u < 3; u++)
                rows[c][u] = x + c * plane + (oh * sh + u) * Wp;
        const float *d = dyT + oh * OW * Kp;
        for (ptrdiff_t ow = 0, at = 0; ow < OW; ow++, at += sw, d += Kp) {
            VF dv[3];
            for (int b = 0; b < KB; b++)
                dv[b] = *(const VF *)(d + b * VLEN);
            for (int c = 0; c < DCH; c++)
                for (int u = 0; u < 3; u++)
                    for (int v = 0; v < 3; v++) {
                        const float xs = rows[c][u][at + v];
                        for (int b = 0; b < KB; b++)
                            acc[b][c][u * 3 + v] += xs * dv[b];
                    }
        }
    }
    for (int b = 0; b < KB; b++)
        for (int c = 0; c < DCH; c++)
            for (int t = 0; t < 9; t++)
                *(VF *)(part + (c * 9 + t) * Kp + b * VLEN) += acc[b][c][t];
}

/* dyT[p][k] = dy[k][p] for k < K (one image; the rows are written whole, the reads are K interleaved streams),
 * and, when dbp is not NULL, dbp[k] += the image's sum of dy[k] (summed in float lanes per image, then in
 * double), read back from the rows of dyT. */
static FC_TGT void F(dwd_transpose)(ptrdiff_t K, ptrdiff_t P, ptrdiff_t Kp, const float *restrict dy,
                                    float *restrict dyT, double *restrict dbp)
{
    for (ptrdiff_t p = 0; p < P; p++)
        for (ptrdiff_t k = 0; k < K; k++)
            dyT[p * Kp + k] = dy[k * P + p];
    if (!dbp)
        return;
    for (ptrdiff_t kv = 0; kv < Kp; kv += VLEN) {
        VF acc[4] = {(VF){0}, (VF){0}, (VF){0}, (VF){0}};
        ptrdiff_t p = 0;
        for (; p + 4 <= P; p += 4)
            for (int j = 0; j < 4; j++)
                acc[j] += *(const VF *)(dyT + (p + j) * Kp + kv);
        for (; p < P; p++)
            acc[0] += *(const VF *)(dyT + p * Kp + kv);
        const VF sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        for (int l = 0; l < VLEN && kv + l < K; l++)
            dbp[kv + l] += sum[l];
    }
}

/* All output channels of the input channels [c0, c1) of one image. Register budget: KB*DCH*9 accumulators. */
static FC_TGT void F(dwd_image)(const fc_geom *g, const F(dwd_plan) *q, ptrdiff_t c0, ptrdiff_t c1,
                                const float *xpad, const float *dyT, float *part)
{
#define DWD(KB, DCH) F(dwd_block)(KB, DCH, g->OH, g->OW, g->sh, g->sw, q->Wp, q->plane, xpad + c * q->plane, \
                                  dyT + kv * VLEN, q->Kp, part + c * 9 * q->Kp + kv * VLEN)
    ptrdiff_t c = c0;
    if (q->kvecs == 1 && DWD_WIDE >= 3)
        for (; c + 3 <= c1; c += 3) {
            const ptrdiff_t kv = 0;
            DWD(1, 3);
        }
    for (; c < c1; c++) {
        ptrdiff_t kv = 0;
        if (DWD_WIDE >= 3)
            for (; kv + 2 <= q->kvecs; kv += 2)
                DWD(2, 1);
        for (; kv < q->kvecs; kv++)
            DWD(1, 1);
    }
#undef DWD
}

static void F(dw_direct)(const fc_geom *g, const float *dy, const float *x, float *dw, float *db, void *workspace,
                         int threads)
{
    const F(dwd_plan) q = F(plan_dw_direct)(g, threads);
    char *ws = align_ptr(workspace);

    #pragma omp parallel num_threads(threads)
    {
        char *mine = ws + q.thread_bytes * (size_t)fc_thread_num();
        float *part = (float *)mine, *xpad = (float *)(mine + q.part_bytes);
        float *dyT = (float *)(mine + q.part_bytes + q.xpad_bytes);
        double *dbp = (double *)(mine + q.db_at);
        ptrdiff_t ready = -1;       /* the image now in xpad and dyT */
        memset(part, 0, sizeof(float) * q.R * q.Kp);
        memset(dbp, 0, sizeof(double) * q.Kp);
        for (ptrdiff_t p = 0; p < q.P; p++)         /* lanes past K stay zero */
            for (ptrdiff_t k = g->K; k < q.Kp; k++)
                dyT[p * q.Kp + k] = 0;
        #pragma omp for schedule(static)
        for (ptrdiff_t task = 0; task < q.tasks; task++) {
            const ptrdiff_t n = task / q.rchunks, rc = task % q.rchunks;
            if (ready != n) {
                /* db of image n is summed by the task of its first channel range (the first task of n in
                 * whichever thread has it, so ready != n there) */
                pad_image(g, x + n * g->C * g->H * g->W, xpad);
                F(dwd_transpose)(g->K, q.P, q.Kp, dy + n * g->K * q.P, dyT, db && rc == 0 ? dbp : NULL);
                ready = n;
            }
            F(dwd_image)(g, &q, rc * g->C / q.rchunks, (rc + 1) * g->C / q.rchunks, xpad, dyT, part);
        }
        /* dw[k][r] and db[k] = the threads' parts summed in thread order (implicit barrier above) */
        const int T = fc_team_size();
        #pragma omp for schedule(static) nowait
        for (ptrdiff_t r = 0; r < q.R; r++)
            for (ptrdiff_t k = 0; k < g->K; k++) {
                float s = 0;
                for (int t = 0; t < T; t++)
                    s += ((const float *)(ws + q.thread_bytes * (size_t)t))[r * q.Kp + k];
                dw[k * q.R + r] = s;
            }
        if (db) {
            #pragma omp for schedule(static)
            for (ptrdiff_t k = 0; k < g->K; k++) {
                double s = 0;
                for (int t = 0; t < T; t++)
                    s += ((const double *)(ws + q.thread_bytes * (size_t)t + q.db_at))[k];
                db[k] = (float)s;
            }
        }
    }
}

/* Measured against the Winograd, dot- and outer-product forms at batch 128: wins up to 64 output channels, and
 * up to 128 on at most 64 input channels (0.55-0.9x their time); loses on 128 -> 128 and wider layers. */
static int F(use_dw_direct)(const fc_geom *g)
{
    return g->kh == 3 && g->kw == 3 && (g->K <= 64 || (g->K <= 128 && g->C <= 64));
}

/* Winograd is chosen for 3x3 stride-1 convolutions with a batch that fills the vectors, enough channels for
 * the transforms to pay off, and planes on which its tiles make at most half the direct products (not on 1x1
 * or 2x2 planes, where one 3x3 tile would make 25 products for 1 or 4 outputs: measured 4x and 1.4x slower
 * than PyTorch there). */
static int F(use_winograd)(const fc_geom *g)
{
    if (!(g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 && g->N >= 2 * VLEN && g->C >= 16 && g->K >= 16 &&
          g->ph <= 2 && g->pw <= 2))
        return 0;
    const ptrdiff_t m = F(wino_tile)(g), tiles = (g->OH + m - 1) / m * ((g->OW + m - 1) / m);
    return 2 * tiles * (m + 2) * (m + 2) <= 9 * g->OH * g->OW;
}

static size_t F(conv_workspace)(const fc_geom *g, int threads)
{
    if (F(use_direct)(g, threads))
        return F(direct_workspace)(g, threads);
    return F(use_winograd)(g) ? F(winograd_workspace)(g, threads) : F(forward_workspace)(g, threads);
}

static void F(conv)(const fc_geom *g, int transposed, const float *x, const float *w, const float *bias,
                    float *y, void *workspace, int threads)
{
    if (F(use_direct)(g, threads))
        F(direct)(g, transposed, x, w, bias, y, workspace, threads);
    else if (F(use_winograd)(g))
        F(winograd)(g, transposed, x, w, bias, y, workspace, threads);
    else
        F(forward)(g, transposed, x, w, bias, y, workspace, threads);
}

/* The Winograd weight gradient is chosen with the forward's Winograd and 32+ input channels, before the direct
 * form when both channel counts are 64+ (measured at batch 128: it beats the outer-product form from 3x3 planes
 * up, and the dot form on 16x15; the direct form on 64 -> 64 channels at 7x7 by 20 %, on 64 -> 128 at 14x14 by
 * 7 %, at 56x56 by 15 %, and ties on 64 -> 64 at 14x14; the direct form wins with 32 input channels). */
static int F(use_winograd_dw)(const fc_geom *g)
{
    return F(use_winograd)(g) && g->C >= 32 && (!F(use_dw_direct)(g) || (g->C >= 64 && g->K >= 64));
}

static size_t F(dw_any_workspace)(const fc_geom *g, int threads)
{
    if (F(use_winograd_dw)(g))
        return F(winograd_dw_workspace)(g, threads);
    if (F(use_dw_direct)(g))
        return F(dw_direct_workspace)(g, threads);
    if (F(use_dw_outer)(g, threads)) {
        F(dwo_plan) q = F(plan_dw_outer)(g);
        return q.xp_bytes + q.dyp_bytes + q.thread_bytes * (size_t)threads + FC_ALIGN;
    }
    return F(dw_workspace)(g, threads);
}

static void F(dw_any)(const fc_geom *g, const float *dy, const float *x, float *dw, float *db, void *workspace,
                      int threads)
{
    if (F(use_winograd_dw)(g))
        F(winograd_dw)(g, dy, x, dw, db, workspace, threads);
    else if (F(use_dw_direct)(g))
        F(dw_direct)(g, dy, x, dw, db, workspace, threads);
    else if (F(use_dw_outer)(g, threads))
        F(dw_outer)(g, dy, x, dw, db, workspace, threads);
    else
        F(dw)(g, dy, x, dw, db, workspace, threads);
}

/* Which algorithm F(conv) and F(dw_any) run for ``g``: FC_ALGO_* codes for the forward pass and the weight
 * gradient (dx is the forward pass of its own geometry, see fc_conv_algorithms). */
static void F(algorithms)(const fc_geom *g, int threads, int out[2])
{
    out[0] = F(use_direct)(g, threads) ? FC_ALGO_DIRECT : F(use_winograd)(g) ? FC_ALGO_WINOGRAD : FC_ALGO_GEMM;
    out[1] = F(use_winograd_dw)(g)         ? FC_ALGO_WINOGRAD
             : F(use_dw_direct)(g)          ? FC_ALGO_DIRECT
             : F(use_dw_outer)(g, threads)  ? FC_ALGO_OUTER
                                            : FC_ALGO_DOT;
}

/* ------------------------------------------------------------------------------------------------ FMA peak */

/* 12 independent multiply-add chains of ``iters`` steps; returns a value that depends on all of them. */
static FC_TGT float F(fma_chains)(long iters, float seed)
{
    VF a[12], m = (VF){0} + 0.999999f, c = (VF){0} + 1e-7f;
    for (int i = 0; i < 12; i++)
        a[i] = (VF){0} + (seed + (float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++)
            a[i] = a[i] * m + c;
    VF s = (VF){0};
    for (int i = 0; i < 12; i++)
        s += a[i];
    float out = 0;
    for (int l = 0; l < VLEN; l++)
        out += s[l];
    return out;
}

static const fc_impl F(impl) = {
    F(conv_workspace), F(conv), F(dw_any_workspace), F(dw_any), F(algorithms), F(fma_chains), VLEN,
};

#undef F
#undef VF
#undef FNR
#undef SFX
#undef FC_TGT
#undef VLEN
#undef FMR
#undef FNV
#undef WMR
#undef WNR
#undef DWD_WIDE
#undef DNV
#undef WINO_INLINE

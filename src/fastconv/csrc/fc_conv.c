/* Run-time dispatch and the ISA-independent parts of the float32 convolution engine (see fc_conv.h and
 * fc_conv_impl.h): zero-padded copies of the images, weight packing, pixel runs, stores and reductions. */
#include "fc_conv.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
static int fc_thread_num(void) { return omp_get_thread_num(); }
static int fc_team_size(void) { return omp_get_num_threads(); }
#else
static int fc_thread_num(void) { return 0; }
static int fc_team_size(void) { return 1; }
#endif

#define FC_ALIGN 64

static size_t align_up(size_t n) { return (n + FC_ALIGN - 1) / FC_ALIGN * FC_ALIGN; }

static char *align_ptr(void *p)
{
    return (char *)(((uintptr_t)p + FC_ALIGN - 1) / FC_ALIGN * FC_ALIGN);
}

/* The convolution seen on its zero-padded input (Hp, Wp): from there on no read needs a bounds check. */
typedef struct {
    ptrdiff_t C, Hp, Wp, kh, kw, sh, sw, OH, OW;
} fc_padded;

static int needs_padding(const fc_geom *g) { return g->ph > 0 || g->pw > 0; }

static fc_padded padded_geometry(const fc_geom *g)
{
    fc_padded p = {g->C, g->H + 2 * g->ph, g->W + 2 * g->pw, g->kh, g->kw, g->sh, g->sw, g->OH, g->OW};
    return p;
}

/* A run of consecutive output pixels on one output row of one image: panel columns [j, j + len), whose first
 * pixel reads the padded input at offset ``in`` (tap (0, 0), channel 0) and is written at offset ``out``. */
typedef struct {
    ptrdiff_t j, len, in, out;
} fc_seg;

/* Split the ``n`` pixels starting at flattened pixel ``q0`` (image-major over the batch) into runs. */
static int make_segments(const fc_padded *p, ptrdiff_t P, ptrdiff_t out_image, ptrdiff_t q0, ptrdiff_t n,
                         fc_seg *segs)
{
    int count = 0;
    const ptrdiff_t in_image = p->C * p->Hp * p->Wp;
    for (ptrdiff_t j = 0; j < n;) {
        const ptrdiff_t q = q0 + j, img = q / P, pix = q % P, oh = pix / p->OW, ow = pix % p->OW;
        const ptrdiff_t len = p->OW - ow < n - j ? p->OW - ow : n - j;
        segs[count].j = j;
        segs[count].len = len;
        segs[count].in = img * in_image + oh * p->sh * p->Wp + ow * p->sw;
        segs[count].out = img * out_image + pix;
        count++;
        j += len;
    }
    return count;
}

/* dst (H + 2ph, W + 2pw) = the plane src (H, W) with a border of zeros. (Rows are copied by a plain loop: most
 * are short, where a memcpy call costs more than the copy.) */
static void pad_plane(const fc_geom *g, const float *restrict src, float *restrict dst)
{
    const ptrdiff_t H = g->H, W = g->W, ph = g->ph, pw = g->pw, Hp = H + 2 * ph, Wp = W + 2 * pw;
    for (ptrdiff_t j = 0; j < ph * Wp; j++)
        dst[j] = 0;
    for (ptrdiff_t i = 0; i < H; i++) {
        float *restrict row = dst + (i + ph) * Wp;
        const float *restrict in = src + i * W;
        for (ptrdiff_t j = 0; j < pw; j++)
            row[j] = 0;
        for (ptrdiff_t j = 0; j < W; j++)
            row[pw + j] = in[j];
        for (ptrdiff_t j = pw + W; j < Wp; j++)
            row[j] = 0;
    }
    for (ptrdiff_t j = (H + ph) * Wp; j < Hp * Wp; j++)
        dst[j] = 0;
}

/* The C planes of one image. */
static void pad_image(const fc_geom *g, const float *src, float *dst)
{
    const ptrdiff_t plane = (g->H + 2 * g->ph) * (g->W + 2 * g->pw);
    for (ptrdiff_t c = 0; c < g->C; c++)
        pad_plane(g, src + c * g->H * g->W, dst + c * plane);
}

/* xp (N, C, H + 2ph, W + 2pw) = x with a border of zeros. Work-shared: call inside a parallel region. */
static void pad_images(const fc_geom *g, const float *x, float *xp)
{
    const ptrdiff_t plane = (g->H + 2 * g->ph) * (g->W + 2 * g->pw);
    #pragma omp for schedule(static)
    for (ptrdiff_t i = 0; i < g->N * g->C; i++)
        pad_plane(g, x + i * g->H * g->W, xp + i * plane);
}

/* wp[kb][r][i] = weight of output channel kb*mr + i (0 past K) at column r = (c*kh + u)*kw + v.
 * transposed = 0: ``w`` is (K, C, kh, kw). transposed = 1: ``w`` is (C, K, kh, kw) read flipped, i.e. the
 * weight is w[c][k][kh-1-u][kw-1-v] (the forward convolution with these weights is the dx of the original
 * convolution). Work-shared: call inside a parallel region. */
static void pack_weights(const fc_geom *g, int transposed, const float *w, int mr, float *wp)
{
    const ptrdiff_t K = g->K, C = g->C, kh = g->kh, kw = g->kw, R = C * kh * kw;
    const ptrdiff_t kblocks = (K + mr - 1) / mr;
    #pragma omp for schedule(static)
    for (ptrdiff_t kb = 0; kb < kblocks; kb++) {
        float *dst = wp + kb * R * mr;
        for (ptrdiff_t r = 0; r < R; r++) {
            const ptrdiff_t c = r / (kh * kw), u = (r / kw) % kh, v = r % kw;
            for (int i = 0; i < mr; i++) {
                const ptrdiff_t k = kb * mr + i;
                float value = 0;
                if (k < K)
                    value = transposed ? w[((c * K + k) * kh + (kh - 1 - u)) * kw + (kw - 1 - v)] : w[k * R + r];
                dst[r * mr + i] = value;
            }
        }
    }
}

/* y[.., k0 + i, pixel] = tile[i][j] + bias[k0 + i] for the ``rows`` valid rows and the pixels of ``segs``. */
static void store_tile(const float *tile, ptrdiff_t ld, ptrdiff_t k0, ptrdiff_t rows, const fc_seg *segs,
                       int nseg, ptrdiff_t P, const float *bias, float *y)
{
    for (ptrdiff_t i = 0; i < rows; i++) {
        const float b = bias ? bias[k0 + i] : 0.0f;
        const float *src = tile + i * ld;
        for (int s = 0; s < nseg; s++) {
            float *dst = y + segs[s].out + (k0 + i) * P;
            const float *from = src + segs[s].j;
            for (ptrdiff_t l = 0; l < segs[s].len; l++)
                dst[l] = from[l] + b;
        }
    }
}

/* db[k] = dy summed over images and pixels (nothing when db is NULL, but still a barrier).
 * Work-shared: call inside a parallel region. */
static void sum_dy(const fc_geom *g, const float *dy, float *db)
{
    const ptrdiff_t K = g->K, P = g->OH * g->OW;
    if (!db) {
        #pragma omp barrier
        return;
    }
    #pragma omp for schedule(static)
    for (ptrdiff_t k = 0; k < K; k++) {
        double part[8] = {0};   /* eight interleaved double sums: exact enough, and no long dependency chain */
        for (ptrdiff_t n = 0; n < g->N; n++) {
            const float *src = dy + (n * K + k) * P;
            ptrdiff_t p = 0;
            for (; p + 8 <= P; p += 8)
                for (int l = 0; l < 8; l++)
                    part[l] += src[p + l];
            for (; p < P; p++)
                part[0] += src[p];
        }
        db[k] = (float)(((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7])));
    }
}

/* dyt[k][n*P + p] = dy[n][k][p] for k < K (rows K..krows-1 and columns NP..NPp-1 zero).
 * Work-shared: call inside a parallel region. */
static void gather_dy_rows(const fc_geom *g, const float *dy, ptrdiff_t krows, ptrdiff_t NPp, float *dyt)
{
    const ptrdiff_t P = g->OH * g->OW, NP = g->N * P;
    #pragma omp for schedule(static)
    for (ptrdiff_t k = 0; k < krows; k++) {
        float *row = dyt + k * NPp;
        if (k >= g->K) {
            memset(row, 0, sizeof(float) * NPp);
            continue;
        }
        for (ptrdiff_t n = 0; n < g->N; n++)
            memcpy(row + n * P, dy + (n * g->K + k) * P, sizeof(float) * P);
        memset(row + NP, 0, sizeof(float) * (NPp - NP));
    }
}

/* dyp[kb][j][i] = dy[n][kb*mr + i][p] for pixel j = n*P + p (0 past K); db[k] = dy summed over the batch.
 * Work-shared: call inside a parallel region. */
static void pack_dy_blocks(const fc_geom *g, const float *dy, int mr, float *dyp, float *db)
{
    const ptrdiff_t K = g->K, P = g->OH * g->OW, NP = g->N * P, kblocks = (K + mr - 1) / mr;
    #pragma omp for schedule(static) nowait
    for (ptrdiff_t kb = 0; kb < kblocks; kb++) {
        float *dst = dyp + kb * NP * mr;
        for (int i = 0; i < mr; i++) {
            const ptrdiff_t k = kb * mr + i;
            for (ptrdiff_t n = 0; n < g->N; n++) {
                const float *src = dy + (n * K + k) * P;
                float *o = dst + n * P * mr + i;
                if (k < K)
                    for (ptrdiff_t p = 0; p < P; p++)
                        o[p * mr] = src[p];
                else
                    for (ptrdiff_t p = 0; p < P; p++)
                        o[p * mr] = 0;
            }
        }
    }
    sum_dy(g, dy, db);
}

/* dw[k0 + i][r0 + j] (+)= tile[i][j] for i < rows, j < cols (assign when ``first``). */
static void add_tile(const float *tile, ptrdiff_t ld, ptrdiff_t k0, ptrdiff_t rows, ptrdiff_t r0, ptrdiff_t cols,
                     ptrdiff_t R, int first, float *dw)
{
    for (ptrdiff_t i = 0; i < rows; i++) {
        float *d = dw + (k0 + i) * R + r0;
        const float *t = tile + i * ld;
        if (first)
            for (ptrdiff_t j = 0; j < cols; j++)
                d[j] = t[j];
        else
            for (ptrdiff_t j = 0; j < cols; j++)
                d[j] += t[j];
    }
}

/* xt (C, Hq, Wq, Nv) = x (N, C, H, W) transposed, placed at offset (ph, pw), zero elsewhere (and for n >= N).
 * Work-shared: call inside a parallel region. */
static void winograd_transpose_images(const fc_geom *g, ptrdiff_t Hq, ptrdiff_t Wq, ptrdiff_t Nv, const float *x,
                                      float *xt)
{
    #pragma omp for schedule(static)
    for (ptrdiff_t c = 0; c < g->C; c++) {
        float *plane = xt + c * Hq * Wq * Nv;
        memset(plane, 0, sizeof(float) * Hq * Wq * Nv);
        for (ptrdiff_t n = 0; n < g->N; n++) {
            const float *src = x + (n * g->C + c) * g->H * g->W;
            for (ptrdiff_t h = 0; h < g->H; h++) {
                float *dst = plane + ((h + g->ph) * Wq + g->pw) * Nv + n;
                for (ptrdiff_t w = 0; w < g->W; w++)
                    dst[w * Nv] = src[h * g->W + w];
            }
        }
    }
}

/* dw[k0 + i][r0 + j] = sum of the vlen lanes of acc[i][j], for the entries inside (K, R). */
static void reduce_tile(const float *acc, int mr, int nr, int vlen, ptrdiff_t k0, ptrdiff_t r0, ptrdiff_t K,
                        ptrdiff_t R, float *dw)
{
    for (int i = 0; i < mr && k0 + i < K; i++)
        for (int j = 0; j < nr && r0 + j < R; j++) {
            const float *lanes = acc + (i * nr + j) * vlen;
            float s = 0;
            for (int l = 0; l < vlen; l++)
                s += lanes[l];
            dw[(k0 + i) * R + r0 + j] = s;
        }
}

typedef struct {
    size_t (*forward_workspace)(const fc_geom *, int);
    void (*forward)(const fc_geom *, int, const float *, const float *, const float *, float *, void *, int);
    size_t (*dw_workspace)(const fc_geom *, int);
    void (*dw)(const fc_geom *, const float *, const float *, float *, float *, void *, int);
    void (*algorithms)(const fc_geom *, int, int[2]);
    float (*fma_chains)(long, float);
    int vlen;
} fc_impl;

enum { WDW_DEPTH = 256 };      /* tiles per micro-kernel call of the Winograd weight gradient */

/* ------------------------------------------------- the three instruction sets (fc_conv_impl.h undefines its parameters) */

#define SFX generic
#define FC_TGT
#define VLEN 4
#define FMR 4
#define FNV 2
#define WMR 3
#define WNR 4
#define DWD_WIDE 1
#define DNV 2
#include "fc_conv_impl.h"

#if defined(__x86_64__) || defined(__i386__)
#define FC_X86 1

#define SFX avx2
#define FC_TGT __attribute__((target("avx2,fma")))
#define VLEN 8
#define FMR 6
#define FNV 2
#define WMR 3
#define WNR 4
#define DWD_WIDE 1
#define DNV 2
#include "fc_conv_impl.h"

#define SFX avx512
#define FC_TGT __attribute__((target("avx512f,avx2,fma")))
#define VLEN 16
#define FMR 8
#define FNV 3
#define WMR 4
#define WNR 6
#define DWD_WIDE 3
#define DNV 3
#include "fc_conv_impl.h"
#endif

static const fc_impl *implementation(int isa)
{
#ifdef FC_X86
    if (isa == FC_ISA_AVX512)
        return &impl_avx512;
    if (isa == FC_ISA_AVX2)
        return &impl_avx2;
#endif
    (void)isa;
    return &impl_generic;
}

int fc_isa_supported(int isa)
{
    if (isa == FC_ISA_GENERIC)
        return 1;
#ifdef FC_X86
    __builtin_cpu_init();
    if (isa == FC_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == FC_ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return 0;
}

static int current_isa = -1;

int fc_get_isa(void)
{
    if (current_isa < 0) {
        current_isa = FC_ISA_GENERIC;
        for (int isa = FC_ISA_COUNT - 1; isa > FC_ISA_GENERIC; isa--)
            if (fc_isa_supported(isa)) {
                current_isa = isa;
                break;
            }
    }
    return current_isa;
}

int fc_set_isa(int isa)
{
    if (isa < 0 || isa >= FC_ISA_COUNT || !fc_isa_supported(isa))
        return -1;
    current_isa = isa;
    return 0;
}

const char *fc_isa_name(int isa)
{
    static const char *names[FC_ISA_COUNT] = {"generic", "avx2", "avx512"};
    return isa >= 0 && isa < FC_ISA_COUNT ? names[isa] : "unknown";
}

size_t fc_conv_forward_workspace(const fc_geom *g, int threads)
{
    return implementation(fc_get_isa())->forward_workspace(g, threads);
}

void fc_conv_forward(const fc_geom *g, const float *x, const float *w, const float *bias, float *y,
                     void *workspace, int threads)
{
    implementation(fc_get_isa())->forward(g, 0, x, w, bias, y, workspace, threads);
}

/* dx as a forward convolution: input dy (N, K, OH, OW), "weights" the flipped transpose of w, padding
 * kh-1-ph / kw-1-pw, output (N, C, H, W). */
static fc_geom dx_geometry(const fc_geom *g)
{
    fc_geom t = {g->N, g->K, g->OH, g->OW, g->C, g->kh, g->kw, 1, 1, g->kh - 1 - g->ph, g->kw - 1 - g->pw,
                 g->H, g->W};
    return t;
}

int fc_conv_dx_supported(const fc_geom *g)
{
    return g->sh == 1 && g->sw == 1 && g->ph <= g->kh - 1 && g->pw <= g->kw - 1;
}

size_t fc_conv_dx_workspace(const fc_geom *g, int threads)
{
    const fc_geom t = dx_geometry(g);
    return implementation(fc_get_isa())->forward_workspace(&t, threads);
}

void fc_conv_dx(const fc_geom *g, const float *dy, const float *w, float *dx, void *workspace, int threads)
{
    const fc_geom t = dx_geometry(g);
    implementation(fc_get_isa())->forward(&t, 1, dy, w, NULL, dx, workspace, threads);
}

void fc_conv_algorithms(const fc_geom *g, int threads, int out[3])
{
    const fc_impl *impl = implementation(fc_get_isa());
    int fwd[2], dx[2];
    impl->algorithms(g, threads, fwd);
    out[0] = fwd[0];
    out[2] = fwd[1];
    if (fc_conv_dx_supported(g)) {
        const fc_geom t = dx_geometry(g);
        impl->algorithms(&t, threads, dx);
        out[1] = dx[0];
    } else {
        out[1] = FC_ALGO_IM2COL_BLAS;
    }
}

const char *fc_algorithm_name(int algo)
{
    static const char *names[] = {"gemm", "direct", "winograd", "outer-product", "dot-product", "im2col-blas"};
    return algo >= 0 && algo < (int)(sizeof(names) / sizeof(names[0])) ? names[algo] : "unknown";
}

size_t fc_conv_dw_workspace(const fc_geom *g, int threads)
{
    return implementation(fc_get_isa())->dw_workspace(g, threads);
}

void fc_conv_dw(const fc_geom *g, const float *dy, const float *x, float *dw, float *db, void *workspace,
                int threads)
{
    implementation(fc_get_isa())->dw(g, dy, x, dw, db, workspace, threads);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

double fc_fma_peak(double seconds, int threads)
{
    const fc_impl *impl = implementation(fc_get_isa());
    volatile float sink = 0;
    long iters = 1 << 16;
    double t0 = now();
    sink += impl->fma_chains(iters, 1.0f);              /* calibrate on one thread */
    double t = now() - t0;
    while (t < 1e-3) {
        iters *= 4;
        t0 = now();
        sink += impl->fma_chains(iters, 1.0f);
        t = now() - t0;
    }
    iters = (long)(iters * (seconds / t)) + 1;
    float total = 0;
    t0 = now();
    #pragma omp parallel num_threads(threads)
    {
        float s = impl->fma_chains(iters, (float)fc_thread_num());
        #pragma omp atomic
        total += s;
    }
    t = now() - t0;
    sink += total;
    return (double)threads * iters * 12.0 * impl->vlen * 2.0 / t * 1e-9;
}

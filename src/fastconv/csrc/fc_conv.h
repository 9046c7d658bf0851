/* fastconv's own float32 convolution engine: packed implicit-GEMM kernels with one register-blocked
 * micro-kernel per instruction set, chosen at run time.
 *
 * Three instruction sets share one source (fc_conv_impl.h, compiled three times under different target
 * options): "generic" (baseline x86-64 / any CPU: SSE2 on x86-64), "avx2" (AVX2 + FMA) and "avx512"
 * (AVX-512F). fc_set_isa() picks one; the default is the best the CPU supports.
 *
 * Every entry point takes a workspace of at least the size its *_workspace() function returns for the same
 * arguments and the same ISA; callers validate all arguments before calling (nothing here checks them).
 */
#ifndef FC_CONV_H
#define FC_CONV_H

#include <stddef.h>

enum { FC_ISA_GENERIC = 0, FC_ISA_AVX2 = 1, FC_ISA_AVX512 = 2, FC_ISA_COUNT = 3 };

/* One convolution: input (N, C, H, W), weights (K, C, kh, kw), output (N, K, OH, OW). */
typedef struct {
    ptrdiff_t N, C, H, W, K, kh, kw, sh, sw, ph, pw, OH, OW;
} fc_geom;

int fc_isa_supported(int isa);      /* 1 when this CPU (and its OS) can run ``isa`` */
int fc_get_isa(void);
int fc_set_isa(int isa);            /* 0 on success, -1 when ``isa`` is not supported here */
const char *fc_isa_name(int isa);

/* y = conv(x, w) + bias (bias may be NULL). */
size_t fc_conv_forward_workspace(const fc_geom *g, int threads);
void fc_conv_forward(const fc_geom *g, const float *x, const float *w, const float *bias, float *y,
                     void *workspace, int threads);

/* dx of a stride-1 convolution with ph <= kh-1 and pw <= kw-1 (see fc_conv_dx_supported), computed as the
 * forward convolution of dy with the flipped, transposed weights. */
int fc_conv_dx_supported(const fc_geom *g);
size_t fc_conv_dx_workspace(const fc_geom *g, int threads);
void fc_conv_dx(const fc_geom *g, const float *dy, const float *w, float *dx, void *workspace, int threads);

/* dw (K, C*kh*kw) = sum over images and pixels of dy x cols^T, and db (K,) = dy summed (db may be NULL). */
size_t fc_conv_dw_workspace(const fc_geom *g, int threads);
void fc_conv_dw(const fc_geom *g, const float *dy, const float *x, float *dw, float *db, void *workspace,
                int threads);

/* The algorithms the float32 engine picks for ``g`` with the current ISA: out = {forward, dx, dw}, FC_ALGO_*.
 * gemm: packed implicit GEMM; direct: micro-kernel on the flattened padded planes (phases, for strides above 1)
 * of one image (dw: 3x3 layers, output channels on the vector lanes); winograd: F(4x4,3x3) (dw: F(3x3,4x4));
 * outer-product / dot-product: the two weight-gradient GEMM forms; im2col-blas: the dx of strided convolutions,
 * by im2col blocks and BLAS in _conv.pyx (not in this engine). */
enum { FC_ALGO_GEMM, FC_ALGO_DIRECT, FC_ALGO_WINOGRAD, FC_ALGO_OUTER, FC_ALGO_DOT, FC_ALGO_IM2COL_BLAS };
void fc_conv_algorithms(const fc_geom *g, int threads, int out[3]);
const char *fc_algorithm_name(int algo);

/* GFLOP/s of ``threads`` threads running independent FMA chains of the current ISA for about ``seconds``. */
double fc_fma_peak(double seconds, int threads);

#endif

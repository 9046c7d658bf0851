/* The machine's peak float32 FMA rate: every thread runs 12 independent chains of vector FMAs (enough to hide
 * the FMA latency on both FMA ports of current x86 cores) on registers only, so nothing but the FMA units limits
 * it. Built by bench/cases_peak.py with -O2 -fopenmp and either -mavx2 -mfma (8 lanes) or -mavx512f (16 lanes).
 *
 * usage: fma_peak THREADS ITERATIONS REPEATS  ->  prints "best_gflops checksum"
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __AVX512F__
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define SUM(v) _mm512_reduce_add_ps(v)
#else
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
static float SUM(__m256 v) {
    float out[8], s = 0.0f;
    _mm256_storeu_ps(out, v);
    for (int i = 0; i < 8; i++) s += out[i];
    return s;
}
#endif

#define CHAINS 12

static float chains(long iterations, float seed) {
    vec a[CHAINS];
    const vec b = SET1(0.9999999f), c = SET1(1e-7f);
    for (int k = 0; k < CHAINS; k++) a[k] = SET1(seed + (float)k);
    for (long i = 0; i < iterations; i++) {
        /* written out so that the compiler keeps 12 independent dependency chains in 12 registers */
        a[0] = FMA(a[0], b, c); a[1] = FMA(a[1], b, c); a[2] = FMA(a[2], b, c); a[3] = FMA(a[3], b, c);
        a[4] = FMA(a[4], b, c); a[5] = FMA(a[5], b, c); a[6] = FMA(a[6], b, c); a[7] = FMA(a[7], b, c);
        a[8] = FMA(a[8], b, c); a[9] = FMA(a[9], b, c); a[10] = FMA(a[10], b, c); a[11] = FMA(a[11], b, c);
    }
    vec s = a[0];
    for (int k = 1; k < CHAINS; k++) s = ADD(s, a[k]);
    return SUM(s);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s THREADS ITERATIONS REPEATS\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]), repeats = atoi(argv[3]);
    long iterations = atol(argv[2]);
    if (threads < 1 || iterations < 1 || repeats < 1) {
        fprintf(stderr, "%s: THREADS, ITERATIONS and REPEATS must be positive\n", argv[0]);
        return 2;
    }
    double best = 0.0;
    float checksum = 0.0f;
    for (int r = 0; r < repeats; r++) {
        float sink = 0.0f;
        double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += chains(iterations, (float)omp_get_thread_num());
        double seconds = omp_get_wtime() - t0;
        double gflops = 2.0 * CHAINS * LANES * (double)iterations * threads / seconds / 1e9;
        if (gflops > best) best = gflops;
        checksum += sink;
    }
    printf("%.3f %g\n", best, checksum);
    return 0;
}

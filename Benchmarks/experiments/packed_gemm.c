// OpenBLAS's SGEMM against a product with a packed constant right-hand side (the kernel of
// Sources/_CKernels/packed_gemm.c, reduced to full 12-row blocks and 32-column panels), on one
// thread, at the sizes of an attack step on one shard (178 rows, the robust inputs of a shard
// during APGD-T) through a 784-256-256-10 network: the forward products X·Wᵀ and the input-gradient
// products G·W of its first two layers. OpenBLAS repacks both operands on every call; the packed
// kernel reads A in place and B from panels packed once. It also measures the core's peak: twelve
// independent chains of 16-wide fused multiply-adds. Not part of the package build (the README's
// AutoAttack section quotes its numbers). Needs AVX-512.
//
//   clang -O2 Benchmarks/experiments/packed_gemm.c -o /tmp/packed_gemm -I/usr/include/x86_64-linux-gnu -lopenblas -lm
//   OPENBLAS_CORETYPE=SkylakeX /tmp/packed_gemm
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>
extern void openblas_set_num_threads(int);

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

// P[panel][p][c] = B[p][panel·32 + c] (B logical k × n, element (p, j) at b[p·rs + j·cs]), the last
// panel padded with zeros.
static void pack(const float *b, int k, int n, int rs, int cs, float *packed) {
    for (int j = 0; j < n; j += 32)
        for (int p = 0; p < k; p++)
            for (int c = 0; c < 32; c++) packed[j * k + p * 32 + c] = j + c < n ? b[p * rs + (j + c) * cs] : 0.0f;
}

__attribute__((target("avx512f"))) static void block(const float *a, int lda, const float *panel, int k, float *c, int ldc) {
    __m512 low[12], high[12];
    for (int r = 0; r < 12; r++) low[r] = high[r] = _mm512_setzero_ps();
    for (int p = 0; p < k; p++) {
        const __m512 b0 = _mm512_loadu_ps(panel + p * 32), b1 = _mm512_loadu_ps(panel + p * 32 + 16);
#pragma clang loop unroll(full)
        for (int r = 0; r < 12; r++) {
            const __m512 x = _mm512_set1_ps(a[r * lda + p]);
            low[r] = _mm512_fmadd_ps(x, b0, low[r]);
            high[r] = _mm512_fmadd_ps(x, b1, high[r]);
        }
    }
    for (int r = 0; r < 12; r++) { _mm512_storeu_ps(c + r * ldc, low[r]); _mm512_storeu_ps(c + r * ldc + 16, high[r]); }
}

// m % 12 == 0 and C has n rounded up to 32 columns here (the library handles partial blocks).
static void packed_gemm(int m, int n, int k, const float *a, const float *packed, float *c) {
    const int ldc = (n + 31) / 32 * 32;
    for (int j = 0; j < n; j += 32)
        for (int i = 0; i < m; i += 12) block(a + i * k, k, packed + j * k, k, c + i * ldc + j, ldc);
}

static void run(const char *name, int m, int n, int k, int transposedB, int reps) {
    const int padded = (n + 31) / 32 * 32;
    float *a = malloc(4L * m * k), *b = malloc(4L * k * n), *c = malloc(4L * m * n), *d = malloc(4L * m * padded),
          *packed = malloc(4L * k * padded);
    for (long i = 0; i < (long)m * k; i++) a[i] = rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < (long)k * n; i++) b[i] = rand() / (float)RAND_MAX - 0.5f;
    const int ldb = transposedB ? k : n;
    pack(b, k, n, transposedB ? 1 : n, transposedB ? k : 1, packed);
    double openblas = 0, ours = 0;
    for (int trial = 0; trial < 3; trial++) {  // best of three
        double t0 = now();
        for (int r = 0; r < reps; r++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, transposedB ? CblasTrans : CblasNoTrans, m, n, k, 1, a, k, b, ldb, 0, c, n);
        openblas = fmax(openblas, 2.0 * m * n * k * reps / (now() - t0) / 1e9);
        t0 = now();
        for (int r = 0; r < reps; r++) packed_gemm(m, n, k, a, packed, d);
        ours = fmax(ours, 2.0 * m * n * k * reps / (now() - t0) / 1e9);
    }
    double error = 0;
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) error = fmax(error, fabs(c[i * n + j] - d[i * padded + j]));
    printf("%-24s %4d × %4d × %4d  OpenBLAS %6.1f  packed %6.1f GFLOPS  (%.2f×, max difference %.1g)\n", name, m, n, k, openblas, ours,
           ours / openblas, error);
    free(a); free(b); free(c); free(d); free(packed);
}

__attribute__((target("avx512f"))) static void peak(void) {
    __m512 chain[12];
    for (int i = 0; i < 12; i++) chain[i] = _mm512_set1_ps(1.0f + i * 1e-7f);
    const __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    const long steps = 100000000;
    const double t0 = now();
    for (long s = 0; s < steps; s++) {
#pragma clang loop unroll(full)
        for (int i = 0; i < 12; i++) {
            chain[i] = _mm512_fmadd_ps(chain[i], b, c);
            __asm__ volatile("" : "+v"(chain[i]));  // keeps the compiler from folding the loop
        }
    }
    const double seconds = now() - t0;
    float sink[16];
    __m512 sum = chain[0];
    for (int i = 1; i < 12; i++) sum = _mm512_add_ps(sum, chain[i]);
    _mm512_storeu_ps(sink, sum);
    printf("fused multiply-add peak, one core: %.1f GFLOPS (%g)\n", 2.0 * 16 * 12 * steps / seconds / 1e9, sink[0]);
}

int main(void) {
    openblas_set_num_threads(1);
    peak();
    printf("OpenBLAS kernels: %s\n", openblas_get_corename());
    run("layer 1 forward X·Wᵀ", 180, 256, 784, 1, 1000);
    run("layer 1 gradient G·W", 180, 784, 256, 0, 1000);
    run("layer 2 forward X·Wᵀ", 180, 256, 256, 1, 3000);
    run("layer 2 gradient G·W", 180, 256, 256, 0, 3000);
}

// Matrix products with a constant right-hand side packed once (a dense layer's weights while an
// attack runs): C = A·B, A row-major, B in panels of 32 columns. OpenBLAS repacks both operands on
// every call, which costs about a tenth of an attack step at the sizes of an attack batch (a
// shard's 180 rows times 784 × 256 weights); reading A in place and B from its panels saves that.
//
// The AVX-512 kernel holds a 12 × 32 block of C in 24 registers: per step of the inner dimension
// it loads one row of the panel (two registers) and broadcasts one value of each of 12 rows of A
// (24 fused multiply-adds). Each element of C is the sum over the inner dimension in order, plus C
// when accumulating. Without AVX-512 a plain loop sums in the same order (with separate multiplies
// and adds where the baseline target has no FMA, so it rounds differently); `bulwark_packed_gemm_fast`
// says which one runs, so callers can use OpenBLAS instead of the slow one.
#include "bulwark_kernels.h"

#include <string.h>

#define PANEL 32
#define BLOCK_ROWS 12

size_t bulwark_packed_size(size_t k, size_t n) { return k * ((n + PANEL - 1) / PANEL) * PANEL; }

void bulwark_pack_panels(const float *restrict b, size_t k, size_t n, size_t row_stride, size_t column_stride, float *restrict packed) {
    for (size_t j = 0; j < n; j += PANEL) {
        const size_t width = n - j < PANEL ? n - j : PANEL;
        float *panel = packed + j * k;
        for (size_t p = 0; p < k; p++) {
            float *row = panel + p * PANEL;
            for (size_t c = 0; c < width; c++) row[c] = b[p * row_stride + (j + c) * column_stride];
            for (size_t c = width; c < PANEL; c++) row[c] = 0.0f;
        }
    }
}

void bulwark_packed_gemm_plain(size_t m, size_t n, size_t k, const float *restrict a, size_t lda, const float *restrict packed,
                               float *restrict c, size_t ldc, int accumulate) {
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            const float *panel = packed + (j / PANEL) * PANEL * k + j % PANEL;
            float sum = 0.0f;
            for (size_t p = 0; p < k; p++) sum += a[i * lda + p] * panel[p * PANEL];
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + sum : sum;
        }
    }
}

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>
#define HAVE_PACKED_GEMM_AVX512 1

// `rows` (1…R) rows of C, `columns` (1…32) columns from one panel, R = 4, 8 or 12 (a constant once
// inlined, so the loops over rows unroll and the accumulators stay in registers; the smaller
// blocks keep a partial last block from computing 12 rows). Rows past `rows` read the last valid
// row of A (in bounds) and are not stored.
static inline __attribute__((always_inline, target("avx512f"))) void block_avx512(const int R, size_t rows, size_t columns, const float *a,
                                                                                 size_t lda, const float *panel, size_t k, float *c,
                                                                                 size_t ldc, int accumulate) {
    const float *row[BLOCK_ROWS];
    for (int r = 0; r < R; r++) row[r] = a + ((size_t)r < rows ? (size_t)r : rows - 1) * lda;
    __m512 low[BLOCK_ROWS], high[BLOCK_ROWS];
#pragma clang loop unroll(full)
    for (int r = 0; r < R; r++) low[r] = high[r] = _mm512_setzero_ps();
    for (size_t p = 0; p < k; p++) {
        const __m512 b0 = _mm512_loadu_ps(panel + p * PANEL), b1 = _mm512_loadu_ps(panel + p * PANEL + 16);
#pragma clang loop unroll(full)
        for (int r = 0; r < R; r++) {
            const __m512 x = _mm512_set1_ps(row[r][p]);
            low[r] = _mm512_fmadd_ps(x, b0, low[r]);
            high[r] = _mm512_fmadd_ps(x, b1, high[r]);
        }
    }
    const __mmask16 first = columns >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << columns) - 1);
    const __mmask16 second = columns >= 32 ? (__mmask16)0xFFFF : columns > 16 ? (__mmask16)((1u << (columns - 16)) - 1) : 0;
    for (size_t r = 0; r < rows; r++) {
        float *out = c + r * ldc;
        __m512 x = low[r];
        if (accumulate) x = _mm512_add_ps(_mm512_maskz_loadu_ps(first, out), x);
        _mm512_mask_storeu_ps(out, first, x);
        if (columns > 16) {  // (out + 16 is past the row otherwise)
            __m512 y = high[r];
            if (accumulate) y = _mm512_add_ps(_mm512_maskz_loadu_ps(second, out + 16), y);
            _mm512_mask_storeu_ps(out + 16, second, y);
        }
    }
}

__attribute__((target("avx512f"))) static void packed_gemm_avx512(size_t m, size_t n, size_t k, const float *a, size_t lda,
                                                                   const float *packed, float *c, size_t ldc, int accumulate) {
    for (size_t j = 0; j < n; j += PANEL) {
        const size_t columns = n - j < PANEL ? n - j : PANEL;
        const float *panel = packed + j * k;
        for (size_t i = 0; i < m; i += BLOCK_ROWS) {
            const size_t rows = m - i < BLOCK_ROWS ? m - i : BLOCK_ROWS;
            if (rows > 8) {
                block_avx512(12, rows, columns, a + i * lda, lda, panel, k, c + i * ldc + j, ldc, accumulate);
            } else if (rows > 4) {
                block_avx512(8, rows, columns, a + i * lda, lda, panel, k, c + i * ldc + j, ldc, accumulate);
            } else {
                block_avx512(4, rows, columns, a + i * lda, lda, panel, k, c + i * ldc + j, ldc, accumulate);
            }
        }
    }
}
#endif

int bulwark_packed_gemm_fast(void) {
#if HAVE_PACKED_GEMM_AVX512
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
    return 0;
#endif
}

void bulwark_packed_gemm(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *packed, float *c, size_t ldc,
                         int accumulate) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (!accumulate)
            for (size_t i = 0; i < m; i++) memset(c + i * ldc, 0, n * sizeof(float));
        return;
    }
#if HAVE_PACKED_GEMM_AVX512
    if (__builtin_cpu_supports("avx512f")) {
        packed_gemm_avx512(m, n, k, a, lda, packed, c, ldc, accumulate);
        return;
    }
#endif
    bulwark_packed_gemm_plain(m, n, k, a, lda, packed, c, ldc, accumulate);
}

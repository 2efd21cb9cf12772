#include "bulwark_kernels.h"

#include <math.h>
#include <stdint.h>
#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>
#endif

// `target_clones` makes the dynamic loader call an ifunc resolver during relocation, before any
// sanitizer runtime is initialised. Instrumented resolvers then crash (ThreadSanitizer: a segfault
// in __tsan_func_entry before main). Sanitizer builds therefore compile one plain version of each
// kernel; they are for finding bugs, not for speed.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define BULWARK_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define BULWARK_SANITIZED 1
#endif

#if defined(__x86_64__) && defined(__clang__) && !defined(BULWARK_SANITIZED)
#define MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MULTIVERSION
#endif

MULTIVERSION void bulwark_relu(const float *restrict x, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

MULTIVERSION void bulwark_relu_backward(const float *restrict y, const float *dy, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

MULTIVERSION void bulwark_leaky_relu(const float *restrict x, float *restrict y, size_t n, float slope) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : slope * x[i];
}

MULTIVERSION void bulwark_leaky_relu_backward(const float *restrict y, const float *dy, float *dx, size_t n, float slope) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : slope * dy[i];
}

MULTIVERSION void bulwark_tanh_backward(const float *restrict y, const float *dy, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

MULTIVERSION void bulwark_sigmoid_backward(const float *restrict y, const float *dy, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

MULTIVERSION void bulwark_multiply(const float *restrict mask, const float *dy, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = dy[i] * mask[i];
}

MULTIVERSION void bulwark_add_column_sums(const float *restrict g, size_t rows, size_t columns, float *restrict b) {
    for (size_t r = 0; r < rows; r++) {
        const float *restrict row = g + r * columns;
        for (size_t j = 0; j < columns; j++) b[j] += row[j];
    }
}

MULTIVERSION void bulwark_axpy(float a, const float *restrict x, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

MULTIVERSION void bulwark_scale(float *x, size_t n, float a) {
    for (size_t i = 0; i < n; i++) x[i] *= a;
}

MULTIVERSION void bulwark_clamp(float *x, size_t n, float lower, float upper) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i] < lower ? lower : x[i];
        x[i] = v > upper ? upper : v;
    }
}

MULTIVERSION void bulwark_adam_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                                      size_t n, float step_size, float beta1, float beta2, float epsilon,
                                      float inv_sqrt_c2, float l2, float shrink) {
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + l2 * p[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        // __builtin_elementwise_sqrt: sqrt without errno, so the loop vectorises (sqrtps).
        p[i] = p[i] * shrink - step_size * mi / (__builtin_elementwise_sqrt(vi) * inv_sqrt_c2 + epsilon);
    }
}

MULTIVERSION void bulwark_sgd_update(float *restrict p, const float *restrict g, float *restrict velocity, size_t n,
                                     float learning_rate, float momentum, int nesterov, float weight_decay) {
    if (momentum == 0.0f) {
        for (size_t i = 0; i < n; i++) p[i] -= learning_rate * (g[i] + weight_decay * p[i]);
    } else if (nesterov) {
        for (size_t i = 0; i < n; i++) {
            float d = g[i] + weight_decay * p[i];
            float vi = momentum * velocity[i] + d;
            velocity[i] = vi;
            p[i] -= learning_rate * (d + momentum * vi);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            float vi = momentum * velocity[i] + g[i] + weight_decay * p[i];
            velocity[i] = vi;
            p[i] -= learning_rate * vi;
        }
    }
}

MULTIVERSION void bulwark_apgd_linf_step(float *restrict x, float *restrict old, const float *restrict clean, const float *restrict g, size_t n,
                                         float eta, float a, float epsilon) {
#pragma clang fp contract(off)
    const float b = 1.0f - a;
    for (size_t i = 0; i < n; i++) {
        const float lower = clean[i] - epsilon > 0.0f ? clean[i] - epsilon : 0.0f;
        const float upper = clean[i] + epsilon < 1.0f ? clean[i] + epsilon : 1.0f;
        const float direction = g[i] > 0.0f ? 1.0f : (g[i] < 0.0f ? -1.0f : 0.0f);
        float z = x[i] + eta * direction;
        z = z < lower ? lower : z;
        z = z > upper ? upper : z;
        float next = x[i] + a * (z - x[i]) + b * (x[i] - old[i]);
        next = next < lower ? lower : next;
        next = next > upper ? upper : next;
        old[i] = x[i];
        x[i] = next;
    }
}

MULTIVERSION void bulwark_linf_step(float *restrict x, const float *restrict clean, const float *restrict g, size_t n,
                                    float alpha, float epsilon) {
    for (size_t i = 0; i < n; i++) {
        float sign = (float)(g[i] > 0.0f) - (float)(g[i] < 0.0f);
        float v = x[i] + alpha * sign;
        float lower = clean[i] - epsilon, upper = clean[i] + epsilon;
        v = v < lower ? lower : v;
        v = v > upper ? upper : v;
        v = v < 0.0f ? 0.0f : v;
        x[i] = v > 1.0f ? 1.0f : v;
    }
}

/// Σ a[i]², vectorised (the reduction order differs from a plain loop only in rounding).
MULTIVERSION static float sum_of_squares(const float *restrict a, size_t n) {
    float sum = 0.0f;
#pragma clang loop vectorize(enable) interleave(enable)
    for (size_t i = 0; i < n; i++) sum += a[i] * a[i];
    return sum;
}

MULTIVERSION void bulwark_l2_step(float *restrict x, const float *restrict clean, const float *restrict g, size_t rows,
                                  size_t columns, float alpha, float epsilon) {
    for (size_t r = 0; r < rows; r++) {
        float *restrict xr = x + r * columns;
        const float *restrict cr = clean + r * columns;
        const float *restrict gr = g + r * columns;
        float norm = sqrtf(sum_of_squares(gr, columns));
        float scale = norm > 0.0f ? alpha / norm : 0.0f;
        float delta_squares = 0.0f;
        for (size_t j = 0; j < columns; j++) {
            float d = xr[j] + scale * gr[j] - cr[j];
            xr[j] = d;  // holds δ until the projection below
            delta_squares += d * d;
        }
        float delta_norm = sqrtf(delta_squares);
        // Shrink slightly below ε so rounding in clean + δ cannot leave the ball.
        float shrink = delta_norm > epsilon ? epsilon * (1.0f - 1e-6f) / delta_norm : 1.0f;
        for (size_t j = 0; j < columns; j++) {
            float v = cr[j] + shrink * xr[j];
            v = v < 0.0f ? 0.0f : v;
            xr[j] = v > 1.0f ? 1.0f : v;
        }
    }
}

MULTIVERSION void bulwark_row_distances(const float *restrict a, const float *restrict b, size_t rows, size_t columns,
                                        float *restrict linf, float *restrict l2) {
    for (size_t r = 0; r < rows; r++) {
        const float *restrict ar = a + r * columns;
        const float *restrict br = b + r * columns;
        // Sixteen partial maxima and sums, so the loop vectorises without reassociating one sum.
        float maxima[16] = {0}, partial[16] = {0};
        size_t j = 0;
        for (; j + 16 <= columns; j += 16) {
            for (size_t k = 0; k < 16; k++) {
                const float d = ar[j + k] - br[j + k];
                const float magnitude = d < 0.0f ? -d : d;
                maxima[k] = magnitude > maxima[k] ? magnitude : maxima[k];
                partial[k] += d * d;
            }
        }
        float maximum = 0.0f, squares = 0.0f;
        for (size_t k = 0; k < 16; k++) {
            maximum = maxima[k] > maximum ? maxima[k] : maximum;
            squares += partial[k];
        }
        for (; j < columns; j++) {
            const float d = ar[j] - br[j];
            const float magnitude = d < 0.0f ? -d : d;
            maximum = magnitude > maximum ? magnitude : maximum;
            squares += d * d;
        }
        linf[r] = maximum;
        l2[r] = sqrtf(squares);
    }
}

// exp(x) for x in [−87, 88] (Cephes' expf: range reduction by ln 2 in two parts, a degree-6
// polynomial, and the exponent set by bits), written so the loops that call it vectorise; within
// 2 ulp of expf.
static inline float bulwark_exp(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int i; float f; } scale = { .i = ((int)n + 127) << 23 };
    return p * scale.f;
}

MULTIVERSION void bulwark_tanh_box(const float *restrict w, float *restrict x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + bulwark_exp(-2.0f * w[i]));
}

MULTIVERSION float bulwark_cw_gradient(const float *restrict x, const float *restrict reference, const float *restrict g,
                                       float *restrict out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (2.0f * (x[i] - reference[i]) + g[i]) * 2.0f * x[i] * (1.0f - x[i]);
    // Eight partial sums, so the reduction vectorises without reassociating a single sum.
    float partial[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (size_t k = 0; k < 8; k++) {
            float d = x[i + k] - reference[i + k];
            partial[k] += d * d;
        }
    }
    float squares = 0.0f;
    for (size_t k = 0; k < 8; k++) squares += partial[k];
    for (; i < n; i++) squares += (x[i] - reference[i]) * (x[i] - reference[i]);
    return squares;
}

// out = base + Σ_{t<k} change[t]·w[index[t]·n ..< +n], in blocks of 128 outputs held in registers
// while every row's weights stream past them; the row after next is prefetched (the rows'
// addresses are not sequential, so the hardware prefetcher cannot guess them). Each output adds
// the terms in the order of t. `out` may alias `base` (a block is read before it is written).
static inline __attribute__((always_inline)) void rows_update(const float *base, float *out, const float *restrict w, size_t n,
                                                              const size_t *restrict index, const float *restrict change, size_t k) {
    size_t o = 0;
    for (; o + 128 <= n; o += 128) {
        float acc[128];
        for (size_t i = 0; i < 128; i++) acc[i] = base[o + i];
        for (size_t t = 0; t < k; t++) {
            const float *row = w + index[t] * n + o;
            const char *ahead = (const char *)(w + index[t + 2 < k ? t + 2 : t] * n + o);
            for (size_t line = 0; line < 128 * sizeof(float); line += 64) __builtin_prefetch(ahead + line);
            const float c = change[t];
            for (size_t i = 0; i < 128; i++) acc[i] += c * row[i];
        }
        for (size_t i = 0; i < 128; i++) out[o + i] = acc[i];
    }
    for (; o < n; o++) {
        float sum = base[o];
        for (size_t t = 0; t < k; t++) sum += change[t] * w[index[t] * n + o];
        out[o] = sum;
    }
}

MULTIVERSION void bulwark_rows_update(const float *base, float *out, const float *restrict w, size_t n, const size_t *restrict index,
                                      const float *restrict change, size_t k) {
    rows_update(base, out, w, n, index, change, k);
}

// Appends the units j in [first, width) whose ReLU output changes, and the change, to `index` and
// `change` from entry k on; returns the new count. Without branches (about a third of the units
// change, at random: a branch on each would be mispredicted often).
static inline __attribute__((always_inline)) size_t relu_changes(const float *restrict after, const float *restrict before, size_t first,
                                                                 size_t width, size_t *restrict index, float *restrict change, size_t k) {
    for (size_t j = first; j < width; j++) {
        const float d = (after[j] > 0.0f ? after[j] : 0.0f) - (before[j] > 0.0f ? before[j] : 0.0f);
        index[k] = j;
        change[k] = d;
        k += d != 0.0f;
    }
    return k;
}

// The same, sixteen units per step with AVX-512's compress instructions (the one-at-a-time gather
// is a third of the update's time).
#if defined(__x86_64__) && defined(__clang__)
#define HAVE_RELU_CHANGES_AVX512 1
__attribute__((target("avx512f,popcnt"))) static size_t relu_changes_avx512(const float *restrict after, const float *restrict before, size_t width,
                                                                             size_t *restrict index, float *restrict change) {
    const __m512 zero = _mm512_setzero_ps();
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    size_t k = 0, j = 0;
    // Each step stores sixteen entries at k ≤ j, so it stays within the `width` entries.
    for (; j + 16 <= width; j += 16) {
        const __m512 d = _mm512_sub_ps(_mm512_max_ps(_mm512_loadu_ps(after + j), zero), _mm512_max_ps(_mm512_loadu_ps(before + j), zero));
        const __mmask16 changed = _mm512_cmp_ps_mask(d, zero, _CMP_NEQ_UQ);
        _mm512_storeu_ps(change + k, _mm512_maskz_compress_ps(changed, d));
        const __m512i units = _mm512_maskz_compress_epi32(changed, _mm512_add_epi32(lanes, _mm512_set1_epi32((int)j)));
        _mm512_storeu_si512(index + k, _mm512_cvtepu32_epi64(_mm512_castsi512_si256(units)));
        _mm512_storeu_si512(index + k + 8, _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(units, 1)));
        k += (size_t)__builtin_popcount(changed);
    }
    return relu_changes(after, before, j, width, index, change, k);
}
#endif

MULTIVERSION size_t bulwark_relu_change_update(const float *restrict after, const float *restrict before, size_t width,
                                               const float *restrict w, size_t n, const float *restrict base, float *restrict out,
                                               size_t *restrict index, float *restrict change) {
    // `index` and `change` have room for `width` entries.
#if HAVE_RELU_CHANGES_AVX512
    const size_t k = width <= (size_t)INT32_MAX && __builtin_cpu_supports("avx512f")
                         ? relu_changes_avx512(after, before, width, index, change)
                         : relu_changes(after, before, 0, width, index, change, 0);
#else
    const size_t k = relu_changes(after, before, 0, width, index, change, 0);
#endif
    rows_update(base, out, w, n, index, change, k);
    return k;
}

// Sixteen partial sums (one AVX-512 register; two AVX2 ones), so the reductions vectorise without
// reassociating a single sum.
#define FAB_LANES 16

MULTIVERSION float bulwark_fab_project(const float *restrict point, const float *restrict w, float offset, float *restrict step, size_t d,
                                       int linf, float *restrict scratch) {
    float *restrict direction = scratch, *restrict room = scratch + d, *restrict slope = scratch + 2 * d;
    float *restrict weighted_room = scratch + 3 * d, *restrict weighted_slope = scratch + 4 * d;
    const float target = fabsf(offset);
    if (!(target > 0.0f)) {
        for (size_t j = 0; j < d; j++) step[j] = 0.0f;
        return 0.0f;
    }
    const float sign = offset >= 0.0f ? 1.0f : -1.0f;
    float partial[FAB_LANES] = {0};
    size_t j = 0;
    for (; j < d; j++) {
        const float toward = -sign * w[j], a = fabsf(w[j]);
        direction[j] = toward > 0.0f ? 1.0f : (toward < 0.0f ? -1.0f : 0.0f);
        room[j] = toward > 0.0f ? 1.0f - point[j] : (toward < 0.0f ? point[j] : 0.0f);
        slope[j] = linf ? 1.0f : a;
        weighted_room[j] = a * room[j];
        weighted_slope[j] = a * slope[j];
    }
    for (j = 0; j + FAB_LANES <= d; j += FAB_LANES)
        for (size_t k = 0; k < FAB_LANES; k++) partial[k] += weighted_room[j + k];
    float reachable = 0.0f;
    for (size_t k = 0; k < FAB_LANES; k++) reachable += partial[k];
    for (; j < d; j++) reachable += weighted_room[j];

    float lambda;
    if (reachable <= target) {
        lambda = 3.40282347e38f;  // the box cannot reach the hyperplane: saturate every coordinate
    } else {
        lambda = 0.0f;
        for (int pass = 0; pass < 64; pass++) {
            // (Σ over saturated coordinates of |w|·room, Σ over free ones of |w|·slope) at λ.
            float saturated[FAB_LANES] = {0}, free[FAB_LANES] = {0};
            for (j = 0; j + FAB_LANES <= d; j += FAB_LANES) {
                for (size_t k = 0; k < FAB_LANES; k++) {
                    // Multiplying by 0 or 1 (exact) instead of a conditional add, which clang turns
                    // into masked stores to the stack that stall the next pass's loads.
                    const float full = lambda * slope[j + k] >= room[j + k] ? 1.0f : 0.0f;
                    saturated[k] += full * weighted_room[j + k];
                    free[k] += (1.0f - full) * weighted_slope[j + k];
                }
            }
            float s = 0.0f, f = 0.0f;
            for (size_t k = 0; k < FAB_LANES; k++) { s += saturated[k]; f += free[k]; }
            for (; j < d; j++) {
                if (lambda * slope[j] >= room[j]) s += weighted_room[j]; else f += weighted_slope[j];
            }
            if (!(f > 0.0f)) break;
            const float next = (target - s) / f;
            if (!(next > lambda)) break;
            lambda = next;
        }
    }
    float size[FAB_LANES] = {0};
    for (j = 0; j + FAB_LANES <= d; j += FAB_LANES) {
        for (size_t k = 0; k < FAB_LANES; k++) {
            const float free_move = lambda * slope[j + k], available = room[j + k];
            const float v = direction[j + k] * (available < free_move ? available : free_move);
            step[j + k] = v;
            size[k] = linf ? (fabsf(v) > size[k] ? fabsf(v) : size[k]) : size[k] + v * v;
        }
    }
    float total = 0.0f;
    for (size_t k = 0; k < FAB_LANES; k++) total = linf ? (size[k] > total ? size[k] : total) : total + size[k];
    for (; j < d; j++) {
        const float free_move = lambda * slope[j], available = room[j];
        const float v = direction[j] * (available < free_move ? available : free_move);
        step[j] = v;
        total = linf ? (fabsf(v) > total ? fabsf(v) : total) : total + v * v;
    }
    return linf ? total : sqrtf(total);
}

// Element-wise kernels behind TensorCore's `Kernels`, in C so that clang vectorises them: Swift
// cannot mark pointers `restrict`, and its SIMD types lower sqrt, max and comparisons to scalar
// instructions. On x86-64 each kernel is compiled three times (baseline SSE2, x86-64-v3 with AVX2 and
// FMA, x86-64-v4 with AVX-512) and the dynamic loader picks the widest version the CPU supports
// (`target_clones`).
//
// Arguments documented as "may alias" are not `restrict`; every other pair of arrays must not overlap.
#ifndef BULWARK_KERNELS_H
#define BULWARK_KERNELS_H

#include <stddef.h>

/// y = max(x, 0)
void bulwark_relu(const float *restrict x, float *restrict y, size_t n);
/// dx = y > 0 ? dy : 0   (dx may alias dy)
void bulwark_relu_backward(const float *restrict y, const float *dy, float *dx, size_t n);
/// y = x > 0 ? x : slope·x
void bulwark_leaky_relu(const float *restrict x, float *restrict y, size_t n, float slope);
/// dx = y > 0 ? dy : slope·dy   (dx may alias dy)
void bulwark_leaky_relu_backward(const float *restrict y, const float *dy, float *dx, size_t n, float slope);
/// dx = dy·(1 − y²)   (dx may alias dy)
void bulwark_tanh_backward(const float *restrict y, const float *dy, float *dx, size_t n);
/// dx = dy·y·(1 − y)   (dx may alias dy)
void bulwark_sigmoid_backward(const float *restrict y, const float *dy, float *dx, size_t n);
/// dx = dy·mask   (dx may alias dy)
void bulwark_multiply(const float *restrict mask, const float *dy, float *dx, size_t n);

/// b[j] += Σ_i g[i·columns + j]
void bulwark_add_column_sums(const float *restrict g, size_t rows, size_t columns, float *restrict b);
/// y += a·x
void bulwark_axpy(float a, const float *restrict x, float *restrict y, size_t n);
/// x *= a
void bulwark_scale(float *x, size_t n, float a);
/// x = min(max(x, lower), upper)
void bulwark_clamp(float *x, size_t n, float lower, float upper);

/// One Adam/AdamW update over n parameters (see NeuralNet's `Adam` for the formula):
///   g' = g + l2·p;  m = β₁m + (1−β₁)g';  v = β₂v + (1−β₂)g'²;
///   p = p·shrink − step_size·m / (√v·inv_sqrt_c2 + ε)
void bulwark_adam_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                         float step_size, float beta1, float beta2, float epsilon, float inv_sqrt_c2,
                         float l2, float shrink);
/// One SGD update over n parameters (see NeuralNet's `SGD`); velocity is unused when momentum is 0.
void bulwark_sgd_update(float *restrict p, const float *restrict g, float *restrict velocity, size_t n,
                        float learning_rate, float momentum, int nesterov, float weight_decay);

// Attack steps. `x` is the current adversarial batch, `clean` the clean one, both (rows, columns);
// every kernel leaves x inside the ε-ball around clean and inside [0, 1].

/// L∞ step: x = clamp(clamp(x + α·sign(g), clean − ε, clean + ε), 0, 1)
void bulwark_linf_step(float *restrict x, const float *restrict clean, const float *restrict g, size_t n,
                       float alpha, float epsilon);
/// APGD's L∞ momentum step of one row (Croce & Hein, 2020, Algorithm 1), inside
/// [max(clean − ε, 0), min(clean + ε, 1)]: z = clamp(x + η·sign(g)), x' = clamp(x + a·(z − x) +
/// (1 − a)·(x − old)); then old = x and x = x'. No fused multiply-adds (the rounding of the
/// formula as written).
void bulwark_apgd_linf_step(float *restrict x, float *restrict old, const float *restrict clean, const float *restrict g, size_t n,
                            float eta, float a, float epsilon);
/// L2 step, per row: x += α·g/‖g‖ (no move where g = 0); δ = x − clean scaled down to ‖δ‖ ≤ ε;
/// x = clamp(clean + δ, 0, 1)
void bulwark_l2_step(float *restrict x, const float *restrict clean, const float *restrict g, size_t rows,
                     size_t columns, float alpha, float epsilon);
/// Per row of a − b: the L∞ norm into linf[r] and the L2 norm into l2[r].
void bulwark_row_distances(const float *restrict a, const float *restrict b, size_t rows, size_t columns,
                           float *restrict linf, float *restrict l2);
/// FAB's projection (Croce & Hein, 2020b): the smallest step δ (L∞ if `linf`, else L2) from `point`
/// onto the hyperplane ⟨w, z⟩ = b with point + δ in [0, 1]^d, given offset = ⟨w, point⟩ − b; if the
/// box does not reach the hyperplane, the step that gets closest. Every coordinate moves against
/// sign(offset)·w_j by min(λ·s_j, room_j) (s_j = 1 for L∞, |w_j| for L2), λ found by the monotone
/// active-set iteration (at most 64 passes). `scratch` holds 5·d floats. Returns the step's size
/// in the norm.
float bulwark_fab_project(const float *restrict point, const float *restrict w, float offset, float *restrict step, size_t d,
                          int linf, float *restrict scratch);
/// out = base + Σ_{t<k} change[t]·w[index[t]·n ..< index[t]·n + n]: a dense layer's outputs updated
/// for a change of k of its inputs, `w` being its (inputs, n) transposed weights. Each output adds
/// the terms in the order of t, each as `y += a·x` does (so the result equals k `bulwark_axpy`
/// calls). `out` may alias `base`.
void bulwark_rows_update(const float *base, float *out, const float *restrict w, size_t n, const size_t *restrict index,
                         const float *restrict change, size_t k);
/// A dense layer after a ReLU, updated for a change of its pre-activations from `before` to `after`
/// (each `width`): out = base + Σ_j (max(after_j, 0) − max(before_j, 0))·w[j·n ..< j·n + n] over
/// the units whose ReLU output changed; `w` is the layer's (width, n) transposed weights. `index`
/// and `change` are scratch of `width` each. Returns how many units changed.
size_t bulwark_relu_change_update(const float *restrict after, const float *restrict before, size_t width,
                                  const float *restrict w, size_t n, const float *restrict base, float *restrict out,
                                  size_t *restrict index, float *restrict change);


// Products with a packed constant right-hand side (packed_gemm.c).
/// Floats that `bulwark_pack_panels` writes for a (k, n) matrix: k · n rounded up to 32 columns.
size_t bulwark_packed_size(size_t k, size_t n);
/// Packs the (k, n) matrix whose element (p, j) is b[p·row_stride + j·column_stride] into panels of
/// 32 columns (the last one padded with zeros): `packed` holds `bulwark_packed_size(k, n)` floats.
void bulwark_pack_panels(const float *restrict b, size_t k, size_t n, size_t row_stride, size_t column_stride, float *restrict packed);
/// C = A·B, or C += A·B if `accumulate`: A (m, k) row-major with row stride lda, B packed by
/// `bulwark_pack_panels`, C (m, n) with row stride ldc (not overlapping A or B).
void bulwark_packed_gemm(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *packed, float *c, size_t ldc,
                         int accumulate);
/// `bulwark_packed_gemm`'s portable loop (what runs without AVX-512), for tests (k > 0).
void bulwark_packed_gemm_plain(size_t m, size_t n, size_t k, const float *restrict a, size_t lda, const float *restrict packed,
                               float *restrict c, size_t ldc, int accumulate);
/// 1 when `bulwark_packed_gemm` runs its vector kernel on this CPU (AVX-512), 0 when it falls back
/// to a plain loop (slower than OpenBLAS).
int bulwark_packed_gemm_fast(void);

// Carlini & Wagner's change of variables x = (tanh(w) + 1)/2, which keeps x in [0, 1].
/// x = (tanh(w) + 1)/2, computed as 1/(1 + e^(−2w)) (no cancellation near 0).
void bulwark_tanh_box(const float *restrict w, float *restrict x, size_t n);
/// For L = ‖x − reference‖² + g·x (g the gradient of the classification term with respect to x):
/// out = ∂L/∂w = (2(x − reference) + g)·2x(1 − x) where x = (tanh(w) + 1)/2. Returns ‖x − reference‖².
float bulwark_cw_gradient(const float *restrict x, const float *restrict reference, const float *restrict g,
                          float *restrict out, size_t n);
#endif

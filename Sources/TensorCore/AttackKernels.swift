import _CKernels

/// Kernels of attack steps: each leaves `x` inside the ε-ball around `clean` and inside [0, 1].
extension Kernels {
    /// L∞ projected sign step (Madry et al., 2018):
    /// ```
    /// x ← clamp(clamp(x + α·sign(g), clean − ε, clean + ε), 0, 1)
    /// ```
    @inlinable
    public static func linfStep(_ x: MatrixRef, clean: MatrixRef, gradient g: MatrixRef, stepSize alpha: Float, epsilon: Float) {
        requireSameShape(x, clean, g)
        bulwark_linf_step(x.base, clean.base, g.base, x.count, alpha, epsilon)
    }

    /// APGD's L∞ momentum step of one row of `count` values (Croce & Hein, 2020), inside
    /// [max(clean − ε, 0), min(clean + ε, 1)]:
    /// ```
    /// z ← clamp(x + η·sign(g));  x′ ← clamp(x + a·(z − x) + (1 − a)·(x − old));  old ← x;  x ← x′
    /// ```
    @inlinable
    public static func apgdLinfStep(_ x: UnsafeMutablePointer<Float>, previous old: UnsafeMutablePointer<Float>, clean: UnsafePointer<Float>,
                                    gradient g: UnsafePointer<Float>, count: Int, stepSize eta: Float, momentum a: Float, epsilon: Float) {
        bulwark_apgd_linf_step(x, old, clean, g, count, eta, a, epsilon)
    }

    /// L2 projected normalised-gradient step, per row:
    /// ```
    /// x ← x + α·g/‖g‖₂ (no move where g = 0);  δ ← x − clean, scaled to ‖δ‖₂ ≤ ε;  x ← clamp(clean + δ, 0, 1)
    /// ```
    @inlinable
    public static func l2Step(_ x: MatrixRef, clean: MatrixRef, gradient g: MatrixRef, stepSize alpha: Float, epsilon: Float) {
        requireSameShape(x, clean, g)
        bulwark_l2_step(x.base, clean.base, g.base, x.rows, x.columns, alpha, epsilon)
    }

    /// Per-row L∞ and L2 norms of `a − b`.
    @inlinable
    public static func rowDistances(_ a: MatrixRef, _ b: MatrixRef, linf: UnsafeMutablePointer<Float>, l2: UnsafeMutablePointer<Float>) {
        requireSameShape(a, b)
        bulwark_row_distances(a.base, b.base, a.rows, a.columns, linf, l2)
    }

    /// FAB's projection onto the hyperplane ⟨w, z⟩ = ⟨w, point⟩ − offset within [0, 1]ᵈ (see
    /// `FAB.project` and `bulwark_fab_project`); `scratch` holds 5 × `count` floats.
    /// Returns the step's size in the norm.
    @inlinable
    public static func fabProject(from point: UnsafePointer<Float>, normal w: UnsafePointer<Float>, offset: Float,
                                  into step: UnsafeMutablePointer<Float>, count d: Int, linf: Bool,
                                  scratch: UnsafeMutablePointer<Float>) -> Float {
        bulwark_fab_project(point, w, offset, step, d, linf ? 1 : 0, scratch)
    }

    /// A dense layer's outputs for a change of `count` of its inputs: `out = base + Σ_t change[t]·w[index[t], :]`,
    /// `w` being the layer's (inputs, n) transposed weights; the same values as `count` `axpy`
    /// calls in the order of t. `out` may be `base`.
    @inlinable
    public static func rowsUpdate(base: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, transposedWeights w: UnsafePointer<Float>,
                                  outputs n: Int, index: UnsafePointer<Int>, change: UnsafePointer<Float>, count: Int) {
        bulwark_rows_update(base, out, w, n, index, change, count)
    }

    /// A dense layer after a ReLU, for a change of its inputs' pre-activations from `before` to
    /// `after` (`width` each): `out = base + Σ_j (relu(after_j) − relu(before_j))·w[j, :]` over the
    /// units whose ReLU output changed, `w` being the layer's (width, n) transposed weights and
    /// `base` its outputs at `before`. `index` and `change` are scratch of `width`. Returns how many
    /// units changed.
    @inlinable @discardableResult
    public static func reluChangeUpdate(after: UnsafePointer<Float>, before: UnsafePointer<Float>, width: Int,
                                        transposedWeights w: UnsafePointer<Float>, outputs n: Int, base: UnsafePointer<Float>,
                                        into out: UnsafeMutablePointer<Float>, index: UnsafeMutablePointer<Int>,
                                        change: UnsafeMutablePointer<Float>) -> Int {
        bulwark_relu_change_update(after, before, width, w, n, base, out, index, change)
    }

    /// Carlini & Wagner's box change of variables over `count` values: `x = (tanh(w) + 1)/2`, as
    /// `1/(1 + e^(−2w))` with a vectorised exp (within a few ulp of the libm result).
    @inlinable
    public static func tanhBox(_ w: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>, count: Int) {
        bulwark_tanh_box(w, x, count)
    }

    /// Carlini & Wagner's gradient in w-space for L = ‖x − reference‖² + (terms with x-gradient g),
    /// x = (tanh(w) + 1)/2: `out = (2(x − reference) + g)·2x(1 − x)`. Returns ‖x − reference‖².
    @inlinable
    public static func carliniWagnerGradient(x: UnsafePointer<Float>, reference: UnsafePointer<Float>, gradient g: UnsafePointer<Float>,
                                             into out: UnsafeMutablePointer<Float>, count: Int) -> Float {
        bulwark_cw_gradient(x, reference, g, out, count)
    }
}

extension Reference {
    /// Textbook L∞ step for testing `Kernels.linfStep`.
    public static func linfStep(x: [Float], clean: [Float], gradient: [Float], stepSize: Float, epsilon: Float) -> [Float] {
        (0..<x.count).map { i in
            let sign: Float = gradient[i] > 0 ? 1 : (gradient[i] < 0 ? -1 : 0)
            let v = min(max(x[i] + stepSize * sign, clean[i] - epsilon), clean[i] + epsilon)
            return min(max(v, 0), 1)
        }
    }

    /// Textbook L2 step (one row) in Double, for testing `Kernels.l2Step`.
    public static func l2Step(x: [Float], clean: [Float], gradient: [Float], stepSize: Float, epsilon: Float) -> [Float] {
        let norm = gradient.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let moved = (0..<x.count).map { Double(x[$0]) + (norm > 0 ? Double(stepSize) * Double(gradient[$0]) / norm : 0) }
        let delta = (0..<x.count).map { moved[$0] - Double(clean[$0]) }
        let deltaNorm = delta.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
        let shrink = deltaNorm > Double(epsilon) ? Double(epsilon) / deltaNorm : 1
        return (0..<x.count).map { Float(min(max(Double(clean[$0]) + shrink * delta[$0], 0), 1)) }
    }
}

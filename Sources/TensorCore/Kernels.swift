import Foundation
import _CKernels

/// Fast element-wise kernels and reductions over `MatrixRef` views.
///
/// Each kernel is a plain loop over contiguous memory that the optimiser vectorises; each has a
/// naive counterpart in `Reference` used by the tests. Output views may alias input views only where
/// a kernel says so.
public enum Kernels {
    // MARK: - Bias

    /// `Y[i, :] = b` for every row: the start of `Y = X·Wᵀ + b` (the GEMM then adds with β = 1).
    @inlinable
    public static func broadcastRows(_ bias: UnsafePointer<Float>, into y: MatrixRef) {
        for i in 0..<y.rows { y.row(i).update(from: bias, count: y.columns) }
    }

    /// `b += Σᵢ G[i, :]`: the bias gradient, accumulated.
    @inlinable
    public static func accumulateColumnSums(of g: MatrixRef, into b: UnsafeMutablePointer<Float>) {
        bulwark_add_column_sums(g.base, g.rows, g.columns, b)
    }

    // MARK: - Activations (forward: y = f(x); backward: dx = dy ⊙ f′, expressed through y)

    @inlinable
    public static func relu(_ x: MatrixRef, into y: MatrixRef) {
        requireSameShape(x, y)
        bulwark_relu(x.base, y.base, x.count)
    }

    /// `dx = dy` where `y > 0`, else 0. `dx` may alias `dy`.
    @inlinable
    public static func reluBackward(output y: MatrixRef, outputGradient dy: MatrixRef, into dx: MatrixRef) {
        requireSameShape(y, dy, dx)
        bulwark_relu_backward(y.base, dy.base, dx.base, y.count)
    }

    @inlinable
    public static func leakyReLU(_ x: MatrixRef, slope: Float, into y: MatrixRef) {
        requireSameShape(x, y)
        bulwark_leaky_relu(x.base, y.base, x.count, slope)
    }

    /// `dx = dy` where `y > 0`, else `slope · dy` (slope > 0 keeps the sign of x in y). May alias.
    @inlinable
    public static func leakyReLUBackward(output y: MatrixRef, outputGradient dy: MatrixRef, slope: Float, into dx: MatrixRef) {
        requireSameShape(y, dy, dx)
        bulwark_leaky_relu_backward(y.base, dy.base, dx.base, y.count, slope)
    }

    @inlinable
    public static func tanh(_ x: MatrixRef, into y: MatrixRef) {
        requireSameShape(x, y)
        let (xp, yp) = (x.base, y.base)
        for i in 0..<x.count { yp[i] = Foundation.tanh(xp[i]) }
    }

    /// `dx = dy · (1 − y²)`. May alias.
    @inlinable
    public static func tanhBackward(output y: MatrixRef, outputGradient dy: MatrixRef, into dx: MatrixRef) {
        requireSameShape(y, dy, dx)
        bulwark_tanh_backward(y.base, dy.base, dx.base, y.count)
    }

    /// `y = 1 / (1 + e^(−x))`, computed without overflow for large |x|.
    @inlinable
    public static func sigmoid(_ x: MatrixRef, into y: MatrixRef) {
        requireSameShape(x, y)
        let (xp, yp) = (x.base, y.base)
        for i in 0..<x.count {
            let v = xp[i]
            if v >= 0 {
                yp[i] = 1 / (1 + Foundation.exp(-v))
            } else {
                let e = Foundation.exp(v)
                yp[i] = e / (1 + e)
            }
        }
    }

    /// `dx = dy · y · (1 − y)`. May alias.
    @inlinable
    public static func sigmoidBackward(output y: MatrixRef, outputGradient dy: MatrixRef, into dx: MatrixRef) {
        requireSameShape(y, dy, dx)
        bulwark_sigmoid_backward(y.base, dy.base, dx.base, y.count)
    }

    /// `dx = dy ⊙ mask`. May alias.
    @inlinable
    public static func multiply(_ dy: MatrixRef, by mask: MatrixRef, into dx: MatrixRef) {
        requireSameShape(dy, mask, dx)
        bulwark_multiply(mask.base, dy.base, dx.base, dy.count)
    }

    /// Element-wise kernels need operands of one shape (a programmer error otherwise). Two fixed
    /// arities rather than a variadic list, which would allocate an array on hot paths.
    @inlinable
    static func requireSameShape(_ a: MatrixRef, _ b: MatrixRef) {
        precondition(a.rows == b.rows && a.columns == b.columns,
                     "element-wise kernel shapes differ: \(a.rows)×\(a.columns) and \(b.rows)×\(b.columns)")
    }

    @inlinable
    static func requireSameShape(_ a: MatrixRef, _ b: MatrixRef, _ c: MatrixRef) {
        requireSameShape(a, b)
        requireSameShape(a, c)
    }

    // MARK: - Vector arithmetic

    @inlinable
    public static func scale(_ x: UnsafeMutableBufferPointer<Float>, by alpha: Float) {
        guard let p = x.baseAddress else { return }
        if alpha == 0 { p.update(repeating: 0, count: x.count); return }
        bulwark_scale(p, x.count, alpha)
    }

    /// `y += α · x` (x and y must not overlap).
    @inlinable
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        bulwark_axpy(alpha, x, y, count)
    }

    /// `x ← min(max(x, lower), upper)`.
    @inlinable
    public static func clamp(_ x: UnsafeMutableBufferPointer<Float>, lower: Float, upper: Float) {
        guard let p = x.baseAddress else { return }
        bulwark_clamp(p, x.count, lower, upper)
    }

    // MARK: - Optimizer updates (formulas in NeuralNet's `Adam` and `SGD`)

    /// Adam/AdamW over `count` parameters: `g′ = g + l2·p`, moments, then
    /// `p = p·shrink − stepSize·m / (√v·inverseRootCorrection2 + ε)`.
    @inlinable
    public static func adamUpdate(
        parameters p: UnsafeMutablePointer<Float>, gradients g: UnsafePointer<Float>,
        firstMoment m: UnsafeMutablePointer<Float>, secondMoment v: UnsafeMutablePointer<Float>, count: Int,
        stepSize: Float, beta1: Float, beta2: Float, epsilon: Float, inverseRootCorrection2: Float, l2: Float, shrink: Float
    ) {
        bulwark_adam_update(p, g, m, v, count, stepSize, beta1, beta2, epsilon, inverseRootCorrection2, l2, shrink)
    }

    /// SGD with optional (Nesterov) momentum and L2 weight decay over `count` parameters.
    @inlinable
    public static func sgdUpdate(
        parameters p: UnsafeMutablePointer<Float>, gradients g: UnsafePointer<Float>, velocity: UnsafeMutablePointer<Float>,
        count: Int, learningRate: Float, momentum: Float, nesterov: Bool, weightDecay: Float
    ) {
        bulwark_sgd_update(p, g, velocity, count, learningRate, momentum, nesterov ? 1 : 0, weightDecay)
    }

    // MARK: - Reductions

    /// Index of the largest element of each row (first index on ties; NaN never wins).
    @inlinable
    public static func argmaxRows(_ x: MatrixRef, into indices: UnsafeMutablePointer<Int>) {
        precondition(x.columns > 0 || x.rows == 0, "argmax of rows with no columns")
        for i in 0..<x.rows {
            let row = x.row(i)
            var best = 0
            var bestValue = row[0]
            for j in 1..<x.columns where row[j] > bestValue || (bestValue.isNaN && !row[j].isNaN) {
                best = j
                bestValue = row[j]
            }
            indices[i] = best
        }
    }

    /// Largest element of each row.
    @inlinable
    public static func rowMax(_ x: MatrixRef, into maxima: UnsafeMutablePointer<Float>) {
        for i in 0..<x.rows {
            let row = x.row(i)
            var best = -Float.infinity
            for j in 0..<x.columns { best = Swift.max(best, row[j]) }
            maxima[i] = best
        }
    }

    /// Σ xᵢ, accumulated in Double.
    @inlinable
    public static func sum(_ x: UnsafeBufferPointer<Float>) -> Double {
        var total = 0.0
        for v in x { total += Double(v) }
        return total
    }

    /// True if every element is finite.
    @inlinable
    public static func allFinite(_ x: UnsafeBufferPointer<Float>) -> Bool {
        var ok = true
        for v in x { ok = ok && v.isFinite }
        return ok
    }
}

import Foundation

/// Softmax cross-entropy over logits, forward and backward fused in one pass per row, numerically
/// stable through the log-sum-exp trick, with optional label smoothing (Szegedy et al., 2016,
/// "Rethinking the Inception Architecture").
///
/// ```
/// lse_i  = m_i + log Σ_j exp(z_ij − m_i),           m_i = max_j z_ij
/// q_ij   = (1 − ε)·[j = y_i] + ε / K                (ε = label smoothing, K classes)
/// loss_i = lse_i − Σ_j q_ij · z_ij
/// ∂loss_i/∂z_ij = softmax(z_i)_j − q_ij
/// ```
public enum SoftmaxCrossEntropy {
    /// Computes per-row losses and, optionally, `gradient = scale · ∂loss_i/∂z_i`.
    /// - Parameters:
    ///   - logits: (batch, classes).
    ///   - labels: `batch` class indices in `0..<classes`.
    ///   - labelSmoothing: ε in [0, 1).
    ///   - gradientScale: 1/batch for a mean loss, 1 for per-example gradients.
    ///   - gradient: (batch, classes), may be nil; may alias `logits`.
    ///   - losses: `batch` per-example losses, may be nil.
    /// - Returns: Σᵢ lossᵢ (Double accumulation); NaN or ∞ if a logit is not finite.
    @inlinable
    @discardableResult
    public static func lossAndGradient(
        logits: MatrixRef, labels: UnsafePointer<Int>, labelSmoothing: Float = 0,
        gradientScale: Float = 1, gradient: MatrixRef? = nil, losses: UnsafeMutablePointer<Float>? = nil
    ) -> Double {
        let k = logits.columns
        precondition(k > 0, "softmax over zero classes")
        if let gradient { precondition(gradient.rows == logits.rows && gradient.columns == k, "gradient shape") }
        let offTarget = labelSmoothing / Float(k)
        let onTarget = 1 - labelSmoothing + offTarget
        var total = 0.0
        for i in 0..<logits.rows {
            let z = logits.row(i)
            let label = labels[i]
            precondition(label >= 0 && label < k, "label \(label) outside 0..<\(k)")
            var m = -Float.infinity
            for j in 0..<k { m = max(m, z[j]) }
            var sumExp: Float = 0
            var weighted: Float = 0  // Σ_j q_ij z_ij
            for j in 0..<k {
                sumExp += Foundation.exp(z[j] - m)
                weighted += z[j] * (j == label ? onTarget : offTarget)
            }
            let lse = m + Foundation.log(sumExp)
            let loss = lse - weighted
            losses?[i] = loss
            total += Double(loss)
            if let gradient {
                let g = gradient.row(i)
                for j in 0..<k {
                    let p = Foundation.exp(z[j] - lse)
                    g[j] = gradientScale * (p - (j == label ? onTarget : offTarget))
                }
            }
        }
        return total
    }
}

extension Reference {
    /// Textbook softmax then −Σ q log p, in Double, for testing the fused kernel.
    public static func softmaxCrossEntropy(
        logits: MatrixRef, labels: [Int], labelSmoothing: Float = 0, gradientScale: Float = 1
    ) -> (losses: [Double], gradient: [[Double]]) {
        var losses: [Double] = []
        var gradient: [[Double]] = []
        let k = logits.columns
        for i in 0..<logits.rows {
            let z = (0..<k).map { Double(logits[i, $0]) }
            let m = z.max()!
            let e = z.map { Foundation.exp($0 - m) }
            let s = e.reduce(0, +)
            let p = e.map { $0 / s }
            let q = (0..<k).map { j in (j == labels[i] ? 1 - Double(labelSmoothing) : 0) + Double(labelSmoothing) / Double(k) }
            losses.append(-zip(q, p).map { $0 * Foundation.log($1) }.reduce(0, +))
            gradient.append(zip(p, q).map { Double(gradientScale) * ($0 - $1) })
        }
        return (losses, gradient)
    }

    public static func relu(_ x: [Float]) -> [Float] { x.map { max($0, 0) } }
    public static func leakyReLU(_ x: [Float], slope: Float) -> [Float] { x.map { $0 > 0 ? $0 : slope * $0 } }
    public static func tanh(_ x: [Float]) -> [Float] { x.map { Float(Foundation.tanh(Double($0))) } }
    public static func sigmoid(_ x: [Float]) -> [Float] { x.map { Float(1 / (1 + Foundation.exp(-Double($0)))) } }

    public static func argmaxRows(_ x: MatrixRef) -> [Int] {
        (0..<x.rows).map { i in (0..<x.columns).max { x[i, $0] < x[i, $1] || (x[i, $0] == x[i, $1] && $0 > $1) }! }
    }

    public static func columnSums(_ x: MatrixRef) -> [Float] {
        (0..<x.columns).map { j in Float((0..<x.rows).reduce(0.0) { $0 + Double(x[$1, j]) }) }
    }
}

import Foundation
import TensorCore

/// The objective J an attack maximises, per example, from the logits z (K classes), the reference
/// label y and, for targeted attacks, the target t.
///
/// | loss | untargeted J | targeted J |
/// |---|---|---|
/// | `crossEntropy` | CE(z, y) = lse(z) − z_y | −CE(z, t) |
/// | `margin` (Carlini & Wagner, 2017, f₆ without κ) | max_{j≠y} z_j − z_y | z_t − max_{j≠t} z_j |
/// | `dlr` (Croce & Hein, 2020, difference of logits ratio) | −(z_y − max_{j≠y} z_j) / (z_π₁ − z_π₃) | −(z_y − z_t) / (z_π₁ − (z_π₃ + z_π₄)/2) |
///
/// π sorts the logits in decreasing order. The margin and DLR losses do not saturate like the
/// cross-entropy and are invariant to shifting the logits (DLR also to scaling them), which makes
/// them harder to fool by gradient masking. DLR needs 3 classes (4 when targeted).
public enum AttackLoss: String, Sendable, CaseIterable, Codable {
    case crossEntropy = "ce"
    case margin
    case dlr

    /// The fewest classes this loss is defined for.
    public func minimumClasses(targeted: Bool) -> Int {
        switch self {
        case .crossEntropy, .margin: return 2
        case .dlr: return targeted ? 4 : 3
        }
    }

    /// Computes J for each row into `objective` and, if given, ∂J/∂z into `gradient` (per example,
    /// unscaled).
    public func evaluate(logits z: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                         objective: UnsafeMutablePointer<Float>, gradient: MatrixRef?) {
        let k = z.columns
        for i in 0..<z.rows {
            let row = z.row(i)
            let y = labels[i]
            let g = gradient?.row(i)
            g?.update(repeating: 0, count: k)
            switch (self, targets?[i]) {
            case (.crossEntropy, let t):
                var m = -Float.infinity
                for j in 0..<k { m = max(m, row[j]) }
                var sum: Float = 0
                for j in 0..<k { sum += Foundation.exp(row[j] - m) }
                let lse = m + Foundation.log(sum)
                let reference = t ?? y
                let sign: Float = t == nil ? 1 : -1
                // CE = lse − z_r. When z_r is the largest logit, that difference is a few ulps of z_r
                // and often exactly 0 on confident examples (then attacks that compare losses, like
                // APGD, see no progress): it is log1p(Σ_{j≠r} exp(z_j − z_r)) instead.
                if row[reference] == m {
                    var others: Float = 0
                    for j in 0..<k where j != reference { others += Foundation.exp(row[j] - m) }
                    objective[i] = sign * Foundation.log1p(others)
                } else {
                    objective[i] = sign * ((m - row[reference]) + Foundation.log(sum))
                }
                if let g {
                    // ∂CE/∂z_j = p_j − [j = reference]. For the reference class p_r − 1 would round to 0 in
                    // Float32 on a confident example and drop its row of the last layer from ∂J/∂x, so it
                    // is −Σ_{j≠r} p_j, with every p_j taken from log space.
                    var others: Float = 0
                    for j in 0..<k where j != reference {
                        g[j] = Foundation.exp(row[j] - lse)
                        others += g[j]
                    }
                    g[reference] = -others
                    if sign < 0 { for j in 0..<k { g[j] = -g[j] } }
                }
            case (.margin, nil):
                let other = Self.argmax(row, k, excluding: y)
                objective[i] = row[other] - row[y]
                g?[other] = 1
                g?[y] -= 1
            case (.margin, let t?):
                let other = Self.argmax(row, k, excluding: t)
                objective[i] = row[t] - row[other]
                g?[t] = 1
                g?[other] -= 1
            case (.dlr, let t):
                let order = Self.topFour(row, k)
                let other = t ?? Self.argmax(row, k, excluding: y)
                let a = row[y] - row[other]
                let denominator: Float
                if t == nil {
                    denominator = row[order.0] - row[order.2] + 1e-12
                } else {
                    denominator = row[order.0] - 0.5 * (row[order.2] + row[order.3]) + 1e-12
                }
                objective[i] = -a / denominator
                if let g {
                    // J = −a/b ⇒ ∂J = −∂a/b + a·∂b/b²
                    g[y] -= 1 / denominator
                    g[other] += 1 / denominator
                    let c = a / (denominator * denominator)
                    g[order.0] += c
                    if t == nil {
                        g[order.2] -= c
                    } else {
                        g[order.2] -= 0.5 * c
                        g[order.3] -= 0.5 * c
                    }
                }
            }
        }
    }

    /// Whether untargeted DLR is constant around these logits: where the true class ranks third it
    /// is 1 (−(z_π₃ − z_π₁)/(z_π₁ − z_π₃)), so its gradient is zero and what `evaluate` computes
    /// there is rounding (±1 ulp of 1/(z_π₁ − z_π₃), or exactly 0, depending on the logits' last bits).
    public static func dlrIsConstant(logits row: UnsafeMutablePointer<Float>, classes k: Int, label y: Int) -> Bool {
        k >= 3 && topFour(row, k).2 == y
    }

    static func argmax(_ row: UnsafeMutablePointer<Float>, _ k: Int, excluding excluded: Int) -> Int {
        var best = excluded == 0 ? 1 : 0
        for j in 0..<k where j != excluded && row[j] > row[best] { best = j }
        return best
    }

    /// Indices of the four largest logits (fewer classes repeat the last index).
    static func topFour(_ row: UnsafeMutablePointer<Float>, _ k: Int) -> (Int, Int, Int, Int) {
        var top = (0, 0, 0, 0)
        var values = (-Float.infinity, -Float.infinity, -Float.infinity, -Float.infinity)
        for j in 0..<k {
            let v = row[j]
            if v > values.0 {
                (top.3, values.3) = (top.2, values.2); (top.2, values.2) = (top.1, values.1); (top.1, values.1) = (top.0, values.0)
                (top.0, values.0) = (j, v)
            } else if v > values.1 {
                (top.3, values.3) = (top.2, values.2); (top.2, values.2) = (top.1, values.1)
                (top.1, values.1) = (j, v)
            } else if v > values.2 {
                (top.3, values.3) = (top.2, values.2)
                (top.2, values.2) = (j, v)
            } else if v > values.3 {
                (top.3, values.3) = (j, v)
            }
        }
        if k < 4 { top.3 = top.2 }
        return top
    }
}

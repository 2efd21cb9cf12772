import Foundation
import TensorCore

/// A membership-inference attack: from a model's logits on a record (and, for LiRA, from shadow
/// models' logits), a score that is higher the more likely the record was a training member.
///
/// - `loss`: −CE(f(x), y), the loss-threshold attack (Yeom et al., 2018, "Privacy Risk in Machine
///   Learning").
/// - `confidence`: the largest predicted probability, maxⱼ pⱼ, label-free (Salem et al., 2019,
///   "ML-Leaks"), reported as its logarithm so confident records keep distinct scores.
/// - `entropy`: −H(softmax(f(x))), low prediction entropy means member (Salem et al., 2019).
/// - `liraOnline`, `liraOffline`: the likelihood-ratio attack (Carlini et al., 2022, "Membership
///   Inference Attacks From First Principles"), see `LiRA`.
public enum MembershipAttack: String, CaseIterable, Sendable, Codable {
    case loss
    case confidence
    case entropy
    case liraOnline = "lira-online"
    case liraOffline = "lira-offline"

    public var needsShadowModels: Bool { self == .liraOnline || self == .liraOffline }

    /// The score of each row of `logits` (rows × classes) with true labels `labels`, for the
    /// attacks that need only the target model. Log-probabilities come from log space with
    /// log1p around the largest logit, so confident records keep distinct scores instead of tying
    /// at p = 1 (a tie at the top would hide the records a low-FPR attack finds); `confidence`
    /// is therefore reported as log maxⱼ pⱼ, which ranks records exactly as maxⱼ pⱼ does.
    static func scores(_ attack: MembershipAttack, logits: Tensor, labels: [Int]) -> [Double] {
        let classes = logits.shape[1]
        return labels.indices.map { i in
            let logProbability = logProbabilities(logits, row: i, classes: classes)
            switch attack {
            case .loss: return logProbability[labels[i]]
            case .confidence: return logProbability.max()!
            case .entropy: return logProbability.reduce(0) { $0 + Foundation.exp($1) * $1 }
            case .liraOnline, .liraOffline: preconditionFailure("LiRA scores need shadow models")
            }
        }
    }

    /// log softmax of one row in Double: log p_j = z_j − z_max − log1p(Σ_{k≠max} exp(z_k − z_max)).
    static func logProbabilities(_ logits: Tensor, row i: Int, classes: Int) -> [Double] {
        let row = (0..<classes).map { Double(logits[i, $0]) }
        let top = row.indices.max { row[$0] < row[$1] }!
        var rest = 0.0
        for j in 0..<classes where j != top { rest += Foundation.exp(row[j] - row[top]) }
        let logRest = Foundation.log1p(rest)
        return row.map { ($0 - row[top]) - logRest }
    }

    /// LiRA's statistic: the logit-scaled confidence φ = log(p_y / (1 − p_y)), computed as
    /// z_y − log Σ_{j≠y} exp(z_j), which stays finite and exact where p_y rounds to 1.
    static func scaledConfidence(logits: Tensor, labels: [Int]) -> [Double] {
        let classes = logits.shape[1]
        return labels.indices.map { i in
            let y = labels[i]
            var maximum = -Double.infinity
            for j in 0..<classes where j != y { maximum = max(maximum, Double(logits[i, j])) }
            var sum = 0.0
            for j in 0..<classes where j != y { sum += Foundation.exp(Double(logits[i, j]) - maximum) }
            return Double(logits[i, y]) - maximum - Foundation.log(sum)
        }
    }
}

/// The likelihood-ratio attack (Carlini et al., 2022). For each record, shadow models trained with
/// it (IN) and without it (OUT) give two samples of φ; each is modelled as a Gaussian.
///
/// - Online: score = log N(φ_target; μ_in, σ_in²) − log N(φ_target; μ_out, σ_out²).
/// - Offline (OUT models only): score = (φ_target − μ_out) / σ_out, the one-sided test.
///
/// With few shadow models per record the per-record variances are noisy; below 64 shadow models
/// (the paper's advice) one global variance per side, pooled over all records, is used.
public enum LiRA {
    public static let globalVarianceBelow = 64

    /// - Parameters:
    ///   - target: φ of the target model for each record.
    ///   - shadows: φ of every shadow model for each record (shadows × records).
    ///   - inShadow: whether record r was in shadow s's training set (shadows × records).
    public static func scores(target: [Double], shadows: [[Double]], inShadow: [[Bool]], online: Bool) -> [Double] {
        let records = target.count
        let globalVariance = shadows.count < globalVarianceBelow
        var means = (in: [Double](repeating: 0, count: records), out: [Double](repeating: 0, count: records))
        var variances = (in: [Double](repeating: 0, count: records), out: [Double](repeating: 0, count: records))
        var pooled = (in: (sum: 0.0, count: 0), out: (sum: 0.0, count: 0))
        for r in 0..<records {
            var inside: [Double] = []
            var outside: [Double] = []
            for s in shadows.indices {
                if inShadow[s][r] { inside.append(shadows[s][r]) } else { outside.append(shadows[s][r]) }
            }
            let (meanIn, varianceIn) = meanAndVariance(inside)
            let (meanOut, varianceOut) = meanAndVariance(outside)
            means.in[r] = meanIn
            means.out[r] = meanOut
            variances.in[r] = varianceIn
            variances.out[r] = varianceOut
            if inside.count > 1 { pooled.in.sum += varianceIn * Double(inside.count - 1); pooled.in.count += inside.count - 1 }
            if outside.count > 1 { pooled.out.sum += varianceOut * Double(outside.count - 1); pooled.out.count += outside.count - 1 }
        }
        let floor = 1e-6
        let pooledIn = max(pooled.in.sum / Double(max(pooled.in.count, 1)), floor)
        let pooledOut = max(pooled.out.sum / Double(max(pooled.out.count, 1)), floor)
        return (0..<records).map { r in
            let sigmaOut = (globalVariance ? pooledOut : max(variances.out[r], floor)).squareRoot()
            guard online else { return (target[r] - means.out[r]) / sigmaOut }
            let sigmaIn = (globalVariance ? pooledIn : max(variances.in[r], floor)).squareRoot()
            return logNormal(target[r], mean: means.in[r], sigma: sigmaIn) - logNormal(target[r], mean: means.out[r], sigma: sigmaOut)
        }
    }

    static func meanAndVariance(_ values: [Double]) -> (Double, Double) {
        guard !values.isEmpty else { return (0, 0) }
        let mean = values.reduce(0, +) / Double(values.count)
        guard values.count > 1 else { return (mean, 0) }
        return (mean, values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1))
    }

    static func logNormal(_ x: Double, mean: Double, sigma: Double) -> Double {
        let z = (x - mean) / sigma
        return -0.5 * z * z - Foundation.log(sigma)
    }
}

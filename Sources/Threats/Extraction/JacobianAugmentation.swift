import Foundation
import NeuralNet
import TensorCore
import Training

/// Jacobian-based dataset augmentation (Papernot et al., 2017, "Practical Black-Box Attacks
/// against Machine Learning", Algorithm 1): from a small seed set labelled by the victim, train a
/// substitute, then add for every point x its neighbour x + λ·sign(∇ₓ F_{O(x)}(x)) (the direction
/// in which the substitute's logit for the victim's label grows fastest, clamped to [0, 1]), label
/// the new points by the victim, and repeat. Each round doubles the set, and its queries explore
/// the victim's decision boundaries (which is also what PRADA detects). λ alternates sign every
/// `period` rounds (the paper's periodic step size).
public enum JacobianAugmentation {
    /// Spends the oracle's remaining budget: the first round queries `seed` inputs, each later
    /// round as many new points as the set holds (the last one truncated to the budget).
    /// - Throws: `ThreatError.invalidParameter` for a seed set larger than the budget; the
    ///   oracle's and training's errors.
    public static func extract(from oracle: ExtractionOracle, seed initial: Tensor, recipe: TrainingRecipe, lambda: Float = 0.1,
                               period: Int = 3, victimPredictions: [Int], test: LabeledData, seed: UInt64,
                               log: (String) -> Void = { _ in }) throws -> KnockoffExtraction.Result {
        let d = initial.shape[1]
        guard initial.shape[0] >= 1, initial.shape[0] <= oracle.queriesLeft else {
            throw ThreatError.invalidParameter(name: "seed set", value: "\(initial.shape[0]) inputs",
                                               requirement: "must hold between 1 and the budget's \(oracle.queriesLeft) inputs")
        }
        var inputs = initial.scalars
        var labels = try oracle.query(initial).labels
        var curve: [KnockoffExtraction.Point] = []
        var round = 0
        while true {
            let substitute = try ModelTraining.train(recipe, seed: seed, on: LabeledData(features: Tensor(shape: [labels.count, d], scalars: inputs),
                                                                                        labels: labels, classCount: oracle.classCount)).network
            let point = KnockoffExtraction.Point.measuring(substitute, queries: labels.count, victimPredictions: victimPredictions, test: test)
            log("round \(round): \(point.queries) queries, fidelity \(point.fidelity.value), surrogate accuracy \(point.accuracy.value)")
            curve.append(point)
            let count = min(labels.count, oracle.queriesLeft)
            guard count > 0 else { return KnockoffExtraction.Result(surrogate: substitute, curve: curve) }
            let step = (round / max(period, 1)) % 2 == 0 ? lambda : -lambda
            let current = Tensor(shape: [labels.count, d], scalars: inputs)
            let augmented = augment(current.rows(0..<count), labels: Array(labels.prefix(count)), substitute: substitute, step: step)
            labels += try oracle.query(augmented).labels
            inputs += augmented.scalars
            round += 1
        }
    }

    /// x + step·sign(∇ₓ z_{label}(x)) per row, clamped to [0, 1].
    static func augment(_ x: Tensor, labels: [Int], substitute: Sequential, step: Float) -> Tensor {
        let (rows, d) = (x.shape[0], x.shape[1])
        substitute.reserve(rows: rows, shards: 1)
        var out = x.scalars
        x.withReadOnlyMatrix { input in
            _ = substitute.logits(input, shard: 0)
            let cotangent = substitute.logitsGradient(shard: 0)
            for r in 0..<rows {
                let row = cotangent.row(r)
                row.update(repeating: 0, count: cotangent.columns)
                row[labels[r]] = 1
            }
            let gradient = substitute.inputGradient(shard: 0)
            for r in 0..<rows {
                let g = gradient.row(r)
                for j in 0..<d {
                    let sign: Float = g[j] > 0 ? 1 : (g[j] < 0 ? -1 : 0)
                    out[r * d + j] = min(max(out[r * d + j] + step * sign, 0), 1)
                }
            }
        }
        return Tensor(shape: [rows, d], scalars: out)
    }
}

import Foundation
import TensorCore

/// Cross-entropy against soft targets, one probability row q per training example:
/// ```
/// L = −Σⱼ qⱼ log softmax(z)ⱼ,    ∂L/∂z = softmax(z) − q
/// ```
/// (distillation, Hinton et al. 2015; how Knockoff Nets learn from a victim's probabilities,
/// Orekondy et al. 2019, and how equation solving fits a victim with hidden layers, Tramèr et al.
/// 2016). log softmax is z − logsumexp(z), so no probability is rounded before its logarithm.
///
/// The training data's labels are row indices into `targets`: the trainer shuffles and shards
/// labels with their examples, so each example meets its own row (`SoftTargetObjective.data`).
/// `predictions` reports the index when the network's top class is the target's top class, so the
/// trainer's accuracy is the agreement with the targets' top classes.
public final class SoftTargetObjective: TrainingObjective {
    /// (examples, classes); each row non-negative and summing to 1.
    public let targets: Tensor
    private let digest: UInt64

    /// - Parameter targets: one row per example; rows are scaled to sum to 1.
    /// - Throws: `NeuralNetError.invalidHyperparameter` for a row with a negative or non-finite
    ///   value, or nothing above 0.
    public init(targets: Tensor) throws {
        let (rows, classes) = (targets.shape[0], targets.shape[1])
        var scalars = targets.scalars
        for r in 0..<rows {
            let row = scalars[(r * classes)..<((r + 1) * classes)]
            let sum = row.reduce(0, +)
            try require(row.allSatisfy { $0.isFinite && $0 >= 0 } && sum > 0 && sum.isFinite, "soft target row", r,
                        "must be finite, non-negative and not all 0")
            for j in 0..<classes { scalars[r * classes + j] /= sum }
        }
        self.targets = Tensor(shape: [rows, classes], scalars: scalars)
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a of the rows' bits: the record tells target sets apart
        for value in scalars { hash = (hash ^ UInt64(value.bitPattern)) &* 0x0000_0100_0000_01b3 }
        digest = hash
    }

    /// Training data for this objective: `features` with each example's label its own row index.
    public static func data(features: Tensor) -> LabeledData {
        LabeledData(features: features, labels: Array(0..<features.shape[0]), classCount: max(features.shape[0], 1))
    }

    public var description: String { "soft-target cross-entropy (\(targets.shape[0]) target rows)" }

    public var record: String { #"{"targets":"\#(String(digest, radix: 16))","type":"soft_targets"}"# }

    public func lossAndGradients(_ batch: MatrixRef, labels: UnsafePointer<Int>, network: Sequential, shard: Int,
                                 gradientScale: Float, predictions: UnsafeMutablePointer<Int>,
                                 generator: inout RandomGenerator) throws -> Double {
        let logits = network.forward(batch, mode: .training, shard: shard)
        let gradient = network.logitsGradient(shard: shard)
        let classes = logits.columns
        var loss = 0.0
        targets.scalars.withUnsafeBufferPointer { q in
            for r in 0..<batch.rows {
                let index = labels[r]
                precondition((0..<targets.shape[0]).contains(index), "a soft-target label must be a row index of the targets")
                let target = q.baseAddress! + index * classes
                var top = 0, targetTop = 0
                var maximum = -Float.infinity
                for j in 0..<classes {
                    if logits[r, j] > maximum { (maximum, top) = (logits[r, j], j) }
                    if target[j] > target[targetTop] { targetTop = j }
                }
                var sum: Double = 0
                for j in 0..<classes { sum += Foundation.exp(Double(logits[r, j] - maximum)) }
                let logSum = Double(maximum) + Foundation.log(sum)
                for j in 0..<classes {
                    let logP = Double(logits[r, j]) - logSum
                    if target[j] > 0 { loss -= Double(target[j]) * logP }
                    gradient[r, j] = Float(Foundation.exp(logP) - Double(target[j])) * gradientScale
                }
                predictions[r] = top == targetTop ? index : -1
            }
        }
        network.backward(parameterGradients: .overwrite, computeInputGradient: false, shard: shard)
        return loss
    }
}

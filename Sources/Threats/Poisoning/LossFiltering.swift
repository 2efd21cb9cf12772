import Foundation
import NeuralNet
import TensorCore

/// Loss-based filtering: the examples the trained model fits worst are flagged, 1.5·ε·n of them
/// (ε the defender's bound on the poisoned fraction). Mislabelled examples (label flipping) carry
/// large losses; a backdoor's examples are fitted as easily as clean ones, so this is the baseline
/// that a backdoor is expected to pass.
public struct LossFiltering: PoisonDefence {
    public let expectedRate: Double

    public init(expectedRate: Double) throws {
        try require(expectedRate > 0 && expectedRate * 1.5 < 1, "expected poison rate", expectedRate, "must be in (0, 2/3)")
        self.expectedRate = expectedRate
    }

    public var name: String { "loss" }
    public var description: String { "loss filtering (removes the 1.5 × \(expectedRate) highest-loss examples)" }

    public func flag(_ data: LabeledData, model: Sequential, seed: UInt64) throws -> [Bool] {
        let losses = try Self.losses(of: model.inferenceModel(pool: model.pool), on: data)
        let removed = Int((1.5 * expectedRate * Double(data.count)).rounded())
        var flags = [Bool](repeating: false, count: data.count)
        for i in losses.indices.sorted(by: { losses[$0] > losses[$1] }).prefix(removed) { flags[i] = true }
        return flags
    }

    /// Each example's cross-entropy −log p_y, from log space (`MembershipAttack.logProbabilities`:
    /// no cancellation for confident rows).
    static func losses(of model: any InferenceModel, on data: LabeledData) throws -> [Double] {
        let logits = try model.logits(data.features)
        return (0..<data.count).map { -MembershipAttack.logProbabilities(logits, row: $0, classes: model.classCount)[data.labels[$0]] }
    }
}

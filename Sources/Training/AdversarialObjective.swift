import Attacks
import NeuralNet
import TensorCore

/// Adversarial training as a training objective: before the loss, part or all of the shard's batch
/// is replaced by adversarial examples crafted against the current weights (in evaluation mode),
/// then the cross-entropy is minimised on the result.
/// ```
/// L = (1/B) Σᵢ CE(f(x̃ᵢ), yᵢ),   x̃ᵢ = attack(xᵢ) for the first ⌈mix·B⌉ rows of the batch, xᵢ otherwise
/// ```
/// - FGSM training (Goodfellow, Shlens & Szegedy, 2015): a fraction `mix` of each batch (0.5 in the
///   paper's α = 0.5 objective) is replaced by FGSM examples.
/// - PGD training (Madry et al., 2018): the whole batch is replaced by PGD examples with a random
///   start, k steps of size α, keeping each input's strongest iterate.
///
/// `@unchecked Sendable`: `workspaces` and `outputs` are set in `prepare`, before shards run; a
/// shard job then touches only its own entries.
public final class AdversarialObjective: TrainingObjective, @unchecked Sendable {
    public let spec: AdversarialTrainingSpec
    public let attack: any Attack
    private let crossEntropy: CrossEntropyObjective
    private var workspaces: [any AttackWorkspace] = []
    private var outputs: [FloatBuffer] = []
    /// The current batch's rows (set in `beginStep`), for the per-batch mix.
    private var batchRows = 0

    /// - Throws: `AttackError.invalidParameter` if `mix` is outside (0, 1] or the attack is invalid.
    public init(_ spec: AdversarialTrainingSpec) throws {
        guard spec.mix > 0 && spec.mix <= 1 else {
            throw AttackError.invalidParameter(name: "adversarial mix", value: "\(spec.mix)", requirement: "must be in (0, 1]")
        }
        guard spec.attack.type == "fgsm" || spec.attack.isGradientAscent else {
            throw AttackError.invalidParameter(name: "training attack", value: spec.attack.type,
                                               requirement: "must be fgsm, pgd, mi-fgsm, apgd or apgd-t (the others do not return strongest examples)")
        }
        self.spec = spec
        attack = try spec.attack.makeAttack(epsilon: spec.epsilon, purpose: .training)
        crossEntropy = try CrossEntropyObjective(labelSmoothing: spec.labelSmoothing)
    }

    public var description: String {
        "adversarial training: \(attack)" + (spec.mix < 1 ? ", mix \(spec.mix)" : "")
    }

    public var record: String { ObjectiveSpec.adversarial(spec).json }

    public func beginStep(_ step: Int, stepsPerEpoch: Int, batchRows: Int) {
        self.batchRows = batchRows
    }

    public func prepare(network: Sequential, shards: Int, rows: Int, features: Int) {
        workspaces = (0..<shards).map { _ in attack.makeAnyWorkspace(rows: rows, features: features) }
        outputs = (0..<shards).map { _ in FloatBuffer(count: rows * features) }
    }

    public func lossAndGradients(_ batch: MatrixRef, labels: UnsafePointer<Int>, network: Sequential, shard: Int,
                                 gradientScale: Float, predictions: UnsafeMutablePointer<Int>,
                                 generator: inout RandomGenerator) throws -> Double {
        try replaceWithAdversarial(batch, labels: labels, network: network, shard: shard, generator: &generator)
        return try crossEntropy.lossAndGradients(batch, labels: labels, network: network, shard: shard, gradientScale: gradientScale,
                                                 predictions: predictions, generator: &generator)
    }

    /// Overwrites this shard's part of the batch's first ⌈mix·B⌉ rows with adversarial examples: the
    /// same rows of the batch whatever the number of shards (a shard holds the batch's rows
    /// `WorkerPool.shardRange(B, part: shard, parts: shards)`).
    func replaceWithAdversarial(_ batch: MatrixRef, labels: UnsafePointer<Int>, network: Sequential, shard: Int,
                                generator: inout RandomGenerator) throws {
        precondition(shard < workspaces.count, "prepare(network:shards:rows:features:) was not called for shard \(shard)")
        let rows = max(batchRows, batch.rows)  // a caller that never began a step gives one shard's rows
        let total = Int((spec.mix * Float(rows)).rounded(.up))
        let first = batchRows > 0 ? WorkerPool.shardRange(batchRows, part: shard, parts: workspaces.count).lowerBound : 0
        let count = min(max(total - first, 0), batch.rows)
        guard count > 0 else { return }
        let clean = batch.rows(0..<count)
        let adversarial = outputs[shard].matrix(rows: count, columns: batch.columns)
        try attack.perturb(clean, labels: labels, targets: nil, into: adversarial, classifier: network, shard: shard,
                           anyWorkspace: workspaces[shard], generator: &generator)
        clean.copy(from: adversarial)
    }
}

import Attacks
import NeuralNet
import TensorCore

/// Adversarial training as a batch augmentation: before each step, part or all of the batch is
/// replaced by adversarial examples crafted against the current weights (in evaluation mode).
///
/// - FGSM training (Goodfellow, Shlens & Szegedy, 2015): a fraction `mix` of each batch (0.5 in the
///   paper's α = 0.5 objective) is replaced by FGSM examples.
/// - PGD training (Madry et al., 2018): the whole batch is replaced by PGD examples with a random
///   start, k steps of size α, keeping each input's strongest iterate.
public final class AdversarialTraining: BatchAugmentation {
    public let attack: any Attack
    /// Fraction of each batch replaced by adversarial examples, in (0, 1].
    public let mix: Float
    private var workspaces: [AttackWorkspace] = []
    private var outputs: [FloatBuffer] = []

    /// - Throws: `AttackError.invalidParameter` if `mix` is outside (0, 1].
    public init(attack: any Attack, mix: Float = 1) throws {
        guard mix > 0 && mix <= 1 else {
            throw AttackError.invalidParameter(name: "adversarial mix", value: "\(mix)", requirement: "must be in (0, 1]")
        }
        self.attack = attack
        self.mix = mix
    }

    /// FGSM training with a clean/adversarial mix.
    public static func fgsm(norm: Norm = .linf, epsilon: Float, mix: Float = 0.5) throws -> AdversarialTraining {
        try AdversarialTraining(attack: FGSM(norm: norm, epsilon: epsilon), mix: mix)
    }

    /// PGD training: every example adversarial, random start, strongest iterate.
    public static func pgd(norm: Norm = .linf, epsilon: Float, steps: Int, stepSize: Float?) throws -> AdversarialTraining {
        try AdversarialTraining(attack: PGD(norm: norm, epsilon: epsilon, stepSize: stepSize, steps: steps,
                                            randomStart: true, stopAtFirstSuccess: false))
    }

    public var description: String {
        "adversarial training: \(attack)" + (mix < 1 ? ", mix \(mix)" : "")
    }

    public func prepare(shards: Int, rows: Int, features: Int) {
        workspaces = (0..<shards).map { _ in AttackWorkspace(rows: rows, features: features) }
        outputs = (0..<shards).map { _ in FloatBuffer(count: rows * features) }
    }

    public func augment(_ batch: MatrixRef, labels: UnsafePointer<Int>, network: Sequential, shard: Int,
                        generator: inout RandomGenerator) throws {
        let count = Int((mix * Float(batch.rows)).rounded(.up))
        guard count > 0 else { return }
        let clean = batch.rows(0..<count)
        let adversarial = outputs[shard].matrix(rows: count, columns: batch.columns)
        try attack.perturb(clean, labels: labels, targets: nil, into: adversarial, classifier: network, shard: shard,
                           workspace: workspaces[shard], generator: &generator)
        clean.copy(from: adversarial)
    }
}

import Attacks
import NeuralNet
import TensorCore

/// Single-step adversarial training at the cost of one extra gradient per example, on whole
/// batches of perturbed inputs:
/// - **FGSM-RS** (Wong, Rice & Kolter, 2020, "Fast is better than free"): δ ~ U(−ε, ε)ᵈ, then
///   δ ← clip_[−ε, ε](δ + α·sign ∇ₓCE), α = 1.25·ε. Prone to catastrophic overfitting at larger ε:
///   run it with the robustness monitor's guard (on by default).
/// - **N-FGSM** (de Jorge et al., 2022, "Make Some Noise"): δ ~ U(−kε, kε)ᵈ with k = 2, then
///   δ ← δ + α·sign ∇ₓCE, α = ε, without clipping to the ε-ball: the stronger noise, not the
///   projection, is what avoids the collapse.
/// x + δ is clipped to [0, 1] in both. The gradient is taken in evaluation mode, as the attacks do,
/// and computed as they do (`AttackLoss.crossEntropy`): the label's ∂CE/∂z_y as −Σ_{j≠y} p_j, since
/// p_y − 1 rounds to 0 in Float32 on a confident example and would flip the step's sign on some pixels.
///
/// `@unchecked Sendable`: the per-shard buffers are set in `prepare`, before shards run; a shard
/// job touches only its own.
public final class FastAdversarialObjective: TrainingObjective, @unchecked Sendable {
    public let spec: FastAdversarialSpec
    private let crossEntropy: CrossEntropyObjective
    private var perturbed: [FloatBuffer] = []
    private var losses: [FloatBuffer] = []

    /// - Throws: `NeuralNetError.invalidHyperparameter` naming a bad value.
    public init(_ spec: FastAdversarialSpec) throws {
        guard spec.epsilon > 0 && spec.epsilon <= 1 else {
            throw NeuralNetError.invalidHyperparameter(name: "\(spec.method.rawValue) ε", value: "\(spec.epsilon)", requirement: "must be in (0, 1]")
        }
        guard spec.stepSize > 0 && spec.stepSize.isFinite, spec.noise >= 0 && spec.noise.isFinite else {
            throw NeuralNetError.invalidHyperparameter(name: "\(spec.method.rawValue) step size / noise", value: "\(spec.stepSize) / \(spec.noise)",
                                                       requirement: "must be a positive step and a noise multiple ≥ 0")
        }
        self.spec = spec
        crossEntropy = try CrossEntropyObjective()
    }

    public var description: String {
        "\(spec.method.displayName) adversarial training (ε = \(spec.epsilon), α = \(spec.stepSize), noise U(±\(spec.noise)ε))"
    }

    public var record: String { ObjectiveSpec.fastAdversarial(spec).json }

    public func prepare(network: Sequential, shards: Int, rows: Int, features: Int) {
        perturbed = (0..<shards).map { _ in FloatBuffer(count: rows * features) }
        losses = (0..<shards).map { _ in FloatBuffer(count: rows) }
    }

    public func lossAndGradients(_ batch: MatrixRef, labels: UnsafePointer<Int>, network: Sequential, shard: Int,
                                 gradientScale: Float, predictions: UnsafeMutablePointer<Int>,
                                 generator: inout RandomGenerator) throws -> Double {
        let rows = batch.rows, features = batch.columns
        let x = perturbed[shard].matrix(rows: rows, columns: features)
        let noise = spec.noise * spec.epsilon
        for e in 0..<(rows * features) {
            let clean = batch.base[e]
            x.base[e] = min(max(clean + generator.nextFloat(in: -noise, noise), 0), 1)
        }
        let logits = network.logits(x, shard: shard)
        AttackLoss.crossEntropy.evaluate(logits: logits, labels: labels, targets: nil, objective: losses[shard].pointer,
                                         gradient: network.logitsGradient(shard: shard))
        let gradient = network.inputGradient(shard: shard)
        let clipToBall = spec.method == .fgsmRS
        for e in 0..<(rows * features) {
            let clean = batch.base[e], g = gradient.base[e]
            var value = x.base[e] + (g > 0 ? spec.stepSize : (g < 0 ? -spec.stepSize : 0))
            if clipToBall { value = min(max(value, clean - spec.epsilon), clean + spec.epsilon) }
            batch.base[e] = min(max(value, 0), 1)
        }
        return try crossEntropy.lossAndGradients(batch, labels: labels, network: network, shard: shard, gradientScale: gradientScale,
                                                 predictions: predictions, generator: &generator)
    }
}

/// FGSM-RS or N-FGSM training: ε, the step α and the noise's half-width as a multiple of ε.
public struct FastAdversarialSpec: Equatable, Sendable {
    public enum Method: String, Sendable, CaseIterable {
        case fgsmRS = "fgsm-rs"
        case nFGSM = "n-fgsm"

        public var displayName: String { self == .fgsmRS ? "FGSM-RS" : "N-FGSM" }
    }

    public var method: Method
    public var epsilon: Float
    public var stepSize: Float
    public var noise: Float

    /// Defaults from the papers: FGSM-RS α = 1.25ε, noise ±ε; N-FGSM α = ε, noise ±2ε.
    public init(method: Method, epsilon: Float = AdversarialTrainingSpec.defaultEpsilon, stepSize: Float? = nil, noise: Float? = nil) {
        self.method = method
        self.epsilon = epsilon
        self.stepSize = stepSize ?? (method == .fgsmRS ? 1.25 * epsilon : epsilon)
        self.noise = noise ?? (method == .fgsmRS ? 1 : 2)
    }
}

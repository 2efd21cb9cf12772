import NeuralNet
import TensorCore

/// Fast gradient sign method (Goodfellow, Shlens & Szegedy, 2015, "Explaining and Harnessing
/// Adversarial Examples"), and for L2 its normalised-gradient form, the fast gradient method
/// (Miyato et al., 2017):
/// ```
/// L∞: x′ = clamp(x + ε·sign(∇ₓJ), 0, 1)
/// L2: x′ = clamp(x + ε·∇ₓJ/‖∇ₓJ‖₂, 0, 1)
/// ```
/// J is the attack loss (`crossEntropy` by default) for the reference label, or its negation toward
/// the target when targeted. Inputs must lie in [0, 1].
///
/// - Parameters:
///   - norm: `.linf` (default) or `.l2`.
///   - epsilon: the perturbation budget ε > 0.
///   - loss: the objective (default cross-entropy).
public struct FGSM: Attack {
    public let norm: Norm
    public let epsilon: Float
    public let loss: AttackLoss

    /// - Throws: `AttackError.invalidParameter` if ε is not a positive finite number.
    public init(norm: Norm = .linf, epsilon: Float, loss: AttackLoss = .crossEntropy) throws {
        try require(epsilon > 0 && epsilon.isFinite, "epsilon", epsilon, "must be a positive number")
        self.norm = norm
        self.epsilon = epsilon
        self.loss = loss
    }

    public var description: String { "FGSM(\(norm.rawValue), ε=\(epsilon), loss=\(loss.rawValue))" }

    /// The attack's settings in an `AttackSpec` (all but ε): `{"type": "fgsm", "norm": …, "loss": …}`.
    public struct Parameters: Codable, Equatable, Sendable {
        public var norm: Norm
        public var loss: AttackLoss

        public init(norm: Norm = .linf, loss: AttackLoss = .crossEntropy) {
            self.norm = norm
            self.loss = loss
        }

        static let keys: Set<String> = ["norm", "loss"]

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            norm = try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .linf
            loss = try c.decodeIfPresent(AttackLoss.self, forKey: .loss) ?? .crossEntropy
        }
    }

    /// Scratch of one shard: objective values and predictions at the clean input, and the results.
    public final class Workspace: AttackWorkspace {
        public let capacity: Int
        public let features: Int
        public let results: AttackRowResults
        let objective: FloatBuffer                    // (rows)
        let predictions: UnsafeMutablePointer<Int>    // (rows)

        init(rows: Int, features: Int) {
            capacity = rows
            self.features = features
            results = AttackRowResults(capacity: rows)
            objective = FloatBuffer(count: rows)
            predictions = allocateFilled(rows, with: 0)
        }

        deinit { predictions.deallocate() }
    }

    public func makeWorkspace(rows: Int, features: Int) -> Workspace { Workspace(rows: rows, features: features) }

    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                        workspace ws: Workspace, generator: inout RandomGenerator) throws {
        try checkShapes(clean, adversarial, workspace: ws, classifier: classifier)
        guard clean.rows > 0 else { return }
        let gradient = classifier.attackObjective(clean, loss: loss, labels: labels, targets: targets, shard: shard,
                                                  objective: ws.objective.pointer, predictions: ws.predictions,
                                                  withGradient: true)!
        adversarial.copy(from: clean)
        ball.step(adversarial, clean: clean, gradient: gradient, stepSize: epsilon)
        try ball.verify(adversarial, clean: clean, results: ws.results)
    }
}

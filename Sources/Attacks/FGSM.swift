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

    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any Classifier, shard: Int,
                        workspace: AttackWorkspace, generator: inout RandomGenerator) throws {
        guard clean.rows > 0 else { return }
        let gradient = objectiveGradient(clean, labels: labels, targets: targets, classifier: classifier,
                                          shard: shard, workspace: workspace)!
        adversarial.copy(from: clean)
        step(adversarial, clean: clean, gradient: gradient, stepSize: epsilon)
        try verify(adversarial, clean: clean, workspace: workspace)
        Kernels.argmaxRows(classifier.logits(adversarial, shard: shard), into: workspace.resultPredictions)
    }
}

import Foundation
import NeuralNet
import TensorCore

/// TRADES (Zhang et al. 2019, "Theoretically Principled Trade-off between Robustness and
/// Accuracy"): the clean cross-entropy plus β times the KL divergence between the predictions on
/// the clean input and on an input of the ε-ball chosen to maximise it.
/// ```
/// x' = argmax_{‖x' − x‖∞ ≤ ε} KL(p(x) ‖ p(x'))   (PGD: start at x + 0.001·N(0, 1), `steps` signed steps of α)
/// L  = (1/B) Σᵢ [ CE(f(xᵢ), yᵢ) + β · KL(p(xᵢ) ‖ p(x'ᵢ)) ]
/// ```
/// The inner maximisation runs in evaluation mode and starts outside [0, 1] where the noise says so
/// (each step then clips to the ball and to [0, 1]); the loss is differentiated through both
/// predictions: all as in the authors' code. q − p, the KL's gradient, is formed without
/// cancellation: for the most likely class as −Σ_{j≠c}(q_j − p_j). Clean and adversarial rows go through the network as one
/// stacked batch (one forward and one backward pass).
///
/// `@unchecked Sendable`: the per-shard buffers are set in `prepare`, before shards run; a shard
/// job touches only its own.
public final class TRADESObjective: TrainingObjective, @unchecked Sendable {
    public let spec: TRADESSpec
    private var buffers: [Buffers] = []

    final class Buffers {
        let stacked: FloatBuffer      // (2·rows, features): clean rows, then adversarial rows
        let noise: FloatBuffer        // (rows, features)
        let cleanLogProbabilities: FloatBuffer  // (rows, classes)
        let losses: FloatBuffer       // (rows)
        let predictions: UnsafeMutablePointer<Int>

        init(rows: Int, features: Int, classes: Int) {
            stacked = FloatBuffer(count: 2 * rows * features)
            noise = FloatBuffer(count: rows * features)
            cleanLogProbabilities = FloatBuffer(count: rows * classes)
            losses = FloatBuffer(count: rows)
            predictions = .allocate(capacity: rows)
            predictions.initialize(repeating: 0, count: rows)
        }

        deinit { predictions.deallocate() }
    }

    /// - Throws: `NeuralNetError.invalidHyperparameter` naming a bad value.
    public init(_ spec: TRADESSpec) throws {
        func check(_ condition: Bool, _ name: String, _ value: some CustomStringConvertible, _ requirement: String) throws {
            guard condition else { throw NeuralNetError.invalidHyperparameter(name: name, value: "\(value)", requirement: requirement) }
        }
        try check(spec.epsilon > 0 && spec.epsilon <= 1, "TRADES ε", spec.epsilon, "must be in (0, 1]")
        try check(spec.beta >= 0 && spec.beta.isFinite, "TRADES β", spec.beta, "must be a finite number ≥ 0")
        try check((1...1000).contains(spec.steps), "TRADES steps", spec.steps, "must be between 1 and 1000")
        try check(spec.stepSize > 0 && spec.stepSize.isFinite, "TRADES step size", spec.stepSize, "must be positive")
        self.spec = spec
    }

    public var description: String {
        "TRADES (β = \(spec.beta), ε = \(spec.epsilon), \(spec.steps) steps of \(spec.stepSize))"
    }

    public var record: String { ObjectiveSpec.trades(spec).json }

    public func prepare(network: Sequential, shards: Int, rows: Int, features: Int) {
        // Room for the stacked clean and adversarial rows.
        network.reserve(rows: 2 * rows, shards: shards, parameterGradients: true)
        buffers = (0..<shards).map { _ in Buffers(rows: rows, features: features, classes: network.classCount) }
    }

    public func lossAndGradients(_ batch: MatrixRef, labels: UnsafePointer<Int>, network: Sequential, shard: Int,
                                 gradientScale: Float, predictions: UnsafeMutablePointer<Int>,
                                 generator: inout RandomGenerator) throws -> Double {
        let b = buffers[shard]
        let rows = batch.rows, features = batch.columns, classes = network.classCount
        let clean = b.stacked.matrix(rows: rows, columns: features)
        let adversarial = b.stacked.matrix(rows: rows, columns: features, offset: rows * features)
        clean.copy(from: batch)
        // p(x) in evaluation mode, for the inner maximisation.
        let cleanLog = b.cleanLogProbabilities.matrix(rows: rows, columns: classes)
        Self.logSoftmax(network.logits(clean, shard: shard), into: cleanLog)
        for e in 0..<(rows * features) {
            let x = clean.base[e]
            adversarial.base[e] = x + 0.001 * generator.nextGaussian()
        }
        for _ in 0..<spec.steps {
            let logits = network.logits(adversarial, shard: shard)
            let gradient = network.logitsGradient(shard: shard)
            // ∂KL(p‖q)/∂z' = q − p.
            Self.logSoftmax(logits, into: gradient)
            for i in 0..<rows { Self.probabilityDifference(logQ: gradient.row(i), logP: cleanLog.row(i), classes: classes, scale: 1) }
            let inputGradient = network.inputGradient(shard: shard)
            for e in 0..<(rows * features) {
                let x = clean.base[e], g = inputGradient.base[e]
                let stepped = adversarial.base[e] + (g > 0 ? spec.stepSize : (g < 0 ? -spec.stepSize : 0))
                adversarial.base[e] = min(max(stepped, max(x - spec.epsilon, 0)), min(x + spec.epsilon, 1))
            }
        }
        // The loss on the stacked batch, in training mode.
        let stacked = b.stacked.matrix(rows: 2 * rows, columns: features)
        let logits = network.forward(stacked, mode: .training, shard: shard)
        let gradient = network.logitsGradient(shard: shard)
        let loss = Self.lossAndLogitsGradient(logits: logits, labels: labels, beta: spec.beta, gradientScale: gradientScale,
                                              gradient: gradient, scratch: cleanLog)
        Kernels.argmaxRows(logits.rows(0..<rows), into: predictions)
        network.backward(parameterGradients: .overwrite, computeInputGradient: false, shard: shard)
        return loss
    }

    /// Replaces the log-probabilities `logQ` by `scale`·(q − p). Both sum to 1, so for the class c
    /// most likely under p the difference is −Σ_{j≠c}(q_j − p_j): exp(log q_c) − exp(log p_c) would
    /// round to 0 when both are near 1.
    static func probabilityDifference(logQ: UnsafeMutablePointer<Float>, logP: UnsafeMutablePointer<Float>, classes: Int, scale: Float) {
        var top = 0
        for j in 1..<classes where logP[j] > logP[top] { top = j }
        var others: Float = 0
        for j in 0..<classes where j != top {
            logQ[j] = exp(logQ[j]) - exp(logP[j])
            others += logQ[j]
        }
        logQ[top] = -others
        for j in 0..<classes { logQ[j] *= scale }
    }

    /// Σᵢ CE(zᵢ, yᵢ) + β·KL(softmax zᵢ ‖ softmax z'ᵢ) for `logits` = [z; z'] (2·rows × classes), and its
    /// gradient times `gradientScale` into `gradient` (same shape):
    /// ∂/∂z = p − e_y + β·p⊙(a − ⟨p, a⟩), ∂/∂z' = β·(q − p), with a = log p − log q.
    /// `scratch` (rows × classes) is overwritten.
    static func lossAndLogitsGradient(logits: MatrixRef, labels: UnsafePointer<Int>, beta: Float, gradientScale: Float,
                                      gradient: MatrixRef, scratch: MatrixRef) -> Double {
        let rows = logits.rows / 2, classes = logits.columns
        let logP = scratch
        logSoftmax(logits.rows(0..<rows), into: logP)
        let logQ = gradient.rows(rows..<(2 * rows))  // used as scratch before it receives ∂/∂z'
        logSoftmax(logits.rows(rows..<(2 * rows)), into: logQ)
        var total = 0.0
        for i in 0..<rows {
            let lp = logP.row(i), lq = logQ.row(i), gClean = gradient.row(i), y = labels[i]
            var kl: Float = 0
            for j in 0..<classes { kl += exp(lp[j]) * (lp[j] - lq[j]) }
            total += Double(-lp[y]) + Double(beta) * Double(kl)
            for j in 0..<classes {
                let p = exp(lp[j])
                gClean[j] = gradientScale * (p - (j == y ? 1 : 0) + beta * p * ((lp[j] - lq[j]) - kl))
            }
            // Overwrites log q only after reading it.
            probabilityDifference(logQ: lq, logP: lp, classes: classes, scale: gradientScale * beta)
        }
        return total
    }

    /// Row-wise log-softmax.
    static func logSoftmax(_ logits: MatrixRef, into output: MatrixRef) {
        for i in 0..<logits.rows {
            let z = logits.row(i), o = output.row(i)
            var top = -Float.infinity
            for j in 0..<logits.columns { top = max(top, z[j]) }
            var sum: Float = 0
            for j in 0..<logits.columns { sum += exp(z[j] - top) }
            let logSum = top + log(sum)
            for j in 0..<logits.columns { o[j] = z[j] - logSum }
        }
    }
}

/// TRADES' settings: β weights the KL term; the inner maximisation takes `steps` signed steps of
/// `stepSize` in the L∞ ball of radius ε (the paper's MNIST setting: ε 0.1 here, 10 steps of ε/4).
public struct TRADESSpec: Equatable, Sendable {
    public static let defaultBeta: Float = 6

    public var epsilon: Float
    public var beta: Float
    public var steps: Int
    public var stepSize: Float

    public init(epsilon: Float = AdversarialTrainingSpec.defaultEpsilon, beta: Float = TRADESSpec.defaultBeta, steps: Int = 10,
                stepSize: Float? = nil) {
        self.epsilon = epsilon
        self.beta = beta
        self.steps = steps
        self.stepSize = stepSize ?? epsilon / 4
    }
}

import Foundation
import TensorCore

/// Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019, decoupled weight decay), with
/// PyTorch's `torch.optim.Adam` / `AdamW` update:
/// ```
/// g ← ∇θ + λ·θ                      (Adam: L2 penalty)       θ ← θ·(1 − η·λ)   (AdamW: decoupled)
/// m ← β₁·m + (1 − β₁)·g
/// v ← β₂·v + (1 − β₂)·g²
/// θ ← θ − η · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
/// ```
/// Defaults: β₁ = 0.9, β₂ = 0.999, ε = 1e-8, λ = 0 (Adam) or 0.01 (AdamW, as in PyTorch).
public final class Adam: Optimizer, @unchecked Sendable {  // see `Optimizer` on concurrency
    public var learningRate: Float
    public let beta1: Float
    public let beta2: Float
    public let epsilon: Float
    public let weightDecay: Float
    public let decoupledWeightDecay: Bool
    public var stepCount = 0
    let firstMoment: FloatBuffer
    let secondMoment: FloatBuffer

    /// - Throws: `NeuralNetError.invalidHyperparameter` if η ≤ 0, β ∉ [0, 1), ε ≤ 0 or λ < 0.
    public init(parameterCount: Int, learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
                epsilon: Float = 1e-8, weightDecay: Float = 0, decoupledWeightDecay: Bool = false) throws {
        try require(learningRate > 0 && learningRate.isFinite, "learning rate", learningRate, "must be a positive finite number")
        try require(beta1 >= 0 && beta1 < 1, "beta1", beta1, "must be in [0, 1)")
        try require(beta2 >= 0 && beta2 < 1, "beta2", beta2, "must be in [0, 1)")
        try require(epsilon > 0 && epsilon.isFinite, "epsilon", epsilon, "must be positive")
        try require(weightDecay >= 0 && weightDecay.isFinite, "weight decay", weightDecay, "must be ≥ 0")
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        firstMoment = FloatBuffer(count: parameterCount)
        secondMoment = FloatBuffer(count: parameterCount)
    }

    public var stateBuffers: [(name: String, buffer: FloatBuffer)] {
        [("exp_avg", firstMoment), ("exp_avg_sq", secondMoment)]
    }

    public func update(parameters: FloatBuffer, gradients: FloatBuffer, range: Range<Int>, step: Int) {
        let t = Double(step)
        let correction1 = Float(1 - Foundation.pow(Double(beta1), t))
        let correction2 = Float(1 - Foundation.pow(Double(beta2), t))
        let stepSize = learningRate / correction1
        let inverseRootCorrection2 = 1 / correction2.squareRoot()
        let o = range.lowerBound
        Kernels.adamUpdate(
            parameters: parameters.pointer + o, gradients: gradients.pointer + o,
            firstMoment: firstMoment.pointer + o, secondMoment: secondMoment.pointer + o, count: range.count,
            stepSize: stepSize, beta1: beta1, beta2: beta2, epsilon: epsilon,
            inverseRootCorrection2: inverseRootCorrection2,
            l2: decoupledWeightDecay ? 0 : weightDecay,
            shrink: decoupledWeightDecay ? 1 - learningRate * weightDecay : 1)
    }
}

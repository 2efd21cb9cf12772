import TensorCore

/// Stochastic gradient descent with momentum (Polyak, 1964), optional Nesterov momentum (Sutskever et
/// al., 2013) and L2 weight decay, with PyTorch's `torch.optim.SGD` update:
/// ```
/// g ← ∇θ + λ·θ
/// v ← μ·v + g                       (v starts at 0, so the first v is g)
/// θ ← θ − η·(g + μ·v)   Nesterov
/// θ ← θ − η·v           otherwise
/// ```
/// Defaults: momentum μ = 0, Nesterov off, weight decay λ = 0.
public final class SGD: Optimizer, @unchecked Sendable {  // see `Optimizer` on concurrency
    public var learningRate: Float
    public let momentum: Float
    public let nesterov: Bool
    public let weightDecay: Float
    public var stepCount = 0
    let velocity: FloatBuffer

    /// - Throws: `NeuralNetError.invalidHyperparameter` if η ≤ 0, μ ∉ [0, 1), λ < 0, or Nesterov without momentum.
    public init(parameterCount: Int, learningRate: Float, momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) throws {
        try require(learningRate > 0 && learningRate.isFinite, "learning rate", learningRate, "must be a positive finite number")
        try require(momentum >= 0 && momentum < 1, "momentum", momentum, "must be in [0, 1)")
        try require(!nesterov || momentum > 0, "momentum", momentum, "Nesterov momentum needs momentum > 0")
        try require(weightDecay >= 0 && weightDecay.isFinite, "weight decay", weightDecay, "must be ≥ 0")
        self.learningRate = learningRate
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        velocity = FloatBuffer(count: momentum > 0 ? parameterCount : 0)
    }

    public var stateBuffers: [(name: String, buffer: FloatBuffer)] {
        momentum > 0 ? [("momentum_buffer", velocity)] : []
    }

    public func update(parameters: FloatBuffer, gradients: FloatBuffer, range: Range<Int>, step: Int) {
        let o = range.lowerBound
        Kernels.sgdUpdate(
            parameters: parameters.pointer + o, gradients: gradients.pointer + o,
            velocity: velocity.pointer + (momentum > 0 ? o : 0), count: range.count,
            learningRate: learningRate, momentum: momentum, nesterov: nesterov, weightDecay: weightDecay)
    }
}

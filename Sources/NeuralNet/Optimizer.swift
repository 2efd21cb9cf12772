import TensorCore

/// Updates parameters from gradients. Optimizers own their state (moments) in flat buffers the
/// size of the parameter buffer, so a step allocates nothing.
///
/// Concurrency: `update` may run concurrently on disjoint ranges (each call touches only its range
/// of the state buffers); `learningRate` and `stepCount` are set only between such calls.
public protocol Optimizer: AnyObject, Sendable {
    /// Learning rate of the next step (schedules set it before each step).
    var learningRate: Float { get set }
    /// Number of steps taken (Adam's bias correction uses it; checkpoints save it).
    var stepCount: Int { get set }
    /// Named state buffers for checkpoints, e.g. Adam's `exp_avg` and `exp_avg_sq`.
    var stateBuffers: [(name: String, buffer: FloatBuffer)] { get }
    /// Updates `parameters[range]` from `gradients[range]` as step number `step` (1-based) does.
    /// Disjoint ranges may be updated concurrently; `stepCount` is not changed.
    func update(parameters: FloatBuffer, gradients: FloatBuffer, range: Range<Int>, step: Int)
}

extension Optimizer {
    /// One whole update: `parameters ← parameters − update(gradients)`, counting the step.
    public func step(parameters: FloatBuffer, gradients: FloatBuffer) {
        stepCount += 1
        update(parameters: parameters, gradients: gradients, range: 0..<parameters.count, step: stepCount)
    }
}

/// Which optimizer to build, with its hyperparameters (serialisable for model cards and checkpoints).
public enum OptimizerConfiguration: Equatable, Sendable {
    case sgd(learningRate: Float, momentum: Float, nesterov: Bool, weightDecay: Float)
    case adam(learningRate: Float, beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float, decoupled: Bool)

    public var learningRate: Float {
        switch self {
        case .sgd(let lr, _, _, _), .adam(let lr, _, _, _, _, _): return lr
        }
    }

    public var name: String {
        switch self {
        case .sgd: return "sgd"
        case .adam(_, _, _, _, _, let decoupled): return decoupled ? "adamw" : "adam"
        }
    }

    /// - Throws: `NeuralNetError.invalidHyperparameter` naming a bad value.
    public func makeOptimizer(parameterCount: Int) throws -> any Optimizer {
        switch self {
        case .sgd(let lr, let momentum, let nesterov, let weightDecay):
            return try SGD(parameterCount: parameterCount, learningRate: lr, momentum: momentum,
                           nesterov: nesterov, weightDecay: weightDecay)
        case .adam(let lr, let beta1, let beta2, let epsilon, let weightDecay, let decoupled):
            return try Adam(parameterCount: parameterCount, learningRate: lr, beta1: beta1, beta2: beta2,
                            epsilon: epsilon, weightDecay: weightDecay, decoupledWeightDecay: decoupled)
        }
    }
}

/// Scales `gradients` so that their global L2 norm is at most `maxNorm` (Pascanu et al., 2013).
/// - Returns: the norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradients: FloatBuffer, maxNorm: Float) -> Float {
    let norm = BLAS.norm2(UnsafeBufferPointer(gradients.buffer))
    if norm > maxNorm, norm.isFinite {
        Kernels.scale(gradients.buffer, by: maxNorm / norm)
    }
    return norm
}

import TensorCore

/// The loss-and-gradient part of a training step: what the network minimises on a batch. The
/// trainer owns everything else (shuffling, sharding, the gradient reduction, clipping, the
/// optimizer and the epoch loop), so a new objective is one type and never touches the loop.
///
/// Cross-entropy (`CrossEntropyObjective`) and adversarial training (in the Training target) are
/// objectives; so are TRADES (a KL term on adversarial examples), DP-SGD (per-example clipping in
/// `lossAndGradients`, noise in `finishGradients`) and bound-based certified training.
///
/// Shards of one batch run concurrently: an objective uses only the given shard of the network and
/// its own per-shard scratch (allocated in `prepare`).
public protocol TrainingObjective: AnyObject, Sendable, CustomStringConvertible {
    /// The canonical record of this objective's settings (JSON): two objectives with the same
    /// record train identically. Checkpoints store it, and a resume with another one is refused.
    var record: String { get }

    /// Called once before training, before shards run concurrently: allocate per-shard scratch for
    /// `shards` shards of up to `rows` examples with `features` inputs.
    func prepare(network: Sequential, shards: Int, rows: Int, features: Int)

    /// The shard's part of one training step.
    ///
    /// - Parameters:
    ///   - batch: (rows, features), this shard's examples; the objective may overwrite it.
    ///   - labels: `batch.rows` true labels.
    ///   - shard: the network shard to use.
    ///   - gradientScale: the factor of each example's loss in the step's objective (1/batch size,
    ///     for a mean over the whole batch).
    ///   - predictions: receives the network's prediction for each row (for training accuracy).
    ///   - generator: the objective's random stream for this epoch and shard (seeded, so a resumed
    ///     run draws the same numbers).
    /// - Returns: the sum of the shard's per-example losses (unscaled).
    /// - Postcondition: the shard's parameter gradients hold ∂(gradientScale · Σ loss)/∂θ
    ///   (overwritten, not accumulated).
    func lossAndGradients(_ batch: MatrixRef, labels: UnsafePointer<Int>, network: Sequential, shard: Int,
                          gradientScale: Float, predictions: UnsafeMutablePointer<Int>,
                          generator: inout RandomGenerator) throws -> Double

    /// Called before every step, before its shards run, with the step's index from the start of
    /// training (0-based, counting earlier epochs of a resumed run), the steps per epoch and the
    /// batch's rows (split into shards by `WorkerPool.shardRange`): objectives with a schedule
    /// (certified training's ε ramp) or a per-batch choice (adversarial training's mix) set it
    /// here. The default does nothing.
    func beginStep(_ step: Int, stepsPerEpoch: Int, batchRows: Int)

    /// Whether `finishGradients` changes the summed gradients (false by default, which lets the
    /// trainer fuse the reduction with the update).
    var modifiesReducedGradients: Bool { get }

    /// Called once per step after the shards' gradients are summed into `gradients`, before
    /// clipping and the optimizer update (DP-SGD adds its noise here), when
    /// `modifiesReducedGradients` is true. The default does nothing.
    func finishGradients(_ gradients: FloatBuffer, batchRows: Int, generator: inout RandomGenerator)
}

extension TrainingObjective {
    public func prepare(network: Sequential, shards: Int, rows: Int, features: Int) {}
    public func beginStep(_ step: Int, stepsPerEpoch: Int, batchRows: Int) {}
    public var modifiesReducedGradients: Bool { false }
    public func finishGradients(_ gradients: FloatBuffer, batchRows: Int, generator: inout RandomGenerator) {}
}

/// Softmax cross-entropy on the batch as given, with optional label smoothing (Szegedy et al.,
/// 2016): the standard objective.
/// ```
/// L = (1/B) Σᵢ CE_ε(f(xᵢ), yᵢ)
/// ```
public final class CrossEntropyObjective: TrainingObjective {
    public let labelSmoothing: Float

    /// - Throws: `NeuralNetError.invalidHyperparameter` unless 0 ≤ ε < 1.
    public init(labelSmoothing: Float = 0) throws {
        try require(labelSmoothing >= 0 && labelSmoothing < 1, "label smoothing", labelSmoothing, "must be in [0, 1)")
        self.labelSmoothing = labelSmoothing
    }

    public var description: String {
        labelSmoothing == 0 ? "cross-entropy" : "cross-entropy with label smoothing \(labelSmoothing)"
    }

    public var record: String { #"{"label_smoothing":\#(labelSmoothing),"type":"cross_entropy"}"# }

    public func lossAndGradients(_ batch: MatrixRef, labels: UnsafePointer<Int>, network: Sequential, shard: Int,
                                 gradientScale: Float, predictions: UnsafeMutablePointer<Int>,
                                 generator: inout RandomGenerator) throws -> Double {
        let logits = network.forward(batch, mode: .training, shard: shard)
        let loss = SoftmaxCrossEntropy.lossAndGradient(
            logits: logits, labels: labels, labelSmoothing: labelSmoothing,
            gradientScale: gradientScale, gradient: network.logitsGradient(shard: shard))
        Kernels.argmaxRows(logits, into: predictions)
        network.backward(parameterGradients: .overwrite, computeInputGradient: false, shard: shard)
        return loss
    }
}

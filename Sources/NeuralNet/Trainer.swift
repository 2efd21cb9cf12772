import Foundation
import Synchronization
import TensorCore
import _FileSystem

/// Metrics of one training epoch.
public struct EpochMetrics: Codable, Equatable, Sendable {
    public var epoch: Int
    /// Mean training loss over the epoch's batches.
    public var loss: Double
    public var trainAccuracy: Double
    public var validationAccuracy: Double?
    public var seconds: Double
    public var samplesPerSecond: Double
    public var learningRate: Float
    /// Further per-epoch measurements (e.g. robust accuracy during adversarial training).
    public var extra: [String: Double]
    /// Warnings raised for this epoch (e.g. catastrophic overfitting).
    public var warnings: [String]

    public init(epoch: Int, loss: Double, trainAccuracy: Double, validationAccuracy: Double?, seconds: Double,
                samplesPerSecond: Double, learningRate: Float, extra: [String: Double] = [:], warnings: [String] = []) {
        self.epoch = epoch
        self.loss = loss
        self.trainAccuracy = trainAccuracy
        self.validationAccuracy = validationAccuracy
        self.seconds = seconds
        self.samplesPerSecond = samplesPerSecond
        self.learningRate = learningRate
        self.extra = extra
        self.warnings = warnings
    }

    enum CodingKeys: String, CodingKey {
        case epoch, loss, seconds, extra, warnings
        case trainAccuracy = "train_accuracy"
        case validationAccuracy = "val_accuracy"
        case samplesPerSecond = "samples_per_second"
        case learningRate = "learning_rate"
    }
}

/// Changes a training batch in place before the step, e.g. replacing examples by adversarial ones
/// (adversarial training). Called with the network in evaluation mode semantics left to the augmentation.
public protocol BatchAugmentation: AnyObject {
    /// A one-line description stored in the training recipe.
    var description: String { get }
    /// Called once before training with the shard count and the largest shard (rows × features),
    /// so scratch memory is allocated before shards run concurrently.
    func prepare(shards: Int, rows: Int, features: Int)
    /// - Parameters:
    ///   - batch: (rows, features), modified in place.
    ///   - labels: `batch.rows` true labels.
    ///   - shard: which part of the batch this is (the network shard to run on).
    ///   - generator: seeded per epoch and shard, so a resumed run draws the same numbers.
    /// Shards of one batch run concurrently: use only `shard`'s workspace of `network`.
    func augment(_ batch: MatrixRef, labels: UnsafePointer<Int>, network: Sequential, shard: Int, generator: inout RandomGenerator) throws
}

/// Where training stands, for progress displays.
public struct TrainingProgress: Sendable {
    public let epoch: Int
    public let epochs: Int
    public let step: Int
    public let stepsPerEpoch: Int
    public let runningLoss: Double
}

/// Mini-batch training with shuffling, validation, per-epoch checkpoints, resume and a divergence
/// guard.
///
/// Reproducibility: initialisation, the validation split, each epoch's shuffle, dropout masks and
/// augmentation draw from independent streams of the seeded generator (`RandomStream`), keyed by the
/// epoch. A checkpoint after epoch e therefore holds everything needed (weights, optimizer state,
/// step count, metrics) to continue to exactly the weights an uninterrupted run reaches.
public final class Trainer {
    public let recipe: TrainingRecipe
    public let network: Sequential
    public let optimizer: any Optimizer
    public var augmentation: (any BatchAugmentation)?
    /// Called after each epoch's metrics are computed; may add entries to `extra` and `warnings`.
    public var epochObserver: ((inout EpochMetrics, Sequential) -> Void)?
    public var progress: ((TrainingProgress) -> Void)?
    /// Where a checkpoint is written (atomically) after every epoch; nil for none.
    public var checkpointPath: String?
    /// Called after each checkpoint is written (e.g. to record its digest in a manifest).
    public var checkpointWritten: ((String) throws -> Void)?
    public private(set) var history: [EpochMetrics] = []
    /// Epochs finished (including those restored from a checkpoint).
    public var completedEpochs: Int { history.count }

    /// A trainer with a freshly initialised network.
    /// - Throws: `NeuralNetError` if the recipe has an invalid value.
    public init(recipe: TrainingRecipe) throws {
        try recipe.validate()
        self.recipe = recipe
        network = Sequential(spec: try recipe.spec, seed: recipe.seed, scheme: recipe.initialization)
        optimizer = try recipe.optimizer.makeOptimizer(parameterCount: network.parameterCount)
    }

    /// Trains until `recipe.epochs` epochs are complete.
    ///
    /// Each batch is split into `WorkerPool.defaultShardCount` shards that run forward and backward
    /// on the network's pool; their gradients are summed and the optimizer updates the parameters
    /// in parallel parts. The split is fixed, so the weights do not depend on the thread count.
    /// - Throws: `NeuralNetError.diverged` if the loss stops being finite (the last checkpoint is kept).
    @discardableResult
    public func train(on train: LabeledData, validation: LabeledData?) throws -> [EpochMetrics] {
        precondition(train.featureCount == network.inputWidth, "data has \(train.featureCount) features, network \(network.inputWidth)")
        precondition(train.count > 0, "no training examples")
        let batchSize = min(recipe.batchSize, train.count)
        let stepsPerEpoch = (train.count + batchSize - 1) / batchSize
        let totalSteps = stepsPerEpoch * recipe.epochs
        let features = train.featureCount
        let shards = WorkerPool.defaultShardCount
        let pool = network.pool

        network.reserve(rows: (batchSize + shards - 1) / shards, shards: shards)
        augmentation?.prepare(shards: shards, rows: (batchSize + shards - 1) / shards, features: features)
        let shardFailure = Mutex<(any Error)?>(nil)
        let batch = FloatBuffer(count: batchSize * features)
        let labels = UnsafeMutablePointer<Int>.allocate(capacity: batchSize)
        let predictions = UnsafeMutablePointer<Int>.allocate(capacity: batchSize)
        let shardLoss = UnsafeMutablePointer<Double>.allocate(capacity: shards)
        let generators = UnsafeMutablePointer<RandomGenerator>.allocate(capacity: shards)
        defer {
            labels.deallocate(); predictions.deallocate(); shardLoss.deallocate()
            generators.deinitialize(count: shards); generators.deallocate()
        }
        generators.initialize(repeating: RandomGenerator(seed: 0), count: shards)
        var order = Array(0..<train.count)

        while completedEpochs < recipe.epochs {
            let epoch = completedEpochs + 1
            for i in order.indices { order[i] = i }
            var shuffler = RandomGenerator(seed: recipe.seed, stream: .shuffle, index: UInt64(epoch))
            shuffler.shuffle(&order)
            for s in 0..<shards {
                let index = UInt64(epoch) << 8 | UInt64(s)
                network.setDropoutGenerator(RandomGenerator(seed: recipe.seed, stream: .dropout, index: index), shard: s)
                generators[s] = RandomGenerator(seed: recipe.seed, stream: .adversarialTraining, index: index)
            }

            let start = DispatchTime.now().uptimeNanoseconds
            var lossSum = 0.0
            var correct = 0
            var learningRate = recipe.optimizer.learningRate
            // The shard bodies are created once per epoch and read `first` and `rows` for each step,
            // so a step allocates nothing.
            var first = 0
            var rows = 0
            let parameterCount = network.parameterCount
            try order.withUnsafeBufferPointer { order in
            try train.labels.withUnsafeBufferPointer { trainLabels in
            try train.features.withReadOnlyMatrix { source in
                let forwardBackward: (Int) -> Void = { [network, augmentation, recipe] s in
                    let part = WorkerPool.shardRange(rows, part: s, parts: shards)
                    let x = batch.matrix(rows: part.count, columns: features, offset: part.lowerBound * features)
                    let y = labels + part.lowerBound
                    for r in 0..<part.count {
                        let index = order[first + part.lowerBound + r]
                        x.row(r).update(from: source.row(index), count: features)
                        y[r] = trainLabels[index]
                    }
                    do {
                        try augmentation?.augment(x, labels: y, network: network, shard: s, generator: &generators[s])
                    } catch {
                        shardFailure.withLock { $0 = error }
                        return
                    }
                    let logits = network.forward(x, mode: .training, shard: s)
                    shardLoss[s] = SoftmaxCrossEntropy.lossAndGradient(
                        logits: logits, labels: y, labelSmoothing: recipe.labelSmoothing,
                        gradientScale: 1 / Float(rows), gradient: network.logitsGradient(shard: s))
                    Kernels.argmaxRows(logits, into: predictions + part.lowerBound)
                    network.backward(parameterGradients: .overwrite, computeInputGradient: false, shard: s)
                }
                let reduce: (Int) -> Void = { [network] s in
                    network.reduceShardGradients(count: shards, range: WorkerPool.shardRange(parameterCount, part: s, parts: shards, alignment: 16))
                }
                let update: (Int) -> Void = { [network, optimizer] s in
                    optimizer.update(parameters: network.parameters, gradients: network.gradients,
                                     range: WorkerPool.shardRange(parameterCount, part: s, parts: shards, alignment: 16),
                                     step: optimizer.stepCount)
                }
                let reduceAndUpdate: (Int) -> Void = { s in
                    reduce(s)
                    update(s)
                }
                for step in 0..<stepsPerEpoch {
                    first = step * batchSize
                    rows = min(batchSize, train.count - first)
                    pool.run(shards: shards, forwardBackward)
                    if let failure = shardFailure.withLock({ $0 }) { throw failure }
                    var batchLoss = 0.0
                    for s in 0..<shards { batchLoss += shardLoss[s] }
                    guard batchLoss.isFinite else {
                        throw NeuralNetError.diverged(epoch: epoch, step: step + 1, loss: Float(batchLoss / Double(rows)),
                                                      checkpoint: completedEpochs > 0 ? checkpointPath : nil)
                    }
                    lossSum += batchLoss
                    for r in 0..<rows where predictions[r] == labels[r] { correct += 1 }

                    learningRate = recipe.schedule.rate(base: recipe.optimizer.learningRate,
                                                        step: (epoch - 1) * stepsPerEpoch + step,
                                                        stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps)
                    optimizer.learningRate = learningRate
                    optimizer.stepCount += 1
                    if let clipNorm = recipe.clipNorm {
                        pool.run(shards: shards, reduce)
                        clipGradientNorm(network.gradients, maxNorm: clipNorm)
                        pool.run(shards: shards, update)
                    } else {
                        pool.run(shards: shards, reduceAndUpdate)
                    }
                    progress?(TrainingProgress(epoch: epoch, epochs: recipe.epochs, step: step + 1,
                                               stepsPerEpoch: stepsPerEpoch, runningLoss: lossSum / Double(first + rows)))
                }
            }
            }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            guard Kernels.allFinite(UnsafeBufferPointer(network.parameters.buffer)) else {
                throw NeuralNetError.diverged(epoch: epoch, step: stepsPerEpoch, loss: .nan,
                                              checkpoint: completedEpochs > 0 ? checkpointPath : nil)
            }
            var metrics = EpochMetrics(
                epoch: epoch, loss: lossSum / Double(train.count), trainAccuracy: Double(correct) / Double(train.count),
                validationAccuracy: validation.flatMap { $0.count > 0 ? network.accuracy(on: $0) : nil },
                seconds: seconds, samplesPerSecond: Double(train.count) / max(seconds, 1e-9), learningRate: learningRate)
            epochObserver?(&metrics, network)
            history.append(metrics)
            if let checkpointPath {
                try Checkpoint.write(self, to: checkpointPath)
                try checkpointWritten?(checkpointPath)
            }
        }
        return history
    }

    /// Restores weights, optimizer state and history from a checkpoint written by a run with a
    /// compatible recipe.
    /// - Throws: `NeuralNetError.incompatibleCheckpoint` naming the difference.
    public func resume(from path: String, loader: any FileLoading = PlainFileLoader()) throws {
        history = try Checkpoint.restore(self, from: path, loader: loader)
    }
}

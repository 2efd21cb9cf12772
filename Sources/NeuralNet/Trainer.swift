import Foundation
import TensorCore
import _FileSystem

/// Metrics of one training epoch.
public struct EpochMetrics: Codable, Equatable, Sendable {
    public var epoch: Int
    /// Mean training loss over the epoch's examples.
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

/// Where training stands, for progress displays.
public struct TrainingProgress: Sendable {
    public let epoch: Int
    public let epochs: Int
    public let step: Int
    public let stepsPerEpoch: Int
    public let runningLoss: Double
}

/// Mini-batch training: the epoch loop (shuffling, steps, validation, checkpoints, the divergence
/// guard) around a `TrainingStep`, minimising a pluggable `TrainingObjective`.
///
/// Reproducibility: initialisation, each epoch's shuffle, dropout masks and the objective's draws
/// come from independent streams of the seeded generator (`RandomStream`), keyed by the epoch (and
/// shard). A checkpoint after epoch e therefore holds everything needed (weights, optimizer state,
/// step count, metrics) to continue to exactly the weights an uninterrupted run reaches.
public final class Trainer {
    public let configuration: TrainerConfiguration
    public let objective: any TrainingObjective
    public let network: Sequential
    public let optimizer: any Optimizer
    /// Called after each epoch's metrics are computed; may add entries to `extra` and `warnings`.
    public var epochObserver: ((inout EpochMetrics, Sequential) -> Void)?
    public var progress: ((TrainingProgress) -> Void)?
    /// Asked after each epoch (after `epochObserver` and the checkpoint): true ends training early
    /// (a guard that detected catastrophic overfitting, early stopping). The trainer holds it: capture
    /// the trainer weakly in it.
    public var shouldStop: (() -> Bool)?
    /// Where a checkpoint is written (atomically) after every epoch; nil for none.
    public var checkpointPath: String?
    /// Called with a checkpoint's bytes before they replace the file at its path (to announce its
    /// digest in a manifest first, so that a kill between the two leaves a verifiable pair).
    public var checkpointWillBeWritten: ((String, [UInt8]) throws -> Void)?
    /// The checkpoint this run has written, if any (a diverged run names only a file that exists).
    private(set) var writtenCheckpoint: String?
    /// Extra `__metadata__` entries of every checkpoint (e.g. the full recipe, for provenance).
    public var checkpointMetadata: [String: String] = [:]
    /// Called after each checkpoint is written (e.g. to record its digest in a manifest).
    public var checkpointWritten: ((String) throws -> Void)?
    public private(set) var history: [EpochMetrics] = []
    /// Epochs finished (including those restored from a checkpoint).
    public var completedEpochs: Int { history.count }

    /// A trainer with a freshly initialised network.
    /// - Throws: `NeuralNetError` if the configuration has an invalid value.
    public init(configuration: TrainerConfiguration, objective: any TrainingObjective) throws {
        try configuration.validate()
        self.configuration = configuration
        self.objective = objective
        network = Sequential(spec: configuration.architecture, seed: configuration.seed, scheme: configuration.initialization)
        optimizer = try configuration.optimizer.makeOptimizer(parameterCount: network.parameterCount)
    }

    /// Trains until `configuration.epochs` epochs are complete.
    /// - Throws: `NeuralNetError.invalidData` if the data does not fit the network or is empty,
    ///   `NeuralNetError.diverged` if the loss stops being finite (the last checkpoint is kept), or
    ///   what the objective throws.
    @discardableResult
    public func train(on train: LabeledData, validation: LabeledData?) throws -> [EpochMetrics] {
        guard train.featureCount == network.inputWidth else {
            throw NeuralNetError.invalidData("the data has \(train.featureCount) features, the network expects \(network.inputWidth)")
        }
        guard train.count > 0 else {
            throw NeuralNetError.invalidData("there are no training examples (check --limit and --val-split)")
        }
        let batchSize = min(configuration.batchSize, train.count)
        // A resumed optimizer cannot have taken more steps than its finished epochs hold.
        let stepsPerEpoch = (train.count + batchSize - 1) / batchSize
        guard optimizer.stepCount <= completedEpochs * stepsPerEpoch else {
            throw NeuralNetError.invalidData("the resumed optimizer step \(optimizer.stepCount) exceeds the \(completedEpochs) finished epochs × "
                                             + "\(stepsPerEpoch) steps on this data; resume with the data and batch size of the original run")
        }
        let step = TrainingStep(network: network, optimizer: optimizer, objective: objective, clipNorm: configuration.clipNorm,
                                batchSize: batchSize, features: train.featureCount)
        var order = Array(0..<train.count)
        while completedEpochs < configuration.epochs {
            var metrics = try runEpoch(completedEpochs + 1, step: step, data: train, order: &order)
            metrics.validationAccuracy = validation.flatMap { $0.count > 0 ? network.accuracy(on: $0) : nil }
            epochObserver?(&metrics, network)
            history.append(metrics)
            if let checkpointPath {
                try Checkpoint.write(self, to: checkpointPath)
                writtenCheckpoint = checkpointPath
                try checkpointWritten?(checkpointPath)
            }
            if shouldStop?() == true { break }
        }
        return history
    }

    /// One pass over the shuffled training set.
    private func runEpoch(_ epoch: Int, step: TrainingStep, data: LabeledData, order: inout [Int]) throws -> EpochMetrics {
        let seed = configuration.seed
        for i in order.indices { order[i] = i }
        var shuffler = RandomGenerator(seed: seed, stream: .shuffle, index: UInt64(epoch))
        shuffler.shuffle(&order)
        for s in 0..<step.shards {
            let index = UInt64(epoch) << 8 | UInt64(s)
            network.setDropoutGenerator(RandomGenerator(seed: seed, stream: .dropout, index: index), shard: s)
            step.generators.pointer[s] = RandomGenerator(seed: seed, stream: .trainingObjective, index: index)
        }
        var noise = RandomGenerator(seed: seed, stream: .gradientNoise, index: UInt64(epoch))

        let batchSize = step.batchSize
        let stepsPerEpoch = (data.count + batchSize - 1) / batchSize
        let totalSteps = stepsPerEpoch * configuration.epochs
        let baseRate = configuration.optimizer.learningRate
        let start = DispatchTime.now().uptimeNanoseconds
        var lossSum = 0.0
        var correct = 0
        var learningRate = baseRate
        try order.withUnsafeBufferPointer { order in
            try data.labels.withUnsafeBufferPointer { labels in
                try data.features.withReadOnlyMatrix { source in
                    step.setSource(order: order.baseAddress!, features: source, labels: labels.baseAddress!)
                    for index in 0..<stepsPerEpoch {
                        let first = index * batchSize
                        let rows = min(batchSize, data.count - first)
                        learningRate = configuration.schedule.rate(base: baseRate, step: (epoch - 1) * stepsPerEpoch + index,
                                                                   stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps)
                        step.objective.beginStep((epoch - 1) * stepsPerEpoch + index, stepsPerEpoch: stepsPerEpoch, batchRows: rows)
                        let result = try step.run(first: first, rows: rows, learningRate: learningRate, noise: &noise)
                        guard result.loss.isFinite else {
                            throw NeuralNetError.diverged(epoch: epoch, step: index + 1, loss: Float(result.loss / Double(rows)),
                                                          checkpoint: writtenCheckpoint)
                        }
                        lossSum += result.loss
                        correct += result.correct
                        progress?(TrainingProgress(epoch: epoch, epochs: configuration.epochs, step: index + 1,
                                                   stepsPerEpoch: stepsPerEpoch, runningLoss: lossSum / Double(first + rows)))
                    }
                }
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        guard Kernels.allFinite(UnsafeBufferPointer(network.parameters.buffer)) else {
            throw NeuralNetError.diverged(epoch: epoch, step: stepsPerEpoch, loss: .nan,
                                          checkpoint: writtenCheckpoint)
        }
        return EpochMetrics(
            epoch: epoch, loss: lossSum / Double(data.count), trainAccuracy: Double(correct) / Double(data.count),
            validationAccuracy: nil, seconds: seconds, samplesPerSecond: Double(data.count) / max(seconds, 1e-9),
            learningRate: learningRate)
    }

    /// Restores weights, optimizer state and history from a checkpoint written by a run with a
    /// compatible configuration and objective.
    /// - Throws: `NeuralNetError.incompatibleCheckpoint` naming the difference.
    public func resume(from path: String, loader: any FileLoading = PlainFileLoader()) throws {
        history = try Checkpoint.restore(self, from: path, loader: loader)
    }
}

extension RandomStream {
    /// Noise an objective adds to the summed gradients (DP-SGD), per epoch.
    public static let gradientNoise = RandomStream("gradient noise")
}

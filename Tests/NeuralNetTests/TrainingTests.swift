import Foundation
import Testing
import Datasets
import NeuralNet
import TensorCore
import _TestSupport

@Suite("Training")
struct TrainingTests {
    func configuration(epochs: Int, seed: UInt64 = 0, spec: String = "784-64-10", lr: Float = 1e-3,
                       schedule: LearningRateSchedule = .constant, dropout: Float? = nil) throws -> TrainerConfiguration {
        TrainerConfiguration(architecture: try ModelSpec.parse(spec, dropout: dropout), seed: seed, epochs: epochs, batchSize: 64,
                             optimizer: .adam(learningRate: lr, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false),
                             schedule: schedule)
    }

    func trainer(epochs: Int, seed: UInt64 = 0, schedule: LearningRateSchedule = .constant, dropout: Float? = nil,
                 labelSmoothing: Float = 0) throws -> Trainer {
        try Trainer(configuration: configuration(epochs: epochs, seed: seed, schedule: schedule, dropout: dropout),
                    objective: CrossEntropyObjective(labelSmoothing: labelSmoothing))
    }

    @Test("a tiny run on the committed Fashion-MNIST sample beats chance by a wide margin")
    func endToEndOnSample() throws {
        let train = try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .train)
        let test = try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .test)
        let trainer = try trainer(epochs: 2)
        let history = try trainer.train(on: train, validation: nil)
        #expect(history.count == 2 && history[1].loss < history[0].loss)
        let accuracy = trainer.network.accuracy(on: test)
        #expect(accuracy > 0.7, "test accuracy \(accuracy) (chance is 0.1)")
    }

    @Test("resuming from a checkpoint reaches exactly the weights of an uninterrupted run")
    func resumeEqualsUninterrupted() throws {
        let data = TestSupport.syntheticData(count: 300, features: 784, classes: 10, seed: 4)
        let directory = TestSupport.temporaryDirectory()
        for schedule in [LearningRateSchedule.constant, .cosine(minimum: 0)] {
            let uninterrupted = try trainer(epochs: 3, schedule: schedule, dropout: 0.2)
            try uninterrupted.train(on: data, validation: nil)

            let first = try trainer(epochs: 3, schedule: schedule, dropout: 0.2)
            first.checkpointPath = directory + "/run.ckpt"
            first.epochObserver = { [unowned first] metrics, _ in
                if metrics.epoch == 3 { first.checkpointPath = nil }  // as if the run died after the epoch-2 checkpoint
            }
            try first.train(on: data, validation: nil)

            let resumed = try trainer(epochs: 3, schedule: schedule, dropout: 0.2)
            try resumed.resume(from: directory + "/run.ckpt")
            #expect(resumed.completedEpochs == 2)
            try resumed.train(on: data, validation: nil)
            #expect(resumed.network.parameters.array == uninterrupted.network.parameters.array, "schedule \(schedule)")
            #expect(resumed.history.map(\.loss) == uninterrupted.history.map(\.loss))
        }
    }

    @Test("a checkpoint from a different recipe is refused, naming the difference")
    func incompatibleCheckpoint() throws {
        let data = TestSupport.syntheticData(count: 100, features: 784, classes: 10, seed: 5)
        let path = TestSupport.temporaryDirectory() + "/run.ckpt"
        let trainer = try trainer(epochs: 1)
        trainer.checkpointPath = path
        try trainer.train(on: data, validation: nil)
        let error = #expect(throws: NeuralNetError.self) { try self.trainer(epochs: 2, seed: 9).resume(from: path) }
        #expect(error.map { "\($0)".contains("seed = 0") && "\($0)".contains("this run has 9") } == true, "\(String(describing: error))")
        let objective = #expect(throws: NeuralNetError.self) { try self.trainer(epochs: 2, labelSmoothing: 0.1).resume(from: path) }
        #expect(objective.map { "\($0)".contains("objective") && "\($0)".contains("label_smoothing") } == true, "\(String(describing: objective))")
    }

    @Test("same seed, same weights, whatever the thread count")
    func reproducible() throws {
        let data = TestSupport.syntheticData(count: 200, features: 784, classes: 10, seed: 6)
        var results: [[Float]] = []
        for threads in [1, 2, 2] {
            let trainer = try trainer(epochs: 1, dropout: 0.1)
            trainer.network.pool = WorkerPool(threadCount: threads)
            try trainer.train(on: data, validation: nil)
            results.append(trainer.network.parameters.array)
        }
        #expect(results[0] == results[1] && results[1] == results[2])
        let other = try trainer(epochs: 1, seed: 1, dropout: 0.1)
        try other.train(on: data, validation: nil)
        #expect(other.network.parameters.array != results[0])
    }

    @Test("a non-finite loss stops training with a clear message")
    func divergenceGuard() throws {
        var data = TestSupport.syntheticData(count: 100, features: 784, classes: 10, seed: 7)
        data.features.scalars[5] = .infinity
        let trainer = try trainer(epochs: 2)
        let error = #expect(throws: NeuralNetError.self) { try trainer.train(on: data, validation: nil) }
        guard case .diverged(let epoch, _, _, let checkpoint) = error else {
            Issue.record("expected a divergence error, got \(String(describing: error))")
            return
        }
        #expect(epoch == 1 && checkpoint == nil)
        #expect("\(error!)".contains("Lower the learning rate"))

        // A resumed run that diverges before writing names no checkpoint it did not write.
        let directory = TestSupport.temporaryDirectory("diverge")
        let first = try self.trainer(epochs: 1)
        first.checkpointPath = directory + "/first.ckpt"
        try first.train(on: TestSupport.syntheticData(count: 100, features: 784, classes: 10, seed: 8), validation: nil)
        let resumed = try self.trainer(epochs: 2)
        try resumed.resume(from: directory + "/first.ckpt")
        resumed.checkpointPath = directory + "/second.ckpt"
        let again = #expect(throws: NeuralNetError.self) { try resumed.train(on: data, validation: nil) }
        guard case .diverged(_, _, _, let named) = again else {
            Issue.record("expected a divergence error")
            return
        }
        #expect(named == nil && !FileManager.default.fileExists(atPath: directory + "/second.ckpt"))
    }

    @Test("validation accuracy and per-epoch metrics are reported")
    func metrics() throws {
        let data = TestSupport.syntheticData(count: 400, features: 784, classes: 10, seed: 8)
        let (train, validation) = data.split(validationFraction: 0.25, seed: 0)
        #expect(train.count == 300 && validation.count == 100)
        let trainer = try trainer(epochs: 2)
        let history = try trainer.train(on: train, validation: validation)
        #expect(history.allSatisfy { $0.validationAccuracy != nil && $0.samplesPerSecond > 0 && $0.seconds > 0 })
    }
}

@Suite("Training objectives and checkpoints as hostile files")
struct TrainingSeamTests {
    /// Cross-entropy that counts its calls and, in `finishGradients`, zeroes the summed gradients.
    final class FrozenObjective: TrainingObjective, @unchecked Sendable {  // the counter is only touched under the lock
        let base = try! CrossEntropyObjective()
        let lock = NSLock()
        var calls = 0
        var finished = 0
        var description: String { "frozen" }
        var record: String { #"{"type":"frozen"}"# }
        var modifiesReducedGradients: Bool { true }

        func lossAndGradients(_ batch: MatrixRef, labels: UnsafePointer<Int>, network: Sequential, shard: Int, gradientScale: Float,
                              predictions: UnsafeMutablePointer<Int>, generator: inout RandomGenerator) throws -> Double {
            lock.withLock { calls += 1 }
            return try base.lossAndGradients(batch, labels: labels, network: network, shard: shard, gradientScale: gradientScale,
                                             predictions: predictions, generator: &generator)
        }

        func finishGradients(_ gradients: FloatBuffer, batchRows: Int, generator: inout RandomGenerator) {
            finished += 1
            gradients.zero()
        }
    }

    func configuration(epochs: Int = 1) throws -> TrainerConfiguration {
        TrainerConfiguration(architecture: try ModelSpec.parse("20-8-3"), seed: 1, epochs: epochs, batchSize: 10,
                             optimizer: .adam(learningRate: 1e-2, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false))
    }

    @Test("the epoch loop runs any objective: every shard calls it, and finishGradients sees the summed gradients")
    func customObjective() throws {
        let data = TestSupport.syntheticData(count: 40, features: 20, classes: 3, seed: 2)
        let objective = FrozenObjective()
        let trainer = try Trainer(configuration: configuration(), objective: objective)
        let before = trainer.network.parameters.array
        try trainer.train(on: data, validation: nil)
        #expect(objective.calls == 4 * WorkerPool.defaultShardCount && objective.finished == 4)
        #expect(trainer.network.parameters.array == before)  // zero gradients: Adam does not move
    }

    @Test("training refuses empty or mismatched data with an error, not a trap")
    func badData() throws {
        let trainer = try Trainer(configuration: configuration(), objective: CrossEntropyObjective())
        let empty = LabeledData(features: Tensor(zeros: [0, 20]), labels: [], classCount: 3)
        #expect(throws: NeuralNetError.self) { try trainer.train(on: empty, validation: nil) }
        #expect(throws: NeuralNetError.self) { try trainer.train(on: TestSupport.syntheticData(count: 5, features: 7, classes: 3, seed: 1), validation: nil) }
    }

    @Test("checkpoints with out-of-range, non-finite or inconsistent state are refused before use")
    func hostileCheckpoints() throws {
        let directory = TestSupport.temporaryDirectory()
        let path = directory + "/run.ckpt"
        let trainer = try Trainer(configuration: configuration(epochs: 2), objective: CrossEntropyObjective())
        trainer.checkpointPath = path
        try trainer.train(on: TestSupport.syntheticData(count: 30, features: 20, classes: 3, seed: 3), validation: nil)
        let good = try SafeTensors(contentsOf: path)

        func variant(metadata change: [String: String] = [:], state: ((inout [Float]) -> Void)? = nil) throws -> String {
            var metadata = good.metadata.merging(change) { $1 }
            metadata["unused"] = nil
            var tensors: [(name: String, value: SafeTensors.Value)] = []
            for name in good.entries.keys.sorted() {
                var values = try good.floatTensor(name).scalars
                if name == "optimizer.exp_avg_sq", let state { state(&values) }
                tensors.append((name, .float32(shape: good.entries[name]!.shape, values: values)))
            }
            let file = directory + "/variant.ckpt"
            try Data(SafeTensors.serialize(tensors, metadata: metadata)).write(to: URL(fileURLWithPath: file))
            do {
                try Trainer(configuration: configuration(epochs: 3), objective: CrossEntropyObjective()).resume(from: file)
                return ""
            } catch { return "\(error)" }
        }
        #expect(try variant() == "")
        #expect(try variant(metadata: ["optimizer_step": "9223372036854775807"]).contains("optimizer step"))
        #expect(try variant(metadata: ["optimizer_step": "-3"]).contains("optimizer step"))
        #expect(try variant(state: { $0[0] = .nan }).contains("NaN"))
        #expect(try variant(state: { $0[0] = -1 }).contains("negative"))
        #expect(try variant(metadata: ["history": "[{\"epoch\":5,\"loss\":1,\"train_accuracy\":0,\"seconds\":0,\"samples_per_second\":0,\"learning_rate\":0,\"extra\":{},\"warnings\":[]}]"]).contains("epochs 1…1"))
        #expect(try variant(metadata: ["checkpoint_format": "bulwark-checkpoint/1"]).contains("start the run again"))
        #expect(try variant(metadata: ["epoch": "-3"]).contains("does not match the"))
        #expect(try variant(metadata: ["epoch": "7"]).contains("does not match the"))
        // An in-range step count that the finished epochs cannot hold (2 epochs × 3 steps here).
        _ = try variant(metadata: ["optimizer_step": "1000000"])
        let resumed = try Trainer(configuration: configuration(epochs: 3), objective: CrossEntropyObjective())
        try resumed.resume(from: directory + "/variant.ckpt")
        #expect { try resumed.train(on: TestSupport.syntheticData(count: 30, features: 20, classes: 3, seed: 3), validation: nil) } throws: {
            "\($0)".contains("optimizer step 1000000 exceeds the 2 finished epochs × 3 steps")
        }
    }
}

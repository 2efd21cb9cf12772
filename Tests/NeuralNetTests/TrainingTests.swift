import Foundation
import Testing
import Datasets
import NeuralNet
import TensorCore
import _TestSupport

@Suite("Training")
struct TrainingTests {
    func recipe(epochs: Int, seed: UInt64 = 0, spec: String = "784-64-10", lr: Float = 1e-3,
                schedule: LearningRateSchedule = .constant, dropout: Float? = nil) throws -> TrainingRecipe {
        TrainingRecipe(architecture: try ModelSpec.parse(spec, dropout: dropout), seed: seed, epochs: epochs, batchSize: 64,
                       optimizer: .adam(learningRate: lr, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false),
                       schedule: schedule, dataset: "test")
    }

    @Test("a tiny run on the committed Fashion-MNIST sample beats chance by a wide margin")
    func endToEndOnSample() throws {
        let train = try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .train)
        let test = try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .test)
        let trainer = try Trainer(recipe: recipe(epochs: 2))
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
            let uninterrupted = try Trainer(recipe: recipe(epochs: 3, schedule: schedule, dropout: 0.2))
            try uninterrupted.train(on: data, validation: nil)

            let first = try Trainer(recipe: recipe(epochs: 3, schedule: schedule, dropout: 0.2))
            first.checkpointPath = directory + "/run.ckpt"
            first.epochObserver = { metrics, _ in
                if metrics.epoch == 3 { first.checkpointPath = nil }  // as if the run died after the epoch-2 checkpoint
            }
            try first.train(on: data, validation: nil)

            let resumed = try Trainer(recipe: recipe(epochs: 3, schedule: schedule, dropout: 0.2))
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
        let trainer = try Trainer(recipe: recipe(epochs: 1))
        trainer.checkpointPath = path
        try trainer.train(on: data, validation: nil)
        let error = #expect(throws: NeuralNetError.self) { try Trainer(recipe: recipe(epochs: 2, seed: 9)).resume(from: path) }
        #expect(error.map { "\($0)".contains("seed = 0") && "\($0)".contains("this run has 9") } == true, "\(String(describing: error))")
    }

    @Test("same seed, same weights, whatever the thread count")
    func reproducible() throws {
        let data = TestSupport.syntheticData(count: 200, features: 784, classes: 10, seed: 6)
        var results: [[Float]] = []
        for threads in [1, 2, 2] {
            let trainer = try Trainer(recipe: recipe(epochs: 1, dropout: 0.1))
            trainer.network.pool = WorkerPool(threadCount: threads)
            try trainer.train(on: data, validation: nil)
            results.append(trainer.network.parameters.array)
        }
        #expect(results[0] == results[1] && results[1] == results[2])
        let other = try Trainer(recipe: recipe(epochs: 1, seed: 1, dropout: 0.1))
        try other.train(on: data, validation: nil)
        #expect(other.network.parameters.array != results[0])
    }

    @Test("a non-finite loss stops training with a clear message")
    func divergenceGuard() throws {
        var data = TestSupport.syntheticData(count: 100, features: 784, classes: 10, seed: 7)
        data.features.scalars[5] = .infinity
        let trainer = try Trainer(recipe: recipe(epochs: 2))
        let error = #expect(throws: NeuralNetError.self) { try trainer.train(on: data, validation: nil) }
        guard case .diverged(let epoch, _, _, let checkpoint) = error else {
            Issue.record("expected a divergence error, got \(String(describing: error))")
            return
        }
        #expect(epoch == 1 && checkpoint == nil)
        #expect("\(error!)".contains("Lower the learning rate"))
    }

    @Test("validation accuracy and per-epoch metrics are reported")
    func metrics() throws {
        let data = TestSupport.syntheticData(count: 400, features: 784, classes: 10, seed: 8)
        let (train, validation) = data.split(validationFraction: 0.25, seed: 0)
        #expect(train.count == 300 && validation.count == 100)
        let trainer = try Trainer(recipe: recipe(epochs: 2))
        let history = try trainer.train(on: train, validation: validation)
        #expect(history.allSatisfy { $0.validationAccuracy != nil && $0.samplesPerSecond > 0 && $0.seconds > 0 })
    }
}

import Attacks
import Datasets
import Foundation
import _FileSystem
import NeuralNet
import TensorCore
import Testing
@testable import Training
import _TestSupport

@Suite("Adversarial training")
struct AdversarialTrainingTests {
    func configuration(epochs: Int) throws -> TrainerConfiguration {
        TrainerConfiguration(architecture: try ModelSpec.parse("20-32-4"), seed: 2, epochs: epochs, batchSize: 32,
                             optimizer: .adam(learningRate: 3e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false))
    }

    @Test("the objective replaces the mixed-in fraction of the batch by examples inside the ε-ball")
    func replacement() throws {
        let network = Sequential(spec: try ModelSpec.parse("20-32-4"), seed: 1)
        network.reserve(rows: 10, shards: 1)
        let data = TestSupport.syntheticData(count: 10, features: 20, classes: 4, seed: 3)
        let specs = [AdversarialTrainingSpec(attack: .fgsm(FGSM.Parameters()), epsilon: 0.1),
                     AdversarialTrainingSpec(attack: .pgd(try PGD.Parameters(steps: 3)), epsilon: 0.1)]
        #expect(specs.map(\.mix) == [0.5, 1])
        for spec in specs {
            let objective = try AdversarialObjective(spec)
            objective.prepare(network: network, shards: 1, rows: 10, features: 20)
            var batch = data.features
            var generator = RandomGenerator(seed: 0)
            try batch.withMatrix { x in
                try data.labels.withUnsafeBufferPointer {
                    try objective.replaceWithAdversarial(x, labels: $0.baseAddress!, network: network, shard: 0, generator: &generator)
                }
            }
            let changedRows = (0..<10).filter { r in batch.rows(r..<(r + 1)).scalars != data.features.rows(r..<(r + 1)).scalars }
            #expect(changedRows.allSatisfy { $0 < Int((spec.mix * 10).rounded(.up)) })
            #expect(!changedRows.isEmpty)
            #expect(zip(batch.scalars, data.features.scalars).allSatisfy { abs($0 - $1) <= 0.1 + 1e-6 })
            #expect(batch.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
        }
        #expect(throws: AttackError.self) { try AdversarialObjective(AdversarialTrainingSpec(attack: .fgsm(FGSM.Parameters()), epsilon: 0.1, mix: 0)) }
        // Attacks that do not return strongest examples cannot train.
        #expect(throws: AttackError.self) { try AdversarialObjective(AdversarialTrainingSpec(attack: .square(try Square.Parameters()), epsilon: 0.1)) }
        #expect(throws: AttackError.self) { try AdversarialObjective(AdversarialTrainingSpec(attack: .fabTargeted(try FAB.Parameters()), epsilon: 0.1)) }
    }

    @Test("the adversarial rows are the batch's first ⌈mix·B⌉ whatever the number of shards")
    func mixIndependentOfShards() throws {
        let network = Sequential(spec: try ModelSpec.parse("20-32-4"), seed: 1)
        let data = TestSupport.syntheticData(count: 11, features: 20, classes: 4, seed: 3)
        let spec = AdversarialTrainingSpec(attack: .fgsm(FGSM.Parameters()), epsilon: 0.1, mix: 0.5)
        for shards in [1, 2, 3] {
            network.reserve(rows: 11, shards: shards)
            let objective = try AdversarialObjective(spec)
            objective.prepare(network: network, shards: shards, rows: 11, features: 20)
            objective.beginStep(0, stepsPerEpoch: 1, batchRows: 11)
            var batch = data.features
            try batch.withMatrix { x in
                try data.labels.withUnsafeBufferPointer { labels in
                    for s in 0..<shards {
                        let part = WorkerPool.shardRange(11, part: s, parts: shards)
                        var generator = RandomGenerator(seed: UInt64(s))
                        try objective.replaceWithAdversarial(x.rows(part), labels: labels.baseAddress! + part.lowerBound, network: network,
                                                             shard: s, generator: &generator)
                    }
                }
            }
            let changed = (0..<11).filter { r in batch.rows(r..<(r + 1)).scalars != data.features.rows(r..<(r + 1)).scalars }
            #expect(changed == Array(0..<6), "\(shards) shards changed rows \(changed)")  // ⌈0.5 · 11⌉ = 6
        }
    }

    @Test("PGD training makes the model more robust than standard training, and the monitor reports it")
    func pgdTrainingHelps() throws {
        let data = TestSupport.syntheticData(count: 600, features: 20, classes: 4, seed: 5)
        let (train, validation) = data.split(validationFraction: 0.25, seed: 0)
        let evaluation = try PGD(epsilon: 0.1, steps: 10)

        let standard = try Trainer(configuration: configuration(epochs: 15), objective: CrossEntropyObjective())
        try standard.train(on: train, validation: validation)
        let spec = ObjectiveSpec.adversarial(AdversarialTrainingSpec(attack: .pgd(try PGD.Parameters(steps: 5, stepSize: .absolute(0.04))), epsilon: 0.1))
        let robust = try Trainer(configuration: configuration(epochs: 15), objective: try spec.makeObjective())
        let monitor = RobustnessMonitor(attack: evaluation, slice: validation, seed: 0)
        robust.epochObserver = { metrics, network in monitor.observe(&metrics, network: network) }
        try robust.train(on: train, validation: validation)

        let standardRobust = try AttackRunner(classifier: standard.network).run(evaluation, on: validation, seed: 0).adversarialAccuracy.value
        let adversarialRobust = try AttackRunner(classifier: robust.network).run(evaluation, on: validation, seed: 0).adversarialAccuracy.value
        #expect(adversarialRobust > standardRobust + 0.1, "PGD-trained \(adversarialRobust) vs standard \(standardRobust)")
        let history = robust.history
        #expect(history.count == 15 && history.allSatisfy { $0.extra["robust_accuracy"] != nil })
        #expect(abs(history.last!.extra["robust_accuracy"]! - adversarialRobust) < 1e-9)
    }

    @Test("catastrophic overfitting is flagged when robust accuracy collapses while training accuracy rises")
    func catastrophicOverfitting() throws {
        let monitor = RobustnessMonitor(attack: try PGD(epsilon: 0.1), slice: TestSupport.syntheticData(count: 1, features: 2, classes: 2, seed: 0), seed: 0)
        #expect(monitor.record(epoch: 1, robust: 0.40, train: 0.50) == nil)
        #expect(monitor.record(epoch: 2, robust: 0.45, train: 0.55) == nil)
        #expect(monitor.record(epoch: 3, robust: 0.30, train: 0.60) == nil)  // a drop within the threshold
        let warning = try #require(monitor.record(epoch: 4, robust: 0.05, train: 0.80))
        #expect(warning.contains("catastrophic overfitting") && warning.contains("epoch 2"))
    }
}

@Suite("Single-step training and its guard")
struct FastAdversarialTests {
    @Test("a collapse is caught relative to the best epoch at low accuracy, where the absolute drop is small")
    func relativeCollapse() throws {
        let monitor = RobustnessMonitor(attack: try PGD(epsilon: 0.1), slice: TestSupport.syntheticData(count: 1, features: 2, classes: 2, seed: 0), seed: 0)
        #expect(monitor.record(epoch: 1, robust: 0.12, train: 0.30) == nil)
        #expect(monitor.record(epoch: 2, robust: 0.14, train: 0.35) == nil)
        #expect(monitor.record(epoch: 3, robust: 0.10, train: 0.40) == nil)  // within half of the best
        #expect(monitor.collapsedAt == nil)
        let warning = try #require(monitor.record(epoch: 4, robust: 0.05, train: 0.60))  // 0.09 down, below half of 0.14
        #expect(warning.contains("epoch 2") && monitor.collapsedAt == 4)
        #expect(monitor.bestEpoch?.epoch == 2)
        // Near zero, halving is noise on a small slice: no collapse without a drop of 0.05.
        let quiet = RobustnessMonitor(attack: try PGD(epsilon: 0.1), slice: TestSupport.syntheticData(count: 1, features: 2, classes: 2, seed: 0), seed: 0)
        #expect(quiet.record(epoch: 1, robust: 0.02, train: 0.3) == nil)
        #expect(quiet.record(epoch: 2, robust: 0.009, train: 0.5) == nil)
        #expect(quiet.collapsedAt == nil)
    }

    @Test("the single step keeps the label's gradient on a confident example (p_y − 1 rounds to 0 in Float32)",
          arguments: [FastAdversarialSpec.Method.fgsmRS, .nFGSM])
    func confidentDirection(method: FastAdversarialSpec.Method) throws {
        // One dense layer, class 1 far ahead (z = 0, 20, 0.5 at x = 0.5): p_0 + p_2 ≈ 5e-9, so p_1
        // rounds to 1. ∂CE/∂x = Σ_{j≠1} p_j (W_j − W_1) is negative on every pixel; dropping the
        // label's term (Σ_{j≠1} p_j W_j) would flip the first two.
        let network = Sequential(spec: try ModelSpec.parse("4-3"), seed: 0)
        let weight = try #require(network.namedParameters.first { $0.key == "0.weight" }).range
        let bias = try #require(network.namedParameters.first { $0.key == "0.bias" }).range
        for (i, w) in [Float(1), -1, 2, -2, 10, 10, 10, 10, 0, 3, -3, 1].enumerated() { network.parameters.pointer[weight.lowerBound + i] = w }
        for i in bias { network.parameters.pointer[i] = 0 }
        let objective = try FastAdversarialObjective(FastAdversarialSpec(method: method, epsilon: 0.1, noise: 0))
        network.reserve(rows: 1, shards: 1, parameterGradients: true)
        objective.prepare(network: network, shards: 1, rows: 1, features: 4)
        var batch = Tensor(shape: [1, 4], scalars: [0.5, 0.5, 0.5, 0.5])
        var generator = RandomGenerator(seed: 0)
        let predictions = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        defer { predictions.deallocate() }
        _ = try batch.withMatrix { x in
            try [1].withUnsafeBufferPointer { y in
                try objective.lossAndGradients(x, labels: y.baseAddress!, network: network, shard: 0, gradientScale: 1,
                                               predictions: predictions, generator: &generator)
            }
        }
        #expect(batch.scalars.allSatisfy { abs($0 - 0.4) < 1e-6 }, "\(batch.scalars)")
    }

    @Test("the trainer stops when asked after an epoch")
    func trainerStops() throws {
        let configuration = TrainerConfiguration(architecture: try ModelSpec.parse("6-4-2"), seed: 0, epochs: 10, batchSize: 8,
                                                 optimizer: .sgd(learningRate: 0.1, momentum: 0, nesterov: false, weightDecay: 0))
        let trainer = try Trainer(configuration: configuration, objective: try CrossEntropyObjective())
        trainer.shouldStop = { [weak trainer] in (trainer?.completedEpochs ?? 0) >= 3 }  // weak: the trainer holds the closure
        let history = try trainer.train(on: TestSupport.syntheticData(count: 40, features: 6, classes: 2, seed: 1), validation: nil)
        #expect(history.count == 3)
    }

    @Test("FGSM-RS and N-FGSM train; the most robust epoch is written to its own file, recorded in the manifest",
          arguments: [FastAdversarialSpec.Method.fgsmRS, .nFGSM])
    func bestRobustCheckpoint(method: FastAdversarialSpec.Method) throws {
        var recipe = TrainingRecipe.standardMLP
        recipe.architecture = try ModelSpec.parse("784-32-10")
        recipe.epochs = 4
        recipe.validationFraction = 0.2
        recipe.robustEvaluationExamples = 100
        recipe.objective = .fastAdversarial(FastAdversarialSpec(method: method, epsilon: 0.1))
        let directory = TestSupport.temporaryDirectory()
        let job = TrainingJob(recipe: recipe, data: DataSpec(source: .mnistFormat(directory: TestSupport.sampleDirectory), limit: 500),
                              output: directory + "/m.safetensors")
        let result = try job.run(loader: PlainFileLoader())
        let robust = result.history.map { $0.extra["robust_accuracy"]! }
        let best = try ModelFile.load(contentsOf: job.bestRobustPath, loader: PlainFileLoader())
        let bestEpoch = try #require(best.metadata["best_robust_epoch"].flatMap(Int.init))
        #expect(robust[bestEpoch - 1] == robust.max()!)
        #expect(robust.firstIndex(of: robust.max()!)! == bestEpoch - 1)
        #expect(best.metadata["robust_accuracy"] == String(robust.max()!))
        let manifest = try String(contentsOfFile: directory + "/bulwark-manifest.json", encoding: .utf8)
        #expect(manifest.contains("m.best-robust.safetensors"))
    }
}

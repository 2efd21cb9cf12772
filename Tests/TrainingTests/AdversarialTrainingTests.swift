import Attacks
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

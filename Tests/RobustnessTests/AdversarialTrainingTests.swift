import Attacks
import NeuralNet
import Robustness
import TensorCore
import Testing
import _TestSupport

@Suite("Adversarial training")
struct AdversarialTrainingTests {
    func recipe(epochs: Int, augmentation: String?) throws -> TrainingRecipe {
        TrainingRecipe(architecture: try ModelSpec.parse("20-32-4"), seed: 2, epochs: epochs, batchSize: 32,
                       optimizer: .adam(learningRate: 3e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false),
                       dataset: "synthetic", augmentation: augmentation)
    }

    @Test("the augmentation replaces the mixed-in fraction of the batch by examples inside the ε-ball")
    func augmentation() throws {
        let network = Sequential(spec: try ModelSpec.parse("20-32-4"), seed: 1)
        network.reserve(rows: 10, shards: 1)
        let data = TestSupport.syntheticData(count: 10, features: 20, classes: 4, seed: 3)
        for training in [try AdversarialTraining.fgsm(epsilon: 0.1, mix: 0.5), try AdversarialTraining.pgd(epsilon: 0.1, steps: 3, stepSize: nil)] {
            training.prepare(shards: 1, rows: 10, features: 20)
            var batch = data.features
            var generator = RandomGenerator(seed: 0)
            try batch.withMatrix { x in
                try data.labels.withUnsafeBufferPointer {
                    try training.augment(x, labels: $0.baseAddress!, network: network, shard: 0, generator: &generator)
                }
            }
            let changedRows = (0..<10).filter { r in batch.rows(r..<(r + 1)).scalars != data.features.rows(r..<(r + 1)).scalars }
            #expect(changedRows.allSatisfy { $0 < Int((training.mix * 10).rounded(.up)) })
            #expect(!changedRows.isEmpty)
            #expect(zip(batch.scalars, data.features.scalars).allSatisfy { abs($0 - $1) <= 0.1 + 1e-6 })
            #expect(batch.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
        }
        #expect(throws: AttackError.self) { try AdversarialTraining(attack: try FGSM(epsilon: 0.1), mix: 0) }
    }

    @Test("PGD training makes the model more robust than standard training, and the monitor reports it")
    func pgdTrainingHelps() throws {
        let data = TestSupport.syntheticData(count: 600, features: 20, classes: 4, seed: 5)
        let (train, validation) = data.split(validationFraction: 0.25, seed: 0)
        let evaluation = try PGD(epsilon: 0.1, steps: 10)

        let standard = try Trainer(recipe: recipe(epochs: 15, augmentation: nil))
        try standard.train(on: train, validation: validation)
        let augmentation = try AdversarialTraining.pgd(epsilon: 0.1, steps: 5, stepSize: 0.04)
        let robust = try Trainer(recipe: recipe(epochs: 15, augmentation: augmentation.description))
        robust.augmentation = augmentation
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
}

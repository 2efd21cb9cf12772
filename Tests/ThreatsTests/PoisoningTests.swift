import Foundation
import NeuralNet
import TensorCore
import Testing
@testable import Threats
import Training
import _TestSupport

@Suite("Poisoning")
struct PoisoningTests {
    /// n images of `width` × `width` with random pixels and labels.
    func images(_ n: Int, width: Int = 8, classes: Int = 4, seed: UInt64 = 1) -> LabeledData {
        var generator = RandomGenerator(seed: seed)
        let features = (0..<(n * width * width)).map { _ in generator.nextFloat(in: 0, 0.5) }
        let labels = (0..<n).map { $0 % classes }
        return LabeledData(features: Tensor(shape: [n, width * width], scalars: features), labels: labels, classCount: classes)
    }

    @Test("the trigger lands exactly on its patch, and only on poisoned examples")
    func triggerPlacement() throws {
        let data = images(40)
        let trigger = BackdoorTrigger(size: 2, row: 1, column: 5, value: 0.9, imageWidth: 8)
        let poisoned = try PoisonAttack.backdoor(trigger, target: 3).poison(data, rate: 0.25, seed: 2)
        let patch = Set(trigger.pixelIndices)
        #expect(patch == [1 * 8 + 5, 1 * 8 + 6, 2 * 8 + 5, 2 * 8 + 6])
        let flags = poisoned.isPoisoned
        for i in 0..<data.count {
            for j in 0..<64 {
                let before = data.features[i, j]
                let after = poisoned.data.features[i, j]
                if flags[i] && patch.contains(j) { #expect(after == 0.9) } else { #expect(after == before) }
            }
            #expect(poisoned.data.labels[i] == (flags[i] ? 3 : data.labels[i]))
            if flags[i] { #expect(data.labels[i] != 3, "only examples of other classes are poisoned") }
        }
        // The default trigger: 3 × 3, one pixel from the bottom-right corner of a 28 × 28 image.
        let standard = BackdoorTrigger()
        #expect(standard.pixelIndices.first == 24 * 28 + 24 && standard.pixelIndices.last == 26 * 28 + 26)
        // Test inputs: triggered, and none of the target class.
        let successSet = try #require(try PoisonAttack.backdoor(trigger, target: 3).successTest(data))
        #expect(successSet.count == 30 && !successSet.labels.contains(3))
        #expect((0..<successSet.count).allSatisfy { i in patch.allSatisfy { successSet.features[i, $0] == 0.9 } })
    }

    @Test("poison rates are exact, for every attack, and the selection is seeded")
    func exactRates() throws {
        let data = images(1000, classes: 10)
        for attack: PoisonAttack in [.randomLabelFlip, .targetedLabelFlip(source: 2, target: 7), .backdoor(BackdoorTrigger(imageWidth: 8), target: 0)] {
            for rate in [0.0, 0.01, 0.05, 0.1] {
                let poisoned = try attack.poison(data, rate: rate, seed: 3)
                #expect(poisoned.poisoned.count == Int((rate * 1000).rounded()))
                #expect(Set(poisoned.poisoned).count == poisoned.poisoned.count)
                let changedLabels = (0..<1000).filter { poisoned.data.labels[$0] != data.labels[$0] }
                #expect(changedLabels == poisoned.poisoned, "\(attack) rate \(rate): every poisoned example changes label")
                #expect(try attack.poison(data, rate: rate, seed: 3).poisoned == poisoned.poisoned)
            }
        }
        let flipped = try PoisonAttack.targetedLabelFlip(source: 2, target: 7).poison(data, rate: 0.05, seed: 1)
        #expect(flipped.poisoned.allSatisfy { data.labels[$0] == 2 && flipped.data.labels[$0] == 7 })
        #expect(try PoisonAttack.randomLabelFlip.poison(data, rate: 0.1, seed: 1).poisoned != PoisonAttack.randomLabelFlip.poison(data, rate: 0.1, seed: 2).poisoned)
    }

    @Test("impossible poisoning is refused with a message naming the problem")
    func refusals() {
        let data = images(100, classes: 10)
        #expect(throws: ThreatError.self) { try PoisonAttack.targetedLabelFlip(source: 2, target: 7).poison(data, rate: 0.5, seed: 0) }
        #expect(throws: ThreatError.self) { try PoisonAttack.randomLabelFlip.poison(data, rate: 1.5, seed: 0) }
        #expect(throws: ThreatError.self) { try PoisonAttack.backdoor(BackdoorTrigger(size: 3, row: 6, imageWidth: 8), target: 0).poison(data, rate: 0.1, seed: 0) }
        #expect(throws: ThreatError.self) { try PoisonAttack.backdoor(BackdoorTrigger(imageWidth: 7), target: 0).poison(data, rate: 0.1, seed: 0) }
        #expect(throws: ThreatError.self) { try PoisonAttack.targetedLabelFlip(source: 3, target: 3).poison(data, rate: 0.1, seed: 0) }
        #expect(throws: ThreatError.self) { try PoisonAttack.backdoor(BackdoorTrigger(imageWidth: 8), target: 10).poison(data, rate: 0.1, seed: 0) }
    }

    /// Representations of one class: a clean Gaussian blob and a planted cluster shifted along one
    /// direction.
    func plantedRepresentations(clean: Int, poison: Int, width: Int, shift: Float) -> (values: [Float], poisoned: Set<Int>) {
        var generator = RandomGenerator(seed: 11)
        var values: [Float] = []
        for i in 0..<(clean + poison) {
            for j in 0..<width {
                var v = generator.nextGaussian()
                if i >= clean && j == 3 { v += shift }
                values.append(v)
            }
        }
        return (values, Set(clean..<(clean + poison)))
    }

    @Test("spectral signatures score a planted, well-separated poison cluster highest")
    func spectralFlagsPlantedCluster() throws {
        let width = 16
        let (values, poisoned) = plantedRepresentations(clean: 450, poison: 50, width: width, shift: 8)
        let scores = try SpectralSignatures.scores(values, width: width, indices: Array(0..<500))
        let top = Set(scores.indices.sorted { scores[$0] > scores[$1] }.prefix(75))  // 1.5 × 10%
        #expect(poisoned.isSubset(of: top), "missed \(poisoned.subtracting(top).count) planted examples")
    }

    @Test("activation clustering isolates a planted minority cluster")
    func clusteringFindsPlantedCluster() throws {
        let width = 16
        let (values, poisoned) = plantedRepresentations(clean: 400, poison: 100, width: width, shift: 8)
        var generator = RandomGenerator(seed: 1)
        let assignment = try ActivationClustering().clusters(values, width: width, indices: Array(0..<500), generator: &generator)
        let poisonCluster = assignment[450]
        let members = Set(assignment.indices.filter { assignment[$0] == poisonCluster })
        #expect(members == poisoned)
    }

    @Test("spectral signatures remove 1.5·ε of each class, loss filtering the 1.5·ε·n worst-fitted; degenerate features flag nothing")
    func defenceCounts() throws {
        let data = TestSupport.syntheticData(count: 203, features: 10, classes: 3, seed: 4)
        let model = Sequential(spec: try ModelSpec.parse("10-6-3"), seed: 2)
        let spectral = try SpectralSignatures(expectedRate: 0.1).flag(data, model: model, seed: 0)
        for c in 0..<3 {
            let members = data.labels.indices.filter { data.labels[$0] == c }
            let flagged = members.filter { spectral[$0] }.count
            #expect(flagged == Int((0.15 * Double(members.count)).rounded()), "class \(c): \(flagged) of \(members.count)")
        }
        let loss = try LossFiltering(expectedRate: 0.1).flag(data, model: model, seed: 0)
        #expect(loss.filter { $0 }.count == Int((0.15 * 203.0).rounded()))
        let losses = try LossFiltering.losses(of: model.inferenceModel(), on: data)
        let lowestFlagged = losses.indices.filter { loss[$0] }.map { losses[$0] }.min()!
        let highestKept = losses.indices.filter { !loss[$0] }.map { losses[$0] }.max()!
        #expect(lowestFlagged >= highestKept, "the flagged examples are the worst fitted")

        // Identical inputs: every class is one point; nothing to separate, nothing flagged, no trap.
        let flat = LabeledData(features: Tensor(shape: [40, 10], scalars: [Float](repeating: 0.5, count: 400)),
                               labels: (0..<40).map { $0 % 2 }, classCount: 2)
        let clustering = try ActivationClustering().flag(flat, model: Sequential(spec: try ModelSpec.parse("10-6-2"), seed: 1), seed: 0)
        #expect(!clustering.contains(true))
        #expect(try SpectralSignatures(expectedRate: 0.1).flag(flat, model: Sequential(spec: try ModelSpec.parse("10-6-2"), seed: 1), seed: 0)
                    .filter { $0 }.count == 6)  // 1.5 · 0.1 · 20 per class, ties broken by order
    }

    @Test("a small backdoor experiment: the trigger works, clustering removes it, the run repeats exactly")
    func smallExperiment() throws {
        // Two separable classes of 8 × 8 images; the trigger is a bright corner.
        var generator = RandomGenerator(seed: 5)
        let n = 600
        var features: [Float] = []
        var labels: [Int] = []
        for i in 0..<n {
            let label = i % 2
            labels.append(label)
            for j in 0..<64 { features.append(min(1, max(0, (j < 32) == (label == 0) ? 0.6 + 0.2 * generator.nextGaussian() : 0.1 * generator.nextUnitFloat()))) }
        }
        let all = LabeledData(features: Tensor(shape: [n, 64], scalars: features), labels: labels, classCount: 2)
        let train = all.subset(Array(0..<400))
        let test = all.subset(Array(400..<600))
        let recipe = TrainingRecipe(architecture: try ModelSpec.parse("64-32-2"), epochs: 30, batchSize: 32)
        let experiment = PoisoningExperiment(
            attack: .backdoor(BackdoorTrigger(size: 2, row: 0, column: 6, value: 1, imageWidth: 8), target: 0), rates: [0.1],
            defences: [.clustering, .spectral], expectedRate: 0.1, recipe: recipe, seed: 1, threads: 2)
        let result = try experiment.run(train: train, test: test)
        let row = try #require(result.rates.first)
        #expect(row.poisoned == 40)
        #expect(row.cleanAccuracy.value > 0.95)
        let success = try #require(row.attackSuccessRate).value
        #expect(success > 0.8, "the backdoor must work before a defence can be judged: ASR \(success)")
        #expect(row.defences.map(\.defence) == ["clustering", "spectral"])
        for defence in row.defences {
            #expect(defence.truePositives <= defence.flagged)
            #expect(defence.recall.map { (0...1).contains($0) } ?? false)
        }
        // The trigger is a cluster of its own in the target class: clustering finds exactly it.
        let clustering = row.defences[0]
        #expect(clustering.precision == 1 && clustering.recall == 1)
        #expect(try #require(clustering.attackSuccessRate).value < 0.1)
        #expect(clustering.cleanAccuracy.value > 0.95)
        let again = try experiment.run(train: train, test: test)
        #expect(again.rates.first?.defences.map(\.flagged) == row.defences.map(\.flagged))
        #expect(again.rates.first?.attackSuccessRate == row.attackSuccessRate)
    }
}

import Foundation
import Testing
@testable import Attacks
import NeuralNet
import TensorCore
import _TestSupport

@Suite("APGD and APGD-T")
struct APGDTests {
    static func attacks(epsilon: Float, loss: AttackLoss = .crossEntropy, stop: Bool = true) throws -> [any Attack] {
        [try APGD(norm: .linf, epsilon: epsilon, steps: 12, restarts: 2, loss: loss, stopAtFirstSuccess: stop),
         try APGD(norm: .l2, epsilon: epsilon * 5, steps: 12, loss: loss, stopAtFirstSuccess: stop),
         try APGDT(norm: .linf, epsilon: epsilon, steps: 8, targetClasses: 3, stopAtFirstSuccess: stop),
         try APGDT(norm: .l2, epsilon: epsilon * 5, steps: 8, targetClasses: 4, stopAtFirstSuccess: stop)]
    }

    @Test("the checkpoints are those of the paper and the reference code (0.22, 0.41, 0.57, … of 100 steps)")
    func schedule() {
        let checkpoints = APGD.Schedule(steps: 100).checkpoints(steps: 100)
        #expect(checkpoints.map(\.iteration) == [21, 40, 56, 69, 79, 86, 92, 98])
        #expect(checkpoints.map(\.window) == [22, 19, 16, 13, 10, 7, 6, 6])
        #expect(APGD.Schedule(steps: 10).checkpoints(steps: 10).map(\.iteration) == [1, 2, 3, 4, 5, 6, 7, 8, 9])
    }

    @Test("APGD and APGD-T stay inside the ε-ball and [0, 1], first-success or highest-loss",
          arguments: [AttackLoss.crossEntropy, .dlr], [true, false])
    func invariants(loss: AttackLoss, stop: Bool) throws {
        for seed in UInt64(0)..<3 {
            let model = Fixture.model(seed: seed)
            let data = Fixture.data(count: 37, seed: seed + 10)
            for epsilon in [Float(0.01), 0.1, 0.3] {
                for attack in try Self.attacks(epsilon: epsilon, loss: loss, stop: stop) {
                    let outcome = try AttackRunner(classifier: model, batchSize: 16).run(attack, on: data, seed: seed)
                    #expect(outcome.adversarial.scalars.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(attack)")
                    #expect(outcome.perturbationNorms.allSatisfy { $0 <= attack.epsilon + 1e-6 }, "\(attack)")
                    // In evaluation, inputs the model gets wrong are not attacked: they come back unchanged.
                    for i in 0..<data.count where stop && outcome.cleanPredictions[i] != data.labels[i] {
                        #expect(outcome.perturbationNorms[i] == 0, "\(attack) row \(i)")
                    }
                    // When every step runs, every input is attacked.
                    if !stop { #expect(outcome.perturbationNorms.allSatisfy { $0 > 0 }, "\(attack)") }
                }
            }
        }
    }

    @Test("APGD fools at least as many inputs as PGD with the same budget of steps, and APGD-T adds to it")
    func strength() throws {
        let model = Fixture.model(seed: 3, spec: "20-32-32-5")
        let data = Fixture.data(count: 200, seed: 4)
        let runner = AttackRunner(classifier: model, batchSize: 50)
        let pgd = try runner.run(try PGD(epsilon: 0.05, steps: 20), on: data, seed: 1)
        let apgd = try runner.run(try APGD(epsilon: 0.05, steps: 20), on: data, seed: 1)
        let apgdt = try runner.run(try APGDT(epsilon: 0.05, steps: 20, targetClasses: 4), on: data, seed: 1)
        #expect(apgd.robustCorrect <= pgd.robustCorrect + 2, "APGD \(apgd.robustCorrect), PGD \(pgd.robustCorrect)")
        #expect(apgd.robustCorrect < apgd.cleanCorrect && apgdt.robustCorrect < apgdt.cleanCorrect)
        #expect(apgdt.robustCorrect <= pgd.robustCorrect + 2, "APGD-T \(apgdt.robustCorrect), PGD \(pgd.robustCorrect)")
    }

    @Test("APGD-T picks its own targets: a targeted goal and models with fewer than 4 classes are refused")
    func targetedRefused() throws {
        let data = Fixture.data(count: 10, seed: 1)
        let attack = try APGDT(epsilon: 0.1, steps: 5)
        #expect(throws: AttackError.self) {
            try AttackRunner(classifier: Fixture.model(seed: 1)).run(attack, on: data, goal: AttackGoal(targets: .fixed(1)), seed: 0)
        }
        let three = Fixture.data(count: 10, classes: 3, seed: 1)
        #expect(throws: AttackError.self) {
            try AttackRunner(classifier: Fixture.model(seed: 1, spec: "20-8-3")).run(attack, on: three, seed: 0)
        }
        #expect(throws: AttackError.self) { try APGDT(epsilon: 0.1, targetClasses: 0) }
        #expect(throws: AttackError.self) { try APGD(epsilon: 0.1, rho: 1) }
    }

    @Test("APGD is deterministic for a seed and independent of the thread count")
    func determinism() throws {
        let data = Fixture.data(count: 64, seed: 9)
        var results: [[Float]] = []
        for threads in [1, 2] {
            let model = Fixture.model(seed: 1)
            model.pool = WorkerPool(threadCount: threads)
            results.append(try AttackRunner(classifier: model, batchSize: 20).run(try APGDT(norm: .l2, epsilon: 0.5, steps: 6, targetClasses: 2),
                                                                                   on: data, seed: 4).adversarial.scalars)
        }
        #expect(results[0] == results[1])
    }

    @Test("a targeted APGD reaches its targets; the highest-loss iterate is returned on request")
    func targetedAndHighestLoss() throws {
        let model = Fixture.model(seed: 2)
        let data = Fixture.data(count: 60, seed: 3)
        let runner = AttackRunner(classifier: model, batchSize: 30)
        let targeted = try runner.run(try APGD(epsilon: 0.3, steps: 20), on: data, goal: AttackGoal(targets: .fixed(2)), seed: 0)
        #expect(targeted.successRate.value > 0.5, "\(targeted.successRate)")
        // Highest-loss iterates: never less fooling than the first-success ones in aggregate here,
        // and they move inputs farther (the first fooling iterate is often barely across).
        let first = try runner.run(try APGD(epsilon: 0.3, steps: 20), on: data, seed: 0)
        let strongest = try runner.run(try APGD(epsilon: 0.3, steps: 20, stopAtFirstSuccess: false), on: data, seed: 0)
        #expect(strongest.meanPerturbation >= first.meanPerturbation)
    }
}

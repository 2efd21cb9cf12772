import Foundation
import Testing
@testable import Attacks
import NeuralNet
import TensorCore
import _TestSupport

@Suite("FAB-T and the AutoAttack suite")
struct FABTests {
    @Test("the projection lands on the hyperplane inside the box; unconstrained L2 is −offset·w/‖w‖²", arguments: Norm.allCases)
    func projection(norm: Norm) throws {
        let attack = try FAB(norm: norm, epsilon: 0.1)
        let d = 37  // not a multiple of the kernel's 16 lanes
        let ws = attack.makeWorkspace(rows: 1, features: d)
        var generator = RandomGenerator(seed: 3)
        for trial in 0..<50 {
            let point = FloatBuffer((0..<d).map { _ in generator.nextFloat(in: 0.2, 0.8) })
            let w = FloatBuffer((0..<d).map { _ in generator.nextFloat(in: -1, 1) })
            let offset = generator.nextFloat(in: -0.5, 0.5) * Float(trial % 5 + 1) / 5
            let step = FloatBuffer(count: d)
            let size = attack.project(from: point.pointer, normal: w.pointer, offset: offset, into: step.pointer, count: d, workspace: ws)
            let steps = (0..<d).map { step.pointer[$0] }
            let expectedSize = norm == .linf ? steps.map(abs).max()! : steps.reduce(0) { $0 + $1 * $1 }.squareRoot()
            #expect(abs(size - expectedSize) <= 1e-6 * max(1, expectedSize), "the returned size is the step's norm")
            var residual = offset
            for j in 0..<d { residual += w.pointer[j] * step.pointer[j] }
            #expect(abs(residual) < 1e-4, "trial \(trial): ⟨w, p + δ⟩ − b = \(residual)")
            #expect((0..<d).allSatisfy { point.pointer[$0] + step.pointer[$0] >= -1e-6 && point.pointer[$0] + step.pointer[$0] <= 1 + 1e-6 })
            if norm == .l2 {
                // Small offsets from the middle of the box hit no bound: the closed form.
                let squares = (0..<d).reduce(Float(0)) { $0 + w.pointer[$1] * w.pointer[$1] }
                let exact = (0..<d).map { -offset * w.pointer[$0] / squares }
                if exact.allSatisfy({ abs($0) < 0.2 }) {
                    #expect(TestSupport.close((0..<d).map { step.pointer[$0] }, exact, relative: 1e-3, absolute: 1e-5))
                }
            } else {
                // L∞: every moving coordinate moves by the same λ unless its bound stops it first.
                let moves = (0..<d).map { abs(step.pointer[$0]) }.filter { $0 > 1e-7 }
                if let largest = moves.max() { #expect(moves.allSatisfy { $0 <= largest + 1e-6 }) }
            }
        }
        // Unreachable: the box cannot reach the hyperplane; every coordinate is saturated.
        let point = FloatBuffer([Float](repeating: 0.5, count: d)), w = FloatBuffer([Float](repeating: 1, count: d))
        let step = FloatBuffer(count: d)
        attack.project(from: point.pointer, normal: w.pointer, offset: 100, into: step.pointer, count: d, workspace: ws)
        #expect((0..<d).allSatisfy { step.pointer[$0] == -0.5 })
    }

    @Test("FAB-T and the suite stay inside the ε-ball and [0, 1], and fool inputs", arguments: Norm.allCases)
    func invariants(norm: Norm) throws {
        let model = Fixture.model(seed: 5, spec: "25-16-5")
        let data = Fixture.data(count: 40, features: 25, seed: 6)
        let epsilon: Float = norm == .linf ? 0.2 : 1.5
        for attack in [try FAB(norm: norm, epsilon: epsilon, steps: 30, targetClasses: 3) as any Attack,
                       try AutoAttackSuite(norm: norm, epsilon: epsilon, squareQueries: 100)] {
            let outcome = try AttackRunner(classifier: model, batchSize: 16).run(attack, on: data, seed: 1)
            #expect(outcome.adversarial.scalars.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(attack)")
            #expect(outcome.perturbationNorms.allSatisfy { $0 <= epsilon + 1e-6 }, "\(attack)")
            #expect(outcome.robustCorrect < outcome.cleanCorrect, "\(attack) fooled nothing")
        }
    }

    @Test("the suite is at least as strong as each of its attacks alone, and records which stage fooled each input")
    func suite() throws {
        let model = Fixture.model(seed: 8, spec: "25-16-5")
        let data = Fixture.data(count: 60, features: 25, seed: 9)
        let runner = AttackRunner(classifier: model, batchSize: 30)
        let suite = try runner.run(try AutoAttackSuite(epsilon: 0.05, squareQueries: 200), on: data, seed: 2)
        let apgd = try runner.run(try APGD(epsilon: 0.05), on: data, seed: 2)
        #expect(suite.robustCorrect <= apgd.robustCorrect + 1)
        let stages = try #require(suite.suiteStages)
        for i in 0..<data.count {
            #expect((stages[i] == -1) == suite.robust[i], "row \(i): stage \(stages[i]), robust \(suite.robust[i])")
        }
        #expect(throws: AttackError.self) {
            try runner.run(try AutoAttackSuite(epsilon: 0.05), on: data, goal: AttackGoal(targets: .random), seed: 0)
        }
    }
}

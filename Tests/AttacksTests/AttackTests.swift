import Foundation
import Testing
import Attacks
import NeuralNet
import TensorCore
import _TestSupport

/// Small random models and inputs for property tests.
enum Fixture {
    static func model(seed: UInt64, spec: String = "20-16-5") -> Sequential {
        Sequential(spec: try! ModelSpec.parse(spec), seed: seed)
    }

    /// Inputs in [0, 1] with some coordinates exactly 0 or 1 (where clamping matters).
    static func data(count: Int, features: Int = 20, classes: Int = 5, seed: UInt64) -> LabeledData {
        var generator = RandomGenerator(seed: seed)
        let scalars = (0..<(count * features)).map { _ -> Float in
            let u = generator.nextUnitFloat()
            return u < 0.15 ? 0 : (u > 0.85 ? 1 : generator.nextUnitFloat())
        }
        let labels = (0..<count).map { _ in generator.nextInt(below: classes) }
        return LabeledData(features: Tensor(shape: [count, features], scalars: scalars), labels: labels, classCount: classes)
    }

    static func attacks(epsilon: Float, loss: AttackLoss) throws -> [any Attack] {
        [try FGSM(norm: .linf, epsilon: epsilon, loss: loss), try FGSM(norm: .l2, epsilon: epsilon * 5, loss: loss),
         try PGD(norm: .linf, epsilon: epsilon, steps: 5, restarts: 2, loss: loss),
         try PGD(norm: .l2, epsilon: epsilon * 5, steps: 5, restarts: 2, loss: loss),
         try MIFGSM(norm: .linf, epsilon: epsilon, steps: 5, loss: loss), try MIFGSM(norm: .l2, epsilon: epsilon * 5, steps: 5, loss: loss)]
    }
}

@Suite("Attack invariants and equivalences")
struct AttackTests {
    @Test("every attack stays inside the ε-ball and [0, 1]", arguments: AttackLoss.allCases, [false, true])
    func invariants(loss: AttackLoss, targeted: Bool) throws {
        for seed in UInt64(0)..<4 {
            let model = Fixture.model(seed: seed)
            let data = Fixture.data(count: 37, seed: seed + 10)
            for epsilon in [Float(0.01), 0.1, 0.3] {
                for attack in try Fixture.attacks(epsilon: epsilon, loss: loss) {
                    let outcome = try AttackRunner(classifier: model, batchSize: 16)
                        .run(attack, on: data, goal: AttackGoal(targets: targeted ? .random : nil), seed: seed)
                    #expect(outcome.adversarial.scalars.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(attack)")
                    for i in 0..<data.count {
                        let a = Array(outcome.adversarial.scalars[(i * 20)..<((i + 1) * 20)])
                        let x = Array(data.features.scalars[(i * 20)..<((i + 1) * 20)])
                        let delta = zip(a, x).map { $0 - $1 }
                        let norm = attack.norm == .linf ? delta.map(abs).max()! : delta.map { $0 * $0 }.reduce(0, +).squareRoot()
                        #expect(norm <= attack.epsilon + 1e-6, "\(attack) row \(i): ‖δ‖ = \(norm)")
                        #expect(abs(norm - outcome.perturbationNorms[i]) < 1e-5)
                    }
                }
            }
        }
    }

    @Test("FGSM equals a hand-computed step on a one-layer model")
    func fgsmByHand() throws {
        // logits z = W·x + b with W (2×3); ∂CE/∂x = Wᵀ·(softmax(z) − onehot(y)).
        let model = Sequential(spec: try ModelSpec(inputWidth: 3, layers: [.dense(2)]))
        let w: [Float] = [0.5, -1, 2, 1.5, 0.25, -0.5], b: [Float] = [0.1, -0.2]
        for (i, v) in (w + b).enumerated() { model.parameters.pointer[i] = v }
        let x: [Float] = [0.2, 0.95, 0.5], y = 0
        let z = (0..<2).map { r in Double(b[r]) + (0..<3).reduce(0.0) { $0 + Double(w[r * 3 + $1]) * Double(x[$1]) } }
        let p = z.map { exp($0) / z.map(exp).reduce(0, +) }
        let gradient = (0..<3).map { j in (0..<2).reduce(0.0) { $0 + Double(w[$1 * 3 + j]) * (p[$1] - ($1 == y ? 1 : 0)) } }
        let expected = (0..<3).map { j in Float(min(max(Double(x[j]) + 0.1 * (gradient[j] > 0 ? 1 : -1), 0), 1)) }
        let data = LabeledData(features: Tensor(shape: [1, 3], scalars: x), labels: [y], classCount: 2)
        let outcome = try AttackRunner(classifier: model).run(try FGSM(epsilon: 0.1), on: data, seed: 0)
        #expect(TestSupport.close(outcome.adversarial.scalars, expected, relative: 1e-6, absolute: 1e-6))
        #expect(outcome.adversarial.scalars[1] == 1)  // 0.95 + 0.1 clamped
    }

    @Test("PGD with one step, no random start and α = ε equals FGSM", arguments: Norm.allCases, AttackLoss.allCases)
    func pgdOneStepIsFGSM(norm: Norm, loss: AttackLoss) throws {
        let model = Fixture.model(seed: 3)
        let data = Fixture.data(count: 50, seed: 4)
        let epsilon: Float = norm == .linf ? 0.1 : 0.5
        for targets in [nil, TargetSelection.random] {
            let fgsm = try AttackRunner(classifier: model).run(try FGSM(norm: norm, epsilon: epsilon, loss: loss), on: data, goal: AttackGoal(targets: targets), seed: 1)
            let pgd = try AttackRunner(classifier: model).run(
                try PGD(norm: norm, epsilon: epsilon, stepSize: epsilon, steps: 1, randomStart: false, loss: loss),
                on: data, goal: AttackGoal(targets: targets), seed: 1)
            #expect(pgd.adversarial.scalars == fgsm.adversarial.scalars)
        }
    }

    @Test("MI-FGSM with one step of size ε and no momentum is FGSM", arguments: Norm.allCases)
    func miFGSMOneStepIsFGSM(norm: Norm) throws {
        let model = Fixture.model(seed: 12)
        let data = Fixture.data(count: 30, seed: 13)
        let fgsm = try AttackRunner(classifier: model).run(try FGSM(norm: norm, epsilon: 0.1), on: data, seed: 0)
        let mifgsm = try AttackRunner(classifier: model).run(try MIFGSM(norm: norm, epsilon: 0.1, stepSize: 0.1, steps: 1, decay: 0,
                                                                        stopAtFirstSuccess: false), on: data, seed: 0)
        #expect(TestSupport.close(fgsm.adversarial.scalars, mifgsm.adversarial.scalars, relative: 1e-5, absolute: 1e-6))
    }

    @Test("targeted attacks raise the target's score", arguments: [false, true])
    func targetedRaisesTarget(iterative: Bool) throws {
        let model = Fixture.model(seed: 5)
        let data = Fixture.data(count: 60, seed: 6)
        let attack: any Attack = iterative ? try PGD(epsilon: 0.2, steps: 10) : try FGSM(epsilon: 0.2)
        let outcome = try AttackRunner(classifier: model).run(attack, on: data, goal: AttackGoal(targets: .random), seed: 2)
        let targets = try #require(outcome.targets)
        func targetProbability(_ features: Tensor) -> [Double] {
            var features = features
            return features.withMatrix { x in
                let logits = model.forward(x, mode: .evaluation)
                return (0..<x.rows).map { i in
                    let z = (0..<5).map { Double(logits[i, $0]) }
                    return exp(z[targets[i]]) / z.map(exp).reduce(0, +)
                }
            }
        }
        let before = targetProbability(data.features), after = targetProbability(outcome.adversarial)
        let raised = zip(before, after).filter { $1 > $0 }.count
        #expect(raised >= 57, "target probability rose for \(raised) of 60 inputs")
        #expect(after.reduce(0, +) > before.reduce(0, +) + 5)
    }

    @Test("restarts keep every input the first restart fooled and may fool more")
    func restarts() throws {
        let model = Fixture.model(seed: 7)
        let data = Fixture.data(count: 80, seed: 8)
        let one = try AttackRunner(classifier: model).run(try PGD(epsilon: 0.05, steps: 3, restarts: 1), on: data, seed: 3)
        let five = try AttackRunner(classifier: model).run(try PGD(epsilon: 0.05, steps: 3, restarts: 5), on: data, seed: 3)
        for (a, b) in zip(one.fooled, five.fooled) where a { #expect(b) }
        #expect(five.adversarialCorrect <= one.adversarialCorrect)
    }

    @Test("same seed, same adversarial examples, whatever the thread count")
    func determinism() throws {
        let data = Fixture.data(count: 64, seed: 9)
        var results: [[Float]] = []
        for threads in [1, 2] {
            let model = Fixture.model(seed: 1)
            model.pool = WorkerPool(threadCount: threads)
            results.append(try AttackRunner(classifier: model, batchSize: 20).run(try PGD(norm: .l2, epsilon: 0.5), on: data, seed: 4).adversarial.scalars)
        }
        #expect(results[0] == results[1])
    }

    @Test("invalid parameters are rejected with the value")
    func validation() {
        #expect(throws: AttackError.invalidParameter(name: "epsilon", value: "0.0", requirement: "must be a positive number")) { try FGSM(epsilon: 0) }
        #expect(throws: AttackError.self) { try PGD(epsilon: 0.1, steps: 0) }
        #expect(throws: AttackError.self) { try PGD(epsilon: 0.1, stepSize: -1) }
        #expect(throws: AttackError.self) { try PGD(epsilon: .nan) }
        let model = Fixture.model(seed: 0, spec: "20-8-2")
        let data = Fixture.data(count: 4, classes: 2, seed: 1)
        #expect(throws: AttackError.self) { try AttackRunner(classifier: model).run(try FGSM(epsilon: 0.1, loss: .dlr), on: data, seed: 0) }
        #expect(throws: AttackError.self) { try AttackRunner(classifier: model).run(try FGSM(epsilon: 0.1), on: data, goal: AttackGoal(targets: .fixed(7)), seed: 0) }
    }
}

@Suite("Attack losses and step kernels")
struct AttackLossTests {
    @Test("∂J/∂logits matches finite differences", arguments: AttackLoss.allCases, [false, true])
    func gradients(loss: AttackLoss, targeted: Bool) {
        var logits = TestSupport.randomTensor(rows: 6, columns: 7, seed: 12, in: -3, 3)
        let labels = [0, 3, 6, 2, 5, 1], targets = [4, 0, 2, 6, 1, 3]
        func objective(_ z: inout Tensor) -> [Float] {
            var values = [Float](repeating: 0, count: 6)
            z.withMatrix { m in
                labels.withUnsafeBufferPointer { l in targets.withUnsafeBufferPointer { t in
                    loss.evaluate(logits: m, labels: l.baseAddress!, targets: targeted ? t.baseAddress! : nil,
                                  objective: &values, gradient: nil)
                } }
            }
            return values
        }
        var analytic = Tensor(zeros: [6, 7])
        var values = [Float](repeating: 0, count: 6)
        logits.withMatrix { m in analytic.withMatrix { g in
            labels.withUnsafeBufferPointer { l in targets.withUnsafeBufferPointer { t in
                loss.evaluate(logits: m, labels: l.baseAddress!, targets: targeted ? t.baseAddress! : nil, objective: &values, gradient: g)
            } }
        } }
        #expect(values == objective(&logits))
        let h: Float = 1e-3
        for i in 0..<6 {
            for j in 0..<7 {
                var plus = logits, minus = logits
                plus[i, j] += h
                minus[i, j] -= h
                let numeric = (objective(&plus)[i] - objective(&minus)[i]) / (2 * h)
                #expect(abs(numeric - analytic[i, j]) < 2e-3 + 2e-2 * abs(numeric), "row \(i) logit \(j)")
            }
        }
    }

    @Test("untargeted DLR is constant exactly where the true class ranks third")
    func dlrConstantRegion() {
        var logits: [Float] = [0.5, 2.0, -1.0, 1.25, 0.75]  // order: 1, 3, 4, 0, 2
        let third = logits.withUnsafeMutableBufferPointer { z in (0..<5).filter { AttackLoss.dlrIsConstant(logits: z.baseAddress!, classes: 5, label: $0) } }
        #expect(third == [4])
        var objective: Float = 0
        logits.withUnsafeMutableBufferPointer { z in
            [4].withUnsafeBufferPointer { y in
                AttackLoss.dlr.evaluate(logits: MatrixRef(z.baseAddress!, rows: 1, columns: 5), labels: y.baseAddress!, targets: nil,
                                        objective: &objective, gradient: nil)
            }
        }
        #expect(abs(objective - 1) < 1e-6)
        var two: [Float] = [1, 2]
        #expect(!AttackLoss.dlrIsConstant(logits: &two, classes: 2, label: 0))
    }

    @Test("L∞ and L2 step kernels match the textbook steps", arguments: [1, 7, 33, 784])
    func stepKernels(columns: Int) {
        let clean = TestSupport.randomValues(2 * columns, seed: 1, in: 0, 1)
        let start = zip(clean, TestSupport.randomValues(2 * columns, seed: 2, in: -0.05, 0.05)).map { min(max($0 + $1, 0), 1) }
        var g = TestSupport.randomValues(2 * columns, seed: 3)
        g[0] = 0
        for (alpha, epsilon) in [(Float(0.01), Float(0.03)), (0.5, 0.1)] {
            var x = Tensor(shape: [2, columns], scalars: start), c = Tensor(shape: [2, columns], scalars: clean)
            var gradient = Tensor(shape: [2, columns], scalars: g)
            x.withMatrix { xm in c.withMatrix { cm in gradient.withMatrix { Kernels.linfStep(xm, clean: cm, gradient: $0, stepSize: alpha, epsilon: epsilon) } } }
            #expect(TestSupport.close(x.scalars, Reference.linfStep(x: start, clean: clean, gradient: g, stepSize: alpha, epsilon: epsilon), relative: 1e-6, absolute: 1e-6))

            x = Tensor(shape: [2, columns], scalars: start)
            x.withMatrix { xm in c.withMatrix { cm in gradient.withMatrix { Kernels.l2Step(xm, clean: cm, gradient: $0, stepSize: alpha, epsilon: epsilon) } } }
            var expected: [Float] = []
            for r in 0..<2 {
                let range = (r * columns)..<((r + 1) * columns)
                expected += Reference.l2Step(x: Array(start[range]), clean: Array(clean[range]), gradient: Array(g[range]), stepSize: alpha, epsilon: epsilon)
            }
            #expect(TestSupport.close(x.scalars, expected, relative: 1e-4, absolute: 1e-5))
        }
    }
}

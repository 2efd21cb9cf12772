import Foundation
import Testing
@testable import Attacks
import NeuralNet
import TensorCore
import _TestSupport

@Suite("C&W-L2 and DDN: minimum-norm attacks")
struct MinimumNormTests {
    static let attacks: [String] = ["cw", "ddn"]

    static func attack(_ name: String, epsilon: Float, steps: Int = 200, confidence: Float = 0) throws -> any MinimumNormAttack {
        name == "cw" ? try CarliniWagner(epsilon: epsilon, steps: steps, binarySearchSteps: 6, learningRate: 0.05, confidence: confidence,
                                         initialConst: 0.1)
            : try DDN(epsilon: epsilon, steps: steps)
    }

    /// A linear model 20 → 5 and inputs near the middle of the box, all classified correctly: the
    /// exact minimal L2 distance to another class is the distance to the nearest boundary
    /// hyperplane, min_k |z_k − z_y| / ‖w_k − w_y‖.
    static func linearProblem() throws -> (model: Sequential, data: LabeledData, distances: [Float], logits: ([Float]) -> [Float]) {
        let model = Sequential(spec: try ModelSpec.parse("20-5"), seed: 3)
        var generator = RandomGenerator(seed: 4)
        let scalars = (0..<(30 * 20)).map { _ in generator.nextFloat(in: 0.4, 0.6) }
        let features = Tensor(shape: [30, 20], scalars: scalars)
        let labels = model.predictions(on: features)
        let w = (0..<100).map { model.parameters.pointer[$0] }, b = (100..<105).map { model.parameters.pointer[$0] }
        let logits = { (x: [Float]) in (0..<5).map { k in b[k] + (0..<20).reduce(Float(0)) { $0 + w[k * 20 + $1] * x[$1] } } }
        let distances = (0..<30).map { i -> Float in
            let z = logits(Array(scalars[(i * 20)..<((i + 1) * 20)]))
            let y = labels[i]
            return (0..<5).filter { $0 != y }.map { k -> Float in
                let normal = (0..<20).map { w[k * 20 + $0] - w[y * 20 + $0] }
                return abs(z[k] - z[y]) / normal.map { $0 * $0 }.reduce(0, +).squareRoot()
            }.min()!
        }
        return (model, LabeledData(features: features, labels: labels, classCount: 5), distances, logits)
    }

    /// DDN follows the cross-entropy gradient, which on a boundary mixes the other classes' normals,
    /// so it stops a few percent short of the exact minimum (foolbox's DDN gives the same norms).
    @Test("on a linear model the minimal norm found is at least the exact distance and within a few percent of it", arguments: attacks)
    func linearModel(name: String) throws {
        let (model, data, distances, _) = try Self.linearProblem()
        let outcome = try AttackRunner(classifier: model, batchSize: 16).run(try Self.attack(name, epsilon: 100, steps: 300), on: data, seed: 0)
        let norms = try #require(outcome.minimalNorms)
        var close = 0
        for i in 0..<data.count {
            #expect(norms[i] >= distances[i] * 0.999, "row \(i): \(norms[i]) is below the exact distance \(distances[i])")
            if norms[i] <= distances[i] * (name == "cw" ? 1.03 : 1.08) + 1e-3 { close += 1 }
        }
        // Some nearest boundary points lie outside [0, 1]; those inputs' minimal norms are larger.
        #expect(close >= 25, "\(close) of 30 close to the exact distance: \(zip(norms, distances).map { "\($0)/\($1)" })")
    }

    @Test("inside the ε-ball and [0, 1]; returned examples within ε are misclassified; accuracy at ε follows from the minimal norms",
          arguments: attacks)
    func invariants(name: String) throws {
        let model = Fixture.model(seed: 2)
        let data = Fixture.data(count: 40, seed: 3)
        let epsilon: Float = 0.5
        let outcome = try AttackRunner(classifier: model, batchSize: 16).run(try Self.attack(name, epsilon: epsilon), on: data, seed: 0)
        #expect(outcome.adversarial.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
        #expect(outcome.perturbationNorms.allSatisfy { $0 <= epsilon + 1e-6 })
        let norms = try #require(outcome.minimalNorms)
        for i in 0..<data.count where outcome.cleanPredictions[i] == data.labels[i] && norms[i] <= epsilon {
            #expect(outcome.adversarialPredictions[i] != data.labels[i], "row \(i) at minimal norm \(norms[i]) is not misclassified")
        }
        let summary = try #require(outcome.minimalNormSummary(epsilons: [epsilon / 2, epsilon, epsilon * 2]))
        #expect(zip(summary.curve, summary.curve.dropFirst()).allSatisfy { $0.accuracy.value >= $1.accuracy.value })
        #expect(summary.curve[1].accuracy.value == outcome.robustAccuracy.value)
        #expect(norms.filter(\.isFinite).count >= 30, "most inputs fooled at some norm")
    }

    @Test("the same seed gives the same minimal norms", arguments: attacks)
    func reproducible(name: String) throws {
        let model = Fixture.model(seed: 5)
        let data = Fixture.data(count: 24, seed: 6)
        let runs = try (0..<2).map { _ in
            try AttackRunner(classifier: model, batchSize: 12).run(try Self.attack(name, epsilon: 0.5, steps: 50), on: data, seed: 9).minimalNorms
        }
        #expect(runs[0] == runs[1])
    }

    @Test("C&W with confidence κ returns examples whose wrong class leads by at least κ")
    func confidence() throws {
        let (model, data, _, logits) = try Self.linearProblem()
        let kappa: Float = 2
        let outcome = try AttackRunner(classifier: model, batchSize: 16).run(try Self.attack("cw", epsilon: 100, steps: 300, confidence: kappa),
                                                                             on: data, seed: 0)
        let norms = try #require(outcome.minimalNorms)
        var checked = 0
        for i in 0..<data.count where norms[i].isFinite && norms[i] > 0 {
            let row = logits(Array(outcome.adversarial.scalars[(i * 20)..<((i + 1) * 20)])), y = data.labels[i]
            let other = (0..<5).filter { $0 != y }.map { row[$0] }.max()!
            #expect(other - row[y] >= kappa * 0.999, "row \(i): margin \(other - row[y])")
            checked += 1
        }
        #expect(checked >= 20)
    }

    @Test("C&W's and DDN's parameters are checked; they are L2 attacks")
    func parameters() {
        #expect(throws: AttackError.self) { try CarliniWagner(norm: .linf, epsilon: 1) }
        #expect(throws: AttackError.self) { try DDN(norm: .linf, epsilon: 1) }
        #expect(throws: AttackError.self) { try CarliniWagner(epsilon: 1, binarySearchSteps: 0) }
        #expect(throws: AttackError.self) { try CarliniWagner(epsilon: 1, confidence: -1) }
        #expect(throws: AttackError.self) { try CarliniWagner(epsilon: 1, initialConst: 0) }
        #expect(throws: AttackError.self) { try DDN(epsilon: 1, gamma: 1) }
        #expect(throws: AttackError.self) { try DDN(epsilon: 1, initialEpsilon: .nan) }
        #expect(throws: AttackError.self) { try CarliniWagner(epsilon: 1).validate(goal: AttackGoal(targets: .random), classes: 10) }
    }

    @Test("C&W's change of variables and its gradient kernel match a Double reference")
    func kernels() {
        var generator = RandomGenerator(seed: 11)
        let count = 1003
        let w = (0..<count).map { i in i < 10 ? Float(i * 10 - 50) : generator.nextFloat(in: -9, 9) }
        var x = [Float](repeating: 0, count: count)
        Kernels.tanhBox(w, into: &x, count: count)
        for i in 0..<count {
            let expected = (Foundation.tanh(Double(w[i])) + 1) / 2
            #expect(abs(Double(x[i]) - expected) <= 2e-7 + 1e-6 * expected, "w \(w[i]): \(x[i]) vs \(expected)")
        }
        let reference = (0..<count).map { _ in generator.nextFloat(in: 0, 1) }
        let g = (0..<count).map { _ in generator.nextFloat(in: -1, 1) }
        var out = [Float](repeating: 0, count: count)
        let squares = Kernels.carliniWagnerGradient(x: x, reference: reference, gradient: g, into: &out, count: count)
        var expectedSquares = 0.0
        for i in 0..<count {
            let (xi, ri) = (Double(x[i]), Double(reference[i]))
            expectedSquares += (xi - ri) * (xi - ri)
            let expected = (2 * (xi - ri) + Double(g[i])) * 2 * xi * (1 - xi)
            #expect(abs(Double(out[i]) - expected) <= 1e-6 * max(1, abs(expected)))
        }
        #expect(abs(Double(squares) - expectedSquares) <= 1e-5 * expectedSquares)
    }
}

@Suite("κ-margin examples")
struct ReturnMarginTests {
    @Test("with --return-margin κ, PGD and MI-FGSM return each input's first iterate κ past the boundary, not the highest-loss one",
          arguments: ["pgd", "mi-fgsm"])
    func firstIterateWithMargin(name: String) throws {
        let (model, data, _, logits) = try MinimumNormTests.linearProblem()
        let kappa: Float = 1
        let spec: AttackSpec = name == "pgd" ? .pgd(try PGD.Parameters(steps: 40, stepSize: .relative(0.05)))
            : .miFGSM(try MIFGSM.Parameters(steps: 40))
        func margins(_ attack: any Attack) throws -> [Float] {
            let outcome = try AttackRunner(classifier: model, batchSize: 16).run(attack, on: data, seed: 0)
            return (0..<data.count).map { i in
                let z = logits(Array(outcome.adversarial.scalars[(i * 20)..<((i + 1) * 20)])), y = data.labels[i]
                return (0..<5).filter { $0 != y }.map { z[$0] }.max()! - z[y]
            }
        }
        let strongest = try margins(try spec.makeAttack(epsilon: 0.5, purpose: .examples))
        let withKappa = try margins(try spec.makeAttack(epsilon: 0.5, purpose: .examples, returnMargin: kappa))
        // Rows whose strongest iterate reaches κ get an iterate that reaches κ too, but an earlier,
        // smaller one (the linear model's margin grows along the path).
        var compared = 0
        for i in 0..<data.count where strongest[i] >= kappa {
            #expect(withKappa[i] >= kappa - 1e-4, "row \(i): \(withKappa[i])")
            #expect(withKappa[i] <= strongest[i] + 1e-4)
            compared += 1
        }
        #expect(compared >= 20)
        #expect(withKappa.reduce(0, +) < strongest.reduce(0, +))
        #expect(throws: AttackError.self) { try spec.makeAttack(epsilon: 0.5, purpose: .evaluation, returnMargin: kappa) }
        #expect(throws: AttackError.self) { try AttackSpec.fgsm(FGSM.Parameters()).makeAttack(epsilon: 0.5, purpose: .examples, returnMargin: kappa) }
    }
}

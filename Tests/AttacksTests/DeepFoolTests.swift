import Foundation
import Testing
@testable import Attacks
import NeuralNet
import TensorCore
import _TestSupport

@Suite("DeepFool and minimal norms")
struct DeepFoolTests {
    @Test("on a linear model DeepFool's L2 step reaches the nearest boundary: the minimal norm is the exact distance (× overshoot)")
    func linearModel() throws {
        let model = Sequential(spec: try ModelSpec.parse("20-5"), seed: 3)
        var generator = RandomGenerator(seed: 4)
        let scalars = (0..<(30 * 20)).map { _ in generator.nextFloat(in: 0.45, 0.55) }
        let features = Tensor(shape: [30, 20], scalars: scalars)
        let labels = model.predictions(on: features)  // every input correct clean
        let data = LabeledData(features: features, labels: labels, classCount: 5)
        let attack = try DeepFool(norm: .l2, epsilon: 100, steps: 1, overshoot: 0.02)
        let outcome = try AttackRunner(classifier: model).run(attack, on: data, seed: 0)
        let norms = try #require(outcome.minimalNorms)
        // The exact distance to the nearest boundary of the linear model (W is (5, 20), row-major).
        let w = (0..<100).map { model.parameters.pointer[$0] }, b = (100..<105).map { model.parameters.pointer[$0] }
        var checked = 0
        for i in 0..<data.count {
            let x = Array(scalars[(i * 20)..<((i + 1) * 20)])
            let z = (0..<5).map { k in b[k] + (0..<20).reduce(Float(0)) { $0 + w[k * 20 + $1] * x[$1] } }
            let y = labels[i]
            let distance = (0..<5).filter { $0 != y }.map { k -> Float in
                let normal = (0..<20).map { w[k * 20 + $0] - w[y * 20 + $0] }
                return abs(z[k] - z[y]) / normal.map { $0 * $0 }.reduce(0, +).squareRoot()
            }.min()!
            let adversarial = Array(outcome.adversarial.scalars[(i * 20)..<((i + 1) * 20)])
            guard norms[i].isFinite, adversarial.allSatisfy({ $0 > 0 && $0 < 1 }) else { continue }  // clamping changes the geometry
            #expect(norms[i] >= distance * 0.999 && norms[i] <= distance * 1.03 + 1e-3, "row \(i): \(norms[i]) vs \(distance)")
            checked += 1
        }
        #expect(checked >= 10)
    }

    @Test("DeepFool stays inside the ε-ball and [0, 1]; robust accuracy at ε follows from the minimal norms", arguments: Norm.allCases)
    func invariants(norm: Norm) throws {
        let model = Fixture.model(seed: 2)
        let data = Fixture.data(count: 40, seed: 3)
        let epsilon: Float = norm == .linf ? 0.1 : 0.5
        let outcome = try AttackRunner(classifier: model, batchSize: 16).run(try DeepFool(norm: norm, epsilon: epsilon), on: data, seed: 0)
        #expect(outcome.adversarial.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
        #expect(outcome.perturbationNorms.allSatisfy { $0 <= epsilon + 1e-6 })
        let summary = try #require(outcome.minimalNormSummary(epsilons: [epsilon / 2, epsilon, epsilon * 2]))
        #expect(zip(summary.curve, summary.curve.dropFirst()).allSatisfy { $0.accuracy.value >= $1.accuracy.value })
        #expect(abs(summary.curve[1].accuracy.value - outcome.robustAccuracy.value) <= 1.0 / 40 + 1e-9)
    }
}

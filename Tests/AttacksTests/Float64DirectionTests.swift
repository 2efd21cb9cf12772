import Datasets
import Foundation
import Testing
import Attacks
import NeuralNet
import TensorCore
import _TestSupport

/// Float32 attack directions against a Float64 computation on the same weights (Carlini et al.,
/// 2019, §4: numerical problems silently weaken attacks). The shipped standard model is confident
/// on most test images, where ∂CE/∂z_y = p_y − 1 cancels to 0 in Float32 if computed naively.
@Suite("Attack directions against a Float64 reference")
struct Float64DirectionTests {
    static func standardModel() throws -> Sequential {
        try ModelFile.load(contentsOf: TestSupport.repositoryRoot + "/models/mlp-standard.safetensors").network
    }

    static func sample(_ limit: Int) throws -> LabeledData {
        try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .test, limit: limit)
    }

    @Test("on confident examples the Float32 cross-entropy gradient has the Float64 signs")
    func confidentExamples() throws {
        let network = try Self.standardModel()
        let reference = try #require(Float64ReferenceMLP(network))
        let data = try Self.sample(500)
        let (n, d) = (data.count, data.featureCount)
        network.reserve(rows: n, shards: 1)
        var objective = [Float](repeating: 0, count: n)
        var predictions = [Int](repeating: 0, count: n)
        var confident = 0, compared = 0, agreeing = 0
        try data.features.withReadOnlyMatrix { x in
            let gradient = try #require(network.attackObjective(x, loss: .crossEntropy, labels: data.labels, targets: nil, shard: 0,
                                                                objective: &objective, predictions: &predictions, withGradient: true))
            for i in 0..<n {
                let input = (0..<d).map { Double(x.row(i)[$0]) }
                let logits = reference.forward(input).logits
                let others = logits.indices.filter { $0 != data.labels[i] }.map { logits[$0] - logits[data.labels[i]] }
                // Confident: 1 − p_y < 1e-4, where p_y − 1 computed in Float32 keeps at most three
                // significant digits (none below 6e-8).
                guard others.map({ Foundation.exp($0) }).reduce(0, +) < 1e-4 else { continue }
                confident += 1
                let exact = reference.crossEntropyInputGradient(input, label: data.labels[i])
                let scale = exact.map(abs).max() ?? 0
                for j in 0..<d where abs(exact[j]) > 1e-3 * scale {
                    compared += 1
                    if (gradient.row(i)[j] > 0) == (exact[j] > 0) { agreeing += 1 }
                }
            }
        }
        #expect(confident >= 50, "the sample should have confident examples (found \(confident))")
        #expect(Double(agreeing) >= 0.999 * Double(compared), "\(agreeing) of \(compared) gradient signs agree with Float64")
    }

    @Test("FGSM on the shipped standard model agrees with Float64 within 0.2 pp")
    func fgsmAccuracy() throws {
        let network = try Self.standardModel()
        let reference = try #require(Float64ReferenceMLP(network))
        let data = try Self.sample(1000)
        let epsilon: Float = 0.1
        let outcome = try AttackRunner(classifier: network).run(try FGSM(epsilon: epsilon), on: data, seed: 0)
        var correct64 = 0
        let d = data.featureCount
        for i in 0..<data.count {
            let input = (0..<d).map { Double(data.features.scalars[i * d + $0]) }
            let gradient = reference.crossEntropyInputGradient(input, label: data.labels[i])
            let adversarial = zip(input, gradient).map { min(max($0 + Double(epsilon) * ($1 > 0 ? 1 : ($1 < 0 ? -1 : 0)), 0), 1) }
            if reference.prediction(adversarial) == data.labels[i] { correct64 += 1 }
        }
        let float32 = outcome.adversarialAccuracy.value, float64 = Double(correct64) / Double(data.count)
        #expect(abs(float32 - float64) <= 0.002, "FGSM accuracy \(float32) in Float32, \(float64) in Float64")
    }
}

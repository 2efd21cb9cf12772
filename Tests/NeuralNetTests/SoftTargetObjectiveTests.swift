import Foundation
import NeuralNet
import TensorCore
import Testing
import _TestSupport

@Suite("Soft-target cross-entropy")
struct SoftTargetObjectiveTests {
    @Test("loss and parameter gradients match central differences; each example meets its own target row")
    func gradients() throws {
        let network = Sequential(spec: try ModelSpec(inputWidth: 6, layers: [.dense(5), .tanh, .dense(3)]), seed: 2)
        let targets = Tensor(shape: [4, 3], scalars: [0.2, 0.5, 0.3, 1, 0, 0, 0.1, 0.1, 0.8, 0.25, 0.25, 0.5])
        let objective = try SoftTargetObjective(targets: targets)
        objective.prepare(network: network, shards: 1, rows: 4, features: 6)
        network.reserve(rows: 4, shards: 1)
        var input = TestSupport.randomTensor(rows: 4, columns: 6, seed: 3, in: 0, 1)
        let order = [2, 0, 3, 1]  // the batch holds examples in another order than the targets
        var generator = RandomGenerator(seed: 1)
        var predictions = [Int](repeating: 0, count: 4)

        /// The loss from the network's logits in Float64: −Σ qⱼ log softmax(z)ⱼ.
        func reference(_ x: inout Tensor) -> Double {
            x.withMatrix { m in
                let z = network.forward(m, mode: .training, shard: 0)
                var total = 0.0
                for r in 0..<4 {
                    let logits = (0..<3).map { Double(z[r, $0]) }
                    let lse = log(logits.reduce(0) { $0 + exp($1) })
                    for j in 0..<3 { total -= Double(targets.scalars[order[r] * 3 + j]) * (logits[j] - lse) }
                }
                return total
            }
        }
        let loss = try input.withMatrix { m in
            try order.withUnsafeBufferPointer { labels in
                try predictions.withUnsafeMutableBufferPointer { p in
                    try objective.lossAndGradients(m, labels: labels.baseAddress!, network: network, shard: 0, gradientScale: 1,
                                                   predictions: p.baseAddress!, generator: &generator)
                }
            }
        }
        let analytic = network.gradients.array
        #expect(abs(loss - reference(&input)) < 1e-5)
        let h: Float = 1e-3
        var numeric: [Float] = []
        for j in 0..<network.parameterCount {
            let saved = network.parameters.pointer[j]
            network.parameters.pointer[j] = saved + h
            let plus = reference(&input)
            network.parameters.pointer[j] = saved - h
            let minus = reference(&input)
            network.parameters.pointer[j] = saved
            numeric.append(Float((plus - minus) / Double(2 * h)))
        }
        #expect(TestSupport.worstError(analytic, numeric, relative: 2e-2, absolute: 2e-3) <= 1)
        #expect(predictions.allSatisfy { $0 == -1 || order.contains($0) })
    }

    @Test("rows are renormalised; a negative, non-finite or all-zero row is refused")
    func validation() throws {
        let objective = try SoftTargetObjective(targets: Tensor(shape: [1, 2], scalars: [2, 6]))
        #expect(objective.targets.scalars == [0.25, 0.75])
        for bad: [Float] in [[-0.1, 1.1], [.nan, 1], [0, 0], [.infinity, 0]] {
            #expect(throws: NeuralNetError.self) { try SoftTargetObjective(targets: Tensor(shape: [1, 2], scalars: bad)) }
        }
        #expect(try SoftTargetObjective(targets: Tensor(shape: [1, 2], scalars: [1, 1])).record
                != SoftTargetObjective(targets: Tensor(shape: [1, 2], scalars: [1, 2])).record)
    }
}

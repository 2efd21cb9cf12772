import Testing
import NeuralNet
import TensorCore
import _TestSupport

/// Finite-difference checks of every layer and the loss, for parameters and for the input.
///
/// Each network is dense(6→5) → LAYER → dense(5→3) with a label-smoothed softmax cross-entropy
/// (summed over the batch). Central differences with h = 1e-3 in Float32; inputs are redrawn until no
/// pre-activation of a ReLU-type layer lies within 0.02 of its kink, so a perturbation cannot cross it.
@Suite("Finite-difference gradient checks")
struct GradientCheckTests {
    static let layers: [(String, LayerSpec)] = [
        ("relu", .relu), ("leaky_relu", .leakyReLU(slope: 0.1)), ("tanh", .tanh), ("sigmoid", .sigmoid),
        ("dropout", .dropout(probability: 0.3)),
    ]

    @Test("parameter and input gradients", arguments: layers.map(\.0))
    func layerGradients(name: String) throws {
        let layer = Self.layers.first { $0.0 == name }!.1
        let spec = try ModelSpec(inputWidth: 6, layers: [.dense(5), layer, .dense(3)])
        let network = Sequential(spec: spec, seed: 1)
        for i in 0..<network.parameterCount { network.parameters.pointer[i] += 0.05 * Float(i % 7) - 0.15 }
        let labels = [0, 2, 1, 2]
        let dropoutSeed = RandomGenerator(seed: 99, stream: .dropout)

        // Inputs away from kinks.
        var input = Tensor(zeros: [4, 6])
        for attempt in 0..<100 {
            input = TestSupport.randomTensor(rows: 4, columns: 6, seed: UInt64(attempt), in: -1, 1)
            network.setDropoutGenerator(dropoutSeed)
            input.withMatrix { _ = network.forward($0, mode: .training) }
            let pre = network.layerOutput(0).array
            if pre.allSatisfy({ abs($0) > 0.02 }) { break }
        }

        func loss(_ x: Tensor) -> Double {
            var x = x
            network.setDropoutGenerator(dropoutSeed)
            return x.withMatrix { m in
                let logits = network.forward(m, mode: .training)
                return labels.withUnsafeBufferPointer {
                    SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: $0.baseAddress!, labelSmoothing: 0.1)
                }
            }
        }

        // Analytic gradients.
        network.setDropoutGenerator(dropoutSeed)
        var inputGradient: [Float] = []
        input.withMatrix { m in
            let logits = network.forward(m, mode: .training)
            _ = labels.withUnsafeBufferPointer {
                SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: $0.baseAddress!, labelSmoothing: 0.1,
                                                    gradient: network.logitsGradient())
            }
            inputGradient = network.backward(parameterGradients: .overwrite, computeInputGradient: true)!.array
        }
        let parameterGradient = network.gradients.array

        let h: Float = 1e-3
        var numericParameters: [Float] = []
        for j in 0..<network.parameterCount {
            let saved = network.parameters.pointer[j]
            network.parameters.pointer[j] = saved + h
            let plus = loss(input)
            network.parameters.pointer[j] = saved - h
            let minus = loss(input)
            network.parameters.pointer[j] = saved
            numericParameters.append(Float((plus - minus) / Double(2 * h)))
        }
        var numericInput: [Float] = []
        for j in 0..<input.count {
            var plus = input, minus = input
            plus.scalars[j] += h
            minus.scalars[j] -= h
            numericInput.append(Float((loss(plus) - loss(minus)) / Double(2 * h)))
        }
        let parameterError = TestSupport.worstError(parameterGradient, numericParameters, relative: 2e-2, absolute: 2e-3)
        let inputError = TestSupport.worstError(inputGradient, numericInput, relative: 2e-2, absolute: 2e-3)
        #expect(parameterError <= 1, "\(name): parameter gradients differ from finite differences")
        #expect(inputGradient.contains { $0 != 0 })
        #expect(inputError <= 1, "\(name): input gradients differ from finite differences")
    }

    @Test("per-example input gradients: row i depends only on example i")
    func perExample() throws {
        let network = Sequential(spec: try ModelSpec.parse("6-5-3"), seed: 2)
        var both = TestSupport.randomTensor(rows: 2, columns: 6, seed: 4)
        var first = both.rows(0..<1)
        func gradient(_ x: inout Tensor, labels: [Int]) -> [Float] {
            x.withMatrix { m in
                let logits = network.forward(m, mode: .evaluation)
                _ = labels.withUnsafeBufferPointer {
                    SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: $0.baseAddress!, gradient: network.logitsGradient())
                }
                return network.backward(parameterGradients: .skip, computeInputGradient: true)!.array
            }
        }
        let batch = gradient(&both, labels: [1, 2])
        let single = gradient(&first, labels: [1])
        #expect(TestSupport.close(Array(batch[0..<6]), single, relative: 1e-6, absolute: 1e-7))
    }
}

@Suite("Parameter-gradient modes")
struct ParameterGradientModeTests {
    @Test("overwrite replaces, accumulate adds, skip leaves the buffer alone")
    func modes() throws {
        let network = Sequential(spec: try ModelSpec.parse("6-5-3"), seed: 2)
        var x = TestSupport.randomTensor(rows: 3, columns: 6, seed: 1)
        let labels = [0, 1, 2]
        func pass(_ mode: ParameterGradients) {
            x.withMatrix { m in
                let logits = network.forward(m, mode: .evaluation)
                _ = labels.withUnsafeBufferPointer {
                    SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: $0.baseAddress!, gradient: network.logitsGradient())
                }
                network.backward(parameterGradients: mode, computeInputGradient: false)
            }
        }
        for i in 0..<network.parameterCount { network.gradients.pointer[i] = 7 }
        pass(.overwrite)
        let once = network.gradients.array
        #expect(!once.contains(7))
        pass(.accumulate)
        #expect(TestSupport.close(network.gradients.array, once.map { 2 * $0 }))
        pass(.skip)
        #expect(TestSupport.close(network.gradients.array, once.map { 2 * $0 }))
        network.zeroGradients()
        #expect(network.gradients.array.allSatisfy { $0 == 0 })
    }
}

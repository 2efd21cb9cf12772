import Testing
import NeuralNet
import TensorCore
import _TestSupport

@Suite("Packed weights: forward passes and input gradients as with OpenBLAS")
struct PackedWeightsTests {
    /// Logits and ∂(Σ logits·g)/∂x of `x`, with the network as it is.
    private func pass(_ network: Sequential, _ x: inout Tensor, logitsGradient: [Float]) -> (logits: [Float], inputGradient: [Float]) {
        x.withMatrix { x in
            let logits = network.forward(x, mode: .evaluation).array
            let g = network.logitsGradient()
            for i in 0..<g.count { g.base[i] = logitsGradient[i] }
            let inputGradient = network.backward(parameterGradients: .skip, computeInputGradient: true)!.array
            return (logits, inputGradient)
        }
    }

    @Test("inside withPackedWeights the results equal OpenBLAS's up to rounding; outside, exactly as before",
          arguments: [0, 1, 2])
    func sameResults(architecture: Int) throws {
        let spec = try [ModelSpec.parse("30-40-10"), ModelSpec.parse("784-64-64-10"),
                        ModelSpec(inputWidth: 7, layers: [.dense(33), .tanh, .dense(12), .relu, .dense(5)])][architecture]
        let network = Sequential(spec: spec, seed: 3)
        let rows = 29
        var x = TestSupport.randomTensor(rows: rows, columns: network.inputWidth, seed: 4, in: 0, 1)
        let g = TestSupport.randomValues(rows * network.classCount, seed: 5)
        let before = pass(network, &x, logitsGradient: g)
        let packed = network.withPackedWeights {
            network.withPackedWeights { pass(network, &x, logitsGradient: g) }  // nested: packs once
        }
        #expect(TestSupport.close(packed.logits, before.logits, relative: 1e-5, absolute: 1e-5))
        #expect(TestSupport.close(packed.inputGradient, before.inputGradient, relative: 1e-5, absolute: 1e-5))
        let after = pass(network, &x, logitsGradient: g)
        #expect(after.logits == before.logits && after.inputGradient == before.inputGradient, "the packs are gone after the body")
    }
}

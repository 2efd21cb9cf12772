import Foundation
@testable import NeuralNet
import TensorCore
import Testing
import _TestSupport

@Suite("DP-SGD")
struct DPSGDTests {
    /// A network whose hidden layers use every element-wise activation, so the norms pass through each.
    static let spec = try! ModelSpec.parseJSON(#"[{"type":"dense","in":12,"out":9},{"type":"relu"},{"type":"dense","out":8},{"type":"leaky_relu","slope":0.1},{"type":"dense","out":7},{"type":"sigmoid"},{"type":"dense","out":6},{"type":"tanh"},{"type":"dense","out":4}]"#)

    /// ∂loss_i/∂θ for each example alone, by a separate backward pass of that example.
    func naivePerExampleGradients(_ network: Sequential, _ data: LabeledData) -> [[Float]] {
        (0..<data.count).map { i in
            let x = data.features.rows(i..<(i + 1))
            var label = [data.labels[i]]
            var result: [Float] = []
            x.withReadOnlyMatrix { input in
                let logits = network.forward(input, mode: .evaluation)
                label.withUnsafeMutableBufferPointer { y in
                    _ = SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: y.baseAddress!, labelSmoothing: 0, gradientScale: 1,
                                                            gradient: network.logitsGradient())
                }
                network.backward(parameterGradients: .overwrite, computeInputGradient: false)
                result = Array(network.gradients.buffer)
            }
            return result
        }
    }

    @Test("per-example gradient norms equal the norms of per-example backward passes")
    func perExampleNorms() throws {
        let network = Sequential(spec: Self.spec, seed: 4)
        let data = TestSupport.syntheticData(count: 9, features: 12, classes: 4, seed: 5)
        let naive = naivePerExampleGradients(network, data)
        var norms = [Double](repeating: 0, count: data.count)
        data.features.withReadOnlyMatrix { x in
            let logits = network.forward(x, mode: .evaluation)
            data.labels.withUnsafeBufferPointer { y in
                _ = SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: y.baseAddress!, labelSmoothing: 0, gradientScale: 1,
                                                        gradient: network.logitsGradient())
            }
            norms.withUnsafeMutableBufferPointer { network.addPerExampleGradientNormsSquared(into: $0.baseAddress!) }
        }
        for i in 0..<data.count {
            let expected = naive[i].reduce(0.0) { $0 + Double($1) * Double($1) }
            #expect(abs(norms[i] - expected) <= 1e-4 * expected, "example \(i): \(norms[i]) vs \(expected)")
        }
    }

    @Test("without noise, a DP-SGD step's gradient is the mean of the clipped per-example gradients")
    func clippedSum() throws {
        let network = Sequential(spec: Self.spec, seed: 6)
        let data = TestSupport.syntheticData(count: 8, features: 12, classes: 4, seed: 7)
        let naive = naivePerExampleGradients(network, data)
        let norms = naive.map { $0.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        let clip = Float(norms.sorted()[norms.count / 2])  // half the examples are clipped
        var expected = [Double](repeating: 0, count: network.parameterCount)
        for (gradient, norm) in zip(naive, norms) {
            let factor = min(1, Double(clip) / norm)
            for k in gradient.indices { expected[k] += factor * Double(gradient[k]) / Double(data.count) }
        }
        let objective = try DPSGDObjective(noiseMultiplier: 0, clipNorm: clip)
        network.reserve(rows: data.count, shards: 1, parameterGradients: true)
        objective.prepare(network: network, shards: 1, rows: data.count, features: 12)
        var predictions = [Int](repeating: 0, count: data.count)
        var generator = RandomGenerator(seed: 0)
        var batch = data.features
        try batch.withMatrix { x in
            try data.labels.withUnsafeBufferPointer { y in
                _ = try objective.lossAndGradients(x, labels: y.baseAddress!, network: network, shard: 0, gradientScale: 1 / Float(data.count),
                                                   predictions: &predictions, generator: &generator)
            }
        }
        let actual = Array(network.gradients.buffer)
        let worst = zip(actual, expected).map { abs(Double($0) - $1) }.max()!
        #expect(worst <= 1e-4 * (expected.map(abs).max()! + 1e-3), "largest difference \(worst)")  // Float32 sums in another order
        #expect(objective.clippedCount >= data.count / 2 - 1)
        #expect(!objective.modifiesReducedGradients)
    }

    @Test("the noise has standard deviation σ·C/B and independent shards; seeded noise repeats whatever the thread count, secure noise never")
    func noise() throws {
        let count = 200_001
        func draw(_ source: DPSGDObjective.NoiseSource, threads: Int, seed: UInt64 = 9) throws -> [Float] {
            let objective = try DPSGDObjective(noiseMultiplier: 2, clipNorm: 0.5, noiseSource: source)
            let network = Sequential(spec: Self.spec, seed: 1)
            network.pool = WorkerPool(threadCount: threads)
            objective.prepare(network: network, shards: 2, rows: 4, features: 12)
            let buffer = FloatBuffer(count: count)
            var generator = RandomGenerator(seed: seed)
            objective.finishGradients(buffer, batchRows: 10, generator: &generator)
            return Array(buffer.buffer)
        }
        let one = try draw(.seeded, threads: 1)
        #expect(one == (try draw(.seeded, threads: 2)))
        #expect(one != (try draw(.seeded, threads: 1, seed: 10)))
        #expect(try draw(.secure, threads: 1) != draw(.secure, threads: 1), "secure noise must not repeat")
        let mean = one.reduce(0.0) { $0 + Double($1) } / Double(count)
        let variance = one.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(count - 1)
        #expect(abs(mean) < 0.001)
        #expect(abs(variance.squareRoot() - 0.1) < 0.001)  // σ·C/B = 2 · 0.5 / 10
        // The two shards' halves are independent streams, not copies.
        let half = count / 2
        var product = 0.0
        for i in 0..<half { product += Double(one[i]) * Double(one[half + i]) }
        let correlation = product / Double(half) / variance
        #expect(abs(correlation) < 0.01, "correlation \(correlation)")
    }

    @Test("invalid DP settings are refused")
    func invalid() {
        #expect(throws: NeuralNetError.self) { try DPSGDObjective(noiseMultiplier: -1, clipNorm: 1) }
        #expect(throws: NeuralNetError.self) { try DPSGDObjective(noiseMultiplier: 1, clipNorm: 0) }
        #expect(throws: NeuralNetError.self) { try DPSGDObjective(noiseMultiplier: .nan, clipNorm: 1) }
    }
}

/// Reference values from Opacus and TensorFlow Privacy (each library's own test assertions, and a
/// from-the-paper Python implementation that reproduces them); sources in the comments.
@Suite("Rényi-DP accountant")
struct RDPAccountantTests {
    @Test("ε of Opacus's accountant test: q = 0.04, σ = 1.5, 2250 steps, δ = 1e-5 → 7.32911117143")
    func opacus() {
        // pytorch/opacus opacus/tests/accountants_test.py @4d0ebc84, assertAlmostEqual (7 places).
        let guarantee = RDPAccountant.guarantee(samplingRate: 0.04, noiseMultiplier: 1.5, steps: 2250, delta: 1e-5)
        #expect(abs(guarantee.epsilon - 7.32911117143) < 5e-7, "ε = \(guarantee.epsilon)")
        #expect(abs(guarantee.order - 3.9) < 1e-12)
    }

    @Test("per-order RDP of TF Privacy's test: q = 0.01, σ = 2.5, 50 steps")
    func tfPrivacyOrders() {
        // tensorflow/privacy rdp_accountant_test.py @868cf544: test_compute_rdp_sequence (relative 1e-4).
        let orders = [1.5, 2.5, 5, 50, 100]
        let expected = [6.5007e-04, 1.0854e-03, 2.1808e-03, 2.3846e-02, 167.42]
        let rdp = RDPAccountant.rdp(samplingRate: 0.01, noiseMultiplier: 2.5, steps: 50, orders: orders)
        for (value, reference) in zip(rdp, expected) {
            #expect(abs(value - reference) <= 1e-4 * reference, "\(value) vs \(reference)")
        }
        // test_compute_rdp_scalar: q = 0.1, σ = 2, 10 steps, α = 5 → 0.07737 (5 places).
        let scalar = RDPAccountant.rdp(samplingRate: 0.1, noiseMultiplier: 2, steps: 10, orders: [5])[0]
        #expect(abs(scalar - 0.07737) < 5e-6)
    }

    @Test("TF Privacy's DP-SGD example and the plain Gaussian mechanism")
    func published() {
        // tensorflow/privacy compute_dp_sgd_privacy_test.py @03035d5d: N = 60000, B = 150, σ = 1.3,
        // 15 epochs (6000 steps), δ = 1e-5 → 0.7242234026109595 (improved conversion, its orders).
        let orders = [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5] + (5...63).map(Double.init) + [128, 256, 512]
        let tf = RDPAccountant.guarantee(samplingRate: 150.0 / 60000, noiseMultiplier: 1.3, steps: 6000, delta: 1e-5, orders: orders)
        #expect(abs(tf.epsilon - 0.7242234026109595) < 1e-6, "ε = \(tf.epsilon)")
        // q = 1: RDP α/(2σ²) in closed form; ε at δ = 1e-5 with Opacus's orders (reference script).
        let gaussian = RDPAccountant.guarantee(samplingRate: 1, noiseMultiplier: 5, steps: 1, delta: 1e-5)
        #expect(abs(gaussian.epsilon - 0.7945220325) < 1e-8)
        // The MNIST tutorial's setting (q = 256/60000, σ = 1.1, 14100 steps): 2.6003429386.
        let mnist = RDPAccountant.guarantee(samplingRate: 256.0 / 60000, noiseMultiplier: 1.1, steps: 14100, delta: 1e-5)
        #expect(abs(mnist.epsilon - 2.6003429386) < 1e-7, "ε = \(mnist.epsilon)")
    }

    @Test("ε grows with steps and shrinks with noise; no noise or no sampling are the limits")
    func monotone() {
        let a = RDPAccountant.guarantee(samplingRate: 0.01, noiseMultiplier: 1, steps: 1000, delta: 1e-5).epsilon
        let b = RDPAccountant.guarantee(samplingRate: 0.01, noiseMultiplier: 1, steps: 2000, delta: 1e-5).epsilon
        let c = RDPAccountant.guarantee(samplingRate: 0.01, noiseMultiplier: 2, steps: 2000, delta: 1e-5).epsilon
        #expect(a < b && c < b)
        #expect(RDPAccountant.guarantee(samplingRate: 0.01, noiseMultiplier: 0, steps: 1, delta: 1e-5).epsilon == .infinity)
        #expect(RDPAccountant.guarantee(samplingRate: 0, noiseMultiplier: 1, steps: 100, delta: 1e-5).epsilon == 0)
    }
}

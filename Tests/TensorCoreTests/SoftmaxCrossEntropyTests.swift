import Testing
import TensorCore
import _TestSupport

@Suite("Fused softmax cross-entropy")
struct SoftmaxCrossEntropyTests {
    @Test("matches the textbook formula, with and without label smoothing", arguments: [Float(0), 0.1])
    func matchesReference(smoothing: Float) {
        var logits = TestSupport.randomTensor(rows: 13, columns: 10, seed: 5, in: -5, 5)
        let labels = (0..<13).map { $0 % 10 }
        var gradient = Tensor(zeros: [13, 10])
        var losses = [Float](repeating: 0, count: 13)
        let total = logits.withMatrix { z in
            gradient.withMatrix { g in
                losses.withUnsafeMutableBufferPointer { l in
                    labels.withUnsafeBufferPointer {
                        SoftmaxCrossEntropy.lossAndGradient(logits: z, labels: $0.baseAddress!, labelSmoothing: smoothing,
                                                            gradientScale: 0.5, gradient: g, losses: l.baseAddress!)
                    }
                }
            }
        }
        let reference = logits.withMatrix { Reference.softmaxCrossEntropy(logits: $0, labels: labels, labelSmoothing: smoothing, gradientScale: 0.5) }
        #expect(TestSupport.close(losses, reference.losses.map(Float.init), relative: 1e-5, absolute: 1e-5))
        #expect(abs(total - reference.losses.reduce(0, +)) < 1e-3)
        #expect(TestSupport.close(gradient.scalars, reference.gradient.flatMap { $0.map(Float.init) }, relative: 1e-4, absolute: 1e-6))
    }

    @Test("stable for huge logits (log-sum-exp)")
    func stability() {
        var logits = Tensor(shape: [2, 3], scalars: [1e4, 0, -1e4, 88, 89, 90])
        var gradient = Tensor(zeros: [2, 3])
        let labels = [0, 1]
        let total = logits.withMatrix { z in gradient.withMatrix { g in
            labels.withUnsafeBufferPointer { SoftmaxCrossEntropy.lossAndGradient(logits: z, labels: $0.baseAddress!, gradient: g) }
        } }
        #expect(total.isFinite)
        #expect(abs(total - (0 + 1.4076059)) < 1e-4)  // row 2: log(e⁻¹ + 1 + e) − 0 … = 1.40761
        #expect(gradient.scalars.allSatisfy { $0.isFinite })
    }

    @Test("gradient equals central finite differences of the loss")
    func finiteDifferences() {
        let logits = TestSupport.randomTensor(rows: 3, columns: 4, seed: 8, in: -2, 2)
        let labels = [2, 0, 3]
        func loss(_ z: Tensor) -> Double {
            var z = z
            return z.withMatrix { m in labels.withUnsafeBufferPointer {
                SoftmaxCrossEntropy.lossAndGradient(logits: m, labels: $0.baseAddress!, labelSmoothing: 0.2)
            } }
        }
        var analytic = Tensor(zeros: [3, 4])
        var copy = logits
        _ = copy.withMatrix { z in analytic.withMatrix { g in labels.withUnsafeBufferPointer {
            SoftmaxCrossEntropy.lossAndGradient(logits: z, labels: $0.baseAddress!, labelSmoothing: 0.2, gradient: g)
        } } }
        let h: Float = 1e-2
        for i in 0..<logits.count {
            var plus = logits, minus = logits
            plus.scalars[i] += h
            minus.scalars[i] -= h
            let numeric = Float((loss(plus) - loss(minus)) / Double(2 * h))
            #expect(abs(numeric - analytic.scalars[i]) < 1e-3, "element \(i)")
        }
    }
}

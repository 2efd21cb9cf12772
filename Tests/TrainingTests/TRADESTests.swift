import Foundation
import NeuralNet
import TensorCore
import Testing
@testable import Training
import _TestSupport

@Suite("TRADES")
struct TRADESTests {
    /// CE(z, y) + β·KL(softmax z ‖ softmax z') in Float64.
    static func referenceLoss(_ z: [Double], _ zAdversarial: [Double], label: Int, beta: Double) -> Double {
        func logSoftmax(_ v: [Double]) -> [Double] {
            let top = v.max()!
            let logSum = top + log(v.reduce(0) { $0 + exp($1 - top) })
            return v.map { $0 - logSum }
        }
        let lp = logSoftmax(z), lq = logSoftmax(zAdversarial)
        let kl = zip(lp, lq).reduce(0) { $0 + exp($1.0) * ($1.0 - $1.1) }
        return -lp[label] + beta * kl
    }

    @Test("the loss and its gradient in both the clean and the adversarial logits match central differences of a Float64 reference")
    func klGradient() {
        let rows = 3, classes = 5
        var logits = TestSupport.randomValues(2 * rows * classes, seed: 9, in: -3, 3)
        logits[0] = 8  // a confident row
        let labels = [0, 2, 4]
        let beta: Float = 6
        var gradient = [Float](repeating: 0, count: 2 * rows * classes)
        var scratch = [Float](repeating: 0, count: rows * classes)
        let loss = logits.withUnsafeMutableBufferPointer { z in
            gradient.withUnsafeMutableBufferPointer { g in
                scratch.withUnsafeMutableBufferPointer { s in
                    labels.withUnsafeBufferPointer { y in
                        TRADESObjective.lossAndLogitsGradient(
                            logits: MatrixRef(z.baseAddress!, rows: 2 * rows, columns: classes), labels: y.baseAddress!, beta: beta,
                            gradientScale: 1, gradient: MatrixRef(g.baseAddress!, rows: 2 * rows, columns: classes),
                            scratch: MatrixRef(s.baseAddress!, rows: rows, columns: classes))
                    }
                }
            }
        }
        let z = logits.map(Double.init)
        func total(_ values: [Double]) -> Double {
            (0..<rows).reduce(0) { sum, i in
                sum + Self.referenceLoss(Array(values[(i * classes)..<((i + 1) * classes)]),
                                         Array(values[((rows + i) * classes)..<((rows + i + 1) * classes)]), label: labels[i], beta: Double(beta))
            }
        }
        #expect(abs(loss - total(z)) < 1e-4 * (1 + abs(total(z))))
        for k in 0..<(2 * rows * classes) {
            var plus = z, minus = z
            plus[k] += 1e-5
            minus[k] -= 1e-5
            let numeric = (total(plus) - total(minus)) / 2e-5
            #expect(abs(numeric - Double(gradient[k])) < 1e-4 * max(1, abs(numeric)), "logit \(k): \(gradient[k]) vs \(numeric)")
        }
    }

    @Test("q − p is formed without cancellation when both put almost all mass on one class")
    func probabilityDifferenceWithoutCancellation() {
        // p_0 ≈ 1 − 4.1e-9 and q_0 ≈ 1 − 1.2e-8: both round to 1 in Float32, their difference does not.
        let clean: [Double] = [20, 0, 0.5], adversarial: [Double] = [19, 0, 0.5]
        func logSoftmax(_ z: [Double]) -> [Double] { let lse = log(z.map(exp).reduce(0, +)); return z.map { $0 - lse } }
        let lp = logSoftmax(clean), lq = logSoftmax(adversarial)
        let expected = zip(lq, lp).map { exp($0) - exp($1) }
        var logQ = lq.map(Float.init), logP = lp.map(Float.init)
        logQ.withUnsafeMutableBufferPointer { q in
            logP.withUnsafeMutableBufferPointer { p in
                TRADESObjective.probabilityDifference(logQ: q.baseAddress!, logP: p.baseAddress!, classes: 3, scale: 1)
            }
        }
        for j in 0..<3 {
            #expect(abs(Double(logQ[j]) - expected[j]) <= 1e-3 * abs(expected[j]), "class \(j): \(logQ[j]) vs \(expected[j])")
        }
        #expect(logQ[0] < 0)  // exp(log q_0) − exp(log p_0) would be 0
    }

    @Test("the KL term vanishes when the adversarial logits equal the clean ones, leaving cross-entropy")
    func reducesToCrossEntropy() {
        var logits: [Float] = [1, 2, 0.5, 1, 2, 0.5]
        var gradient = [Float](repeating: 0, count: 6), scratch = [Float](repeating: 0, count: 3)
        let loss = logits.withUnsafeMutableBufferPointer { z in
            gradient.withUnsafeMutableBufferPointer { g in
                scratch.withUnsafeMutableBufferPointer { s in
                    [1].withUnsafeBufferPointer { y in
                        TRADESObjective.lossAndLogitsGradient(logits: MatrixRef(z.baseAddress!, rows: 2, columns: 3), labels: y.baseAddress!, beta: 6,
                                                              gradientScale: 1, gradient: MatrixRef(g.baseAddress!, rows: 2, columns: 3),
                                                              scratch: MatrixRef(s.baseAddress!, rows: 1, columns: 3))
                    }
                }
            }
        }
        let lse = log(exp(1.0) + exp(2.0) + exp(0.5))
        #expect(abs(loss - (lse - 2)) < 1e-5)
        #expect(gradient[3...].allSatisfy { abs($0) < 1e-6 })
    }

    @Test("TRADES training lowers the loss and fits separable data; bad settings are refused")
    func training() throws {
        let data = TestSupport.syntheticData(count: 200, features: 12, classes: 3, seed: 2)
        let configuration = TrainerConfiguration(architecture: try ModelSpec.parse("12-16-3"), seed: 1, epochs: 15, batchSize: 40,
                                                 optimizer: .adam(learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false))
        let trainer = try Trainer(configuration: configuration, objective: try TRADESObjective(TRADESSpec(epsilon: 0.05, beta: 6, steps: 5)))
        let history = try trainer.train(on: data, validation: nil)
        #expect(history.last!.loss < history.first!.loss)
        #expect(history.last!.trainAccuracy > 0.8)
        #expect(throws: NeuralNetError.self) { try TRADESObjective(TRADESSpec(epsilon: 0.1, beta: -1)) }
        #expect(throws: NeuralNetError.self) { try TRADESObjective(TRADESSpec(epsilon: 0.1, steps: 0)) }
    }
}

import Foundation
import Testing
import NeuralNet
import TensorCore
import _TestSupport

@Suite("Optimizers and schedules")
struct OptimizerTests {
    @Test("bad hyperparameters are rejected with a message naming the value")
    func validation() {
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        #expect(message { _ = try SGD(parameterCount: 1, learningRate: -1) }.contains("learning rate -1.0"))
        #expect(message { _ = try SGD(parameterCount: 1, learningRate: 0.1, momentum: 1.5) }.contains("momentum 1.5"))
        #expect(message { _ = try SGD(parameterCount: 1, learningRate: 0.1, nesterov: true) }.contains("Nesterov"))
        #expect(message { _ = try Adam(parameterCount: 1, learningRate: .nan) }.contains("learning rate nan"))
        #expect(message { _ = try Adam(parameterCount: 1, learningRate: 0.1, beta1: 1) }.contains("beta1 1.0"))
        #expect(message { _ = try Adam(parameterCount: 1, learningRate: 0.1, epsilon: 0) }.contains("epsilon 0.0"))
        #expect(message { _ = try Adam(parameterCount: 1, learningRate: 0.1, weightDecay: -0.1) }.contains("weight decay -0.1"))
        #expect(message { try LearningRateSchedule.step(every: 0, gamma: 0.5).validate() }.contains("period 0"))
        #expect(message { try LearningRateSchedule.step(every: 1, gamma: 2).validate() }.contains("gamma 2.0"))
    }

    /// PyTorch's update rules written out for two parameters and three steps.
    @Test("SGD with momentum and Nesterov follows torch.optim.SGD", arguments: [false, true])
    func sgd(nesterov: Bool) throws {
        let optimizer = try SGD(parameterCount: 2, learningRate: 0.1, momentum: 0.9, nesterov: nesterov, weightDecay: 0.01)
        let p = FloatBuffer([1, -2]), g = FloatBuffer([0.5, 0.25])
        var expected: [Double] = [1, -2], velocity: [Double] = [0, 0]
        for _ in 0..<3 {
            optimizer.step(parameters: p, gradients: g)
            for i in 0..<2 {
                let d = Double(g.pointer[i]) + 0.01 * expected[i]
                velocity[i] = 0.9 * velocity[i] + d
                expected[i] -= 0.1 * (nesterov ? d + 0.9 * velocity[i] : velocity[i])
            }
        }
        #expect(TestSupport.close(p.array, expected.map(Float.init), relative: 1e-5, absolute: 1e-6))
        #expect(optimizer.stepCount == 3)
    }

    @Test("Adam's first step moves each parameter by about the learning rate")
    func adamFirstStep() throws {
        let optimizer = try Adam(parameterCount: 3, learningRate: 0.01)
        let p = FloatBuffer([1, 2, 3]), g = FloatBuffer([0.3, -5, 1e-3])
        optimizer.step(parameters: p, gradients: g)
        // m̂ = g, v̂ = g², so the step is lr·g/(|g| + ε) = ±lr.
        #expect(TestSupport.close(p.array, [0.99, 2.01, 2.99], relative: 1e-5, absolute: 1e-5))
    }

    @Test("learning-rate schedules")
    func schedules() {
        let base: Float = 0.1
        #expect(LearningRateSchedule.constant.rate(base: base, step: 50, stepsPerEpoch: 10, totalSteps: 100) == base)
        #expect(abs(LearningRateSchedule.step(every: 2, gamma: 0.5).rate(base: base, step: 45, stepsPerEpoch: 10, totalSteps: 100) - 0.025) < 1e-7)
        let cosine = LearningRateSchedule.cosine(minimum: 0)
        #expect(cosine.rate(base: base, step: 0, stepsPerEpoch: 10, totalSteps: 100) == base)
        #expect(abs(cosine.rate(base: base, step: 50, stepsPerEpoch: 10, totalSteps: 100) - 0.05) < 1e-6)
        let oneCycle = LearningRateSchedule.oneCycle
        #expect(abs(oneCycle.rate(base: base, step: 0, stepsPerEpoch: 10, totalSteps: 100) - 0.004) < 1e-6)
        #expect(abs(oneCycle.rate(base: base, step: 30, stepsPerEpoch: 10, totalSteps: 100) - base) < 1e-6)
        #expect(oneCycle.rate(base: base, step: 99, stepsPerEpoch: 10, totalSteps: 100) < 0.001)
        let cyclic = LearningRateSchedule.cyclic(epochsPerCycle: 2)
        #expect(abs(cyclic.rate(base: base, step: 0, stepsPerEpoch: 10, totalSteps: 100) - 0.01) < 1e-6)
        #expect(abs(cyclic.rate(base: base, step: 10, stepsPerEpoch: 10, totalSteps: 100) - base) < 1e-6)
    }

    @Test("gradient-norm clipping scales to the threshold")
    func clipping() {
        let g = FloatBuffer([3, 4])
        let norm = clipGradientNorm(g, maxNorm: 1)
        #expect(norm == 5)
        #expect(TestSupport.close(g.array, [0.6, 0.8]))
        let small = FloatBuffer([0.3, 0.4])
        clipGradientNorm(small, maxNorm: 1)
        #expect(small.array == [0.3, 0.4])
    }
}

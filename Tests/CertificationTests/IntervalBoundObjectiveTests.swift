@testable import Certification
import Foundation
import NeuralNet
import TensorCore
import Testing
import _TestSupport

/// IBP certified training: its worst-case loss against the Float64 IBP of the certifier, and its
/// gradient against central finite differences of that Float64 loss.
@Suite("IBP training objective")
struct IntervalBoundObjectiveTests {
    /// Σ_rows CE(ẑ, y) with ẑ from the certifier's Float64 IBP (an independent implementation).
    /// Central differences of `loss` in every parameter (steps of 1e-3, divided by the steps Float32
    /// actually took) against `gradients`: the largest absolute error and the largest numeric gradient.
    static func centralDifferences(_ model: Sequential, gradients: FloatBuffer, loss: () -> Double) -> (worst: Double, largest: Double) {
        var worst = 0.0, largest = 0.0
        for i in 0..<model.parameterCount {
            let original = model.parameters.pointer[i]
            model.parameters.pointer[i] = original + 1e-3
            let plusStep = model.parameters.pointer[i]
            let plus = loss()
            model.parameters.pointer[i] = original - 1e-3
            let minusStep = model.parameters.pointer[i]
            let minus = loss()
            model.parameters.pointer[i] = original
            let numeric = (plus - minus) / Double(plusStep - minusStep)
            worst = max(worst, abs(numeric - Double(gradients.pointer[i])))
            largest = max(largest, abs(numeric))
        }
        return (worst, largest)
    }

    static func referenceLoss(_ model: Sequential, _ inputs: [Float], labels: [Int], epsilon: Double) -> Double {
        let network = CertifiableNetwork(model)
        let region = InputRegion(norm: .linf, points: inputs.map(Double.init), width: model.inputWidth, labels: labels,
                                 epsilons: [Double](repeating: epsilon, count: labels.count))
        let margins = IntervalBoundPropagation(network: network).bounds(region).margins
        let classes = model.classCount
        var total = 0.0
        for (r, y) in labels.enumerated() {
            // CE(ẑ, y) = log Σ_j e^{ẑ_j} − ẑ_y with ẑ_y = 0, ẑ_j = −m_j.
            let z = (0..<classes).map { $0 == y ? 0 : -margins[r * classes + $0] }
            let top = z.max()!
            total += top + log(z.reduce(0) { $0 + exp($1 - top) })
        }
        return total
    }

    /// Σ_rows CE(ẑ, y) with ẑ_j = −(β·m_CROWN-IBP + (1 − β)·m_IBP), both from the certifier in Float64
    /// (CROWN with IBP's intermediate boxes, not tightened: CROWN-IBP).
    static func referenceMixedLoss(_ model: Sequential, _ inputs: [Float], labels: [Int], epsilon: Double, beta: Double) -> Double {
        let network = CertifiableNetwork(model)
        let region = InputRegion(norm: .linf, points: inputs.map(Double.init), width: model.inputWidth, labels: labels,
                                 epsilons: [Double](repeating: epsilon, count: labels.count))
        let intervals = IntervalBoundPropagation(network: network).bounds(region)
        let crown = CROWN(network: network, reducedPrecision: false)
        let workspace = CROWN.Workspace(rows: crown.maximumRows, width: network.maximumWidth)
        let classes = model.classCount
        var total = 0.0
        for (r, y) in labels.enumerated() {
            let relaxations = crown.relaxations(row: r, intervals: intervals, region: region, tighten: false, workspace: workspace)
            let crownMargins = crown.finalMargins(row: r, region: region, relaxations: relaxations, workspace: workspace)
            let z = (0..<classes).map { $0 == y ? 0 : -(beta * crownMargins[$0] + (1 - beta) * intervals.margins[r * classes + $0]) }
            let top = z.max()!
            total += top + log(z.reduce(0) { $0 + exp($1 - top) })
        }
        return total
    }

    static func objective(_ model: Sequential, rows: Int, crownIBP: Bool = false) throws -> IntervalBoundObjective {
        let objective = try IntervalBoundObjective(schedule: .init(epsilon: 0.1, warmupEpochs: 0, rampEpochs: 0, finalKappa: 0), crownIBP: crownIBP,
                                                   record: "{}")
        objective.prepare(network: model, shards: 1, rows: rows, features: model.inputWidth)
        return objective
    }

    @Test("the worst-case loss matches the certifier's Float64 IBP, and its gradient central differences",
          arguments: [Activation.relu, .leakyrelu, .tanh, .sigmoid])
    func gradient(activation: Activation) throws {
        let model = Sequential(spec: try ModelSpec.parse("6-7-5-4", activation: activation), seed: 3)
        let rows = 5
        var inputs = TestSupport.randomValues(rows * 6, seed: 4, in: 0, 1)
        inputs[0] = 0; inputs[1] = 1  // pixels at the domain's ends
        let labels = [0, 1, 2, 3, 1]
        let objective = try Self.objective(model, rows: rows)
        let gradients = FloatBuffer(count: model.parameterCount)
        let loss = inputs.withUnsafeMutableBufferPointer { x in
            labels.withUnsafeBufferPointer { y in
                objective.worstCaseLossAndGradients(MatrixRef(x.baseAddress!, rows: rows, columns: 6), labels: y.baseAddress!, epsilon: 0.1,
                                                    parameters: model.parameters.pointer, gradients: gradients.pointer, gradientScale: 1,
                                                    workspace: objective.workspaces[0])
            }
        }
        let reference = Self.referenceLoss(model, inputs, labels: labels, epsilon: Double(Float(0.1)))
        #expect(abs(loss - reference) < 1e-4 * (1 + abs(reference)), "loss \(loss) vs Float64 \(reference)")
        let (worst, largest) = Self.centralDifferences(model, gradients: gradients) {
            Self.referenceLoss(model, inputs, labels: labels, epsilon: Double(Float(0.1)))
        }
        #expect(largest > 0.01)
        #expect(worst < 2e-3 * largest, "\(activation): largest gradient error \(worst) of \(largest)")
    }

    @Test("CROWN-IBP's loss matches the certifier's Float64 CROWN-IBP, and its gradient central differences",
          arguments: [(Activation.relu, Float(1)), (.relu, 0.5), (.leakyrelu, 0.7)])
    func crownIBPGradient(activation: Activation, beta: Float) throws {
        let model = Sequential(spec: try ModelSpec.parse("6-8-7-4", activation: activation), seed: 5)
        let rows = 4
        let inputs = TestSupport.randomValues(rows * 6, seed: 6, in: 0, 1)
        let labels = [0, 3, 2, 1]
        let objective = try Self.objective(model, rows: rows, crownIBP: true)
        let crown = try #require(objective.crownBounds.first)
        let gradients = FloatBuffer(count: model.parameterCount)
        let loss = inputs.withUnsafeBufferPointer { x in
            labels.withUnsafeBufferPointer { y in
                objective.worstCaseLossAndGradients(MatrixRef(UnsafeMutablePointer(mutating: x.baseAddress!), rows: rows, columns: 6),
                                                    labels: y.baseAddress!, epsilon: 0.1, parameters: model.parameters.pointer,
                                                    gradients: gradients.pointer, gradientScale: 1, workspace: objective.workspaces[0],
                                                    crown: crown, crownWeight: beta)
            }
        }
        let epsilon = Double(Float(0.1))
        let reference = Self.referenceMixedLoss(model, inputs, labels: labels, epsilon: epsilon, beta: Double(beta))
        #expect(abs(loss - reference) < 1e-4 * (1 + abs(reference)), "loss \(loss) vs Float64 \(reference)")
        let (worst, largest) = Self.centralDifferences(model, gradients: gradients) {
            Self.referenceMixedLoss(model, inputs, labels: labels, epsilon: epsilon, beta: Double(beta))
        }
        #expect(largest > 0.01)
        #expect(worst < 2e-3 * largest, "β \(beta): largest gradient error \(worst) of \(largest)")
    }

    @Test("CROWN-IBP refuses architectures it cannot relax")
    func crownIBPArchitectures() throws {
        #expect(IntervalBoundObjective.crownIBPProblem(try ModelSpec.parse("784-256-256-10")) == nil)
        #expect(IntervalBoundObjective.crownIBPProblem(try ModelSpec.parse("784-32-10", activation: .tanh))?.contains("tanh") == true)
        #expect(IntervalBoundObjective.crownIBPProblem(try ModelSpec.parse(#"[{"type":"dense","in":4,"out":3},{"type":"dense","out":2}]"#)) != nil)
    }

    @Test("the schedule warms up, ramps ε and κ linearly, then holds them")
    func schedule() throws {
        let schedule = CertifiedTrainingSchedule(epsilon: 0.2, warmupEpochs: 2, rampEpochs: 4, finalKappa: 0.5)
        #expect(schedule.values(step: 0, stepsPerEpoch: 10) == (0, 1))
        #expect(schedule.values(step: 19, stepsPerEpoch: 10) == (0, 1))
        let middle = schedule.values(step: 40, stepsPerEpoch: 10)
        #expect(abs(middle.epsilon - 0.1) < 1e-6 && abs(middle.kappa - 0.75) < 1e-6)
        #expect(schedule.values(step: 60, stepsPerEpoch: 10) == (0.2, 0.5))
        #expect(schedule.values(step: 1000, stepsPerEpoch: 10) == (0.2, 0.5))
        #expect(throws: NeuralNetError.self) { try CertifiedTrainingSchedule(epsilon: 0, warmupEpochs: 0, rampEpochs: 1, finalKappa: 0.5).validate() }
        #expect(throws: NeuralNetError.self) { try CertifiedTrainingSchedule(epsilon: 0.1, warmupEpochs: -1, rampEpochs: 1, finalKappa: 0.5).validate() }
        #expect(throws: NeuralNetError.self) { try CertifiedTrainingSchedule(epsilon: 0.1, warmupEpochs: 0, rampEpochs: 1, finalKappa: 2).validate() }
    }

    @Test("a few steps of IBP training raise certified accuracy on separable data")
    func trainingCertifies() throws {
        let data = TestSupport.syntheticData(count: 400, features: 10, classes: 3, seed: 1)
        let spec = try ModelSpec.parse("10-32-3")
        let configuration = TrainerConfiguration(architecture: spec, seed: 1, epochs: 30, batchSize: 50,
                                                 optimizer: .adam(learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false))
        let objective = try IntervalBoundObjective(schedule: .init(epsilon: 0.05, warmupEpochs: 2, rampEpochs: 10, finalKappa: 0.5), record: "{}")
        let trainer = try Trainer(configuration: configuration, objective: objective)
        let before = try Certifier(trainer.network, method: .ibp, norm: .linf).certify(data, epsilon: 0.05).certifiedAccuracy.value
        _ = try trainer.train(on: data, validation: nil)
        let after = try Certifier(trainer.network, method: .ibp, norm: .linf).certify(data, epsilon: 0.05).certifiedAccuracy.value
        #expect(after > before + 0.2, "IBP-certified accuracy \(before) → \(after)")
    }
}

import Foundation
import NeuralNet
import TensorCore
import Testing
import Training
@testable import Threats

/// An `InferenceModel` that counts the rows it really receives.
final class CountingModel: InferenceModel, @unchecked Sendable {
    let inner: any InferenceModel
    private let lock = NSLock()
    private var rows = 0
    var received: Int { lock.withLock { rows } }
    var inputWidth: Int { inner.inputWidth }
    var classCount: Int { inner.classCount }

    init(_ inner: any InferenceModel) { self.inner = inner }

    func logits(_ input: MatrixRef, into output: MatrixRef) throws {
        lock.withLock { rows += input.rows }
        try inner.logits(input, into: output)
    }
}

@Suite("Model extraction")
struct ExtractionTests {
    static func victim(_ spec: String = "784-10", seed: UInt64 = 5) throws -> (Sequential, CountingModel) {
        let network = Sequential(spec: try ModelSpec.parse(spec), seed: seed)
        return (network, CountingModel(try network.inferenceModel()))
    }

    static func random(_ rows: Int, _ columns: Int, seed: UInt64) -> Tensor {
        var generator = RandomGenerator(seed: seed)
        return Tensor(shape: [rows, columns], scalars: (0..<(rows * columns)).map { _ in generator.nextUnitFloat() })
    }

    @Test("the query counter is exact and the budget is never passed: an over-budget batch is refused whole, unsent")
    func budget() throws {
        let (_, model) = try Self.victim("784-16-10")
        let oracle = try ExtractionOracle(model, budget: 100)
        for rows in [1, 7, 33, 0, 40] { _ = try oracle.query(Self.random(rows, 784, seed: UInt64(rows))) }
        #expect(oracle.queriesUsed == 81 && model.received == 81 && oracle.queriesLeft == 19)
        #expect(throws: ThreatError.self) { try oracle.query(Self.random(20, 784, seed: 1)) }
        #expect(oracle.queriesUsed == 81 && model.received == 81)
        _ = try oracle.query(Self.random(19, 784, seed: 2))
        #expect(oracle.queriesUsed == 100 && model.received == 100 && oracle.queriesLeft == 0)
        #expect(throws: ThreatError.self) { try oracle.query(Self.random(1, 784, seed: 3)) }
        #expect(model.received == 100)
        #expect(throws: ThreatError.self) { try ExtractionOracle(model, budget: 0) }
        #expect(throws: ThreatError.self) { try ExtractionOracle(model, policy: .topK(11), budget: 5) }
    }

    static func probabilities(_ network: Sequential, _ x: Tensor) throws -> [Float] {
        try ExtractionOracle(network.inferenceModel(), budget: x.shape[0]).query(x).probabilities!.scalars
    }

    @Test("output policies: probabilities sum to 1, label gives no vector, top-k keeps k, rounding rounds, reverse sigmoid and noise keep a distribution")
    func policies() throws {
        let (network, model) = try Self.victim("784-16-10")
        let x = Self.random(12, 784, seed: 9)
        let predictions = network.predictions(on: x)
        let full = try ExtractionOracle(model, budget: 100).query(x)
        let label = try ExtractionOracle(model, policy: .label, budget: 100).query(x)
        let top = try ExtractionOracle(model, policy: .topK(3), budget: 100).query(x).probabilities!
        let rounded = try ExtractionOracle(model, policy: .rounded(2), budget: 100).query(x).probabilities!
        let reverse = try ExtractionOracle(model, policy: .reverseSigmoid(beta: 0.5, gamma: 0.2), budget: 100).query(x).probabilities!
        let noisy = try ExtractionOracle(model, policy: .noise(sigma: 0.05), budget: 100, seed: 4).query(x).probabilities!
        let noisyAgain = try ExtractionOracle(model, policy: .noise(sigma: 0.05), budget: 100, seed: 4).query(x).probabilities!
        #expect(full.labels == predictions && label.labels == predictions && label.probabilities == nil)
        #expect(noisy.scalars == noisyAgain.scalars, "the same seed gives the same noise")
        for r in 0..<12 {
            let row = { (t: Tensor) in Array(t.scalars[(r * 10)..<((r + 1) * 10)]) }
            let p = row(full.probabilities!)
            #expect(abs(p.reduce(0, +) - 1) < 1e-5)
            #expect(row(top).filter { $0 > 0 }.count == 3 && row(top)[predictions[r]] == p[predictions[r]])
            #expect(zip(row(rounded), p).allSatisfy { abs($0 - $1) <= 0.005 + 1e-6 && abs($0 * 100 - ($0 * 100).rounded()) < 1e-3 })
            for perturbed in [row(reverse), row(noisy)] {
                #expect(abs(perturbed.reduce(0, +) - 1) < 1e-5 && perturbed.allSatisfy { (0...1).contains($0) })
                #expect(zip(perturbed, p).contains { abs($0 - $1) > 1e-3 }, "the policy changed nothing")
            }
        }
    }

    @Test("equation solving recovers a softmax-regression victim to 1e-4 from d + 1 probability queries")
    func equationSolving() throws {
        let (victim, model) = try Self.victim("784-10")
        let oracle = try ExtractionOracle(model, budget: 785)
        let surrogate = try EquationSolvingExtraction.extract(from: oracle, seed: 1)
        #expect(oracle.queriesUsed == 785 && model.received == 785)
        // The weight and bias differences to class 0 (softmax is invariant to a common shift).
        let (w, s) = (victim.parameters.pointer, surrogate.parameters.pointer)
        var worst: Float = 0
        for c in 1..<10 {
            for j in 0..<784 { worst = max(worst, abs((w[c * 784 + j] - w[j]) - s[c * 784 + j])) }
            worst = max(worst, abs((w[7840 + c] - w[7840]) - s[7840 + c]))
        }
        #expect(worst < 1e-4, "largest error in a weight difference: \(worst)")
        // Same probabilities on new inputs.
        let x = Self.random(200, 784, seed: 77)
        let (p, q) = (try Self.probabilities(victim, x), try Self.probabilities(surrogate, x))
        #expect(zip(p, q).map { abs($0 - $1) }.max()! < 1e-4)
        // Label-only answers or too small a budget are refused before any query.
        let labels = try ExtractionOracle(model, policy: .label, budget: 1000)
        #expect(throws: ThreatError.self) { try EquationSolvingExtraction.extract(from: labels, seed: 1) }
        let small = try ExtractionOracle(model, budget: 784)
        #expect(throws: ThreatError.self) { try EquationSolvingExtraction.extract(from: small, seed: 1) }
        #expect(labels.queriesUsed == 0 && small.queriesUsed == 0)
        // Reverse sigmoid breaks the equations: the same queries give a far worse model.
        let hardened = try ExtractionOracle(model, policy: .reverseSigmoid(beta: 0.5, gamma: 0.2), budget: 785)
        let poisoned = try EquationSolvingExtraction.extract(from: hardened, seed: 1)
        let agreement = zip(victim.predictions(on: x), poisoned.predictions(on: x)).filter { $0 == $1 }.count
        let exact = zip(victim.predictions(on: x), surrogate.predictions(on: x)).filter { $0 == $1 }.count
        #expect(exact == 200 && agreement < 190, "agreement with reverse sigmoid: \(agreement) of 200")
    }

    @Test("equation solving of a one-hidden-layer victim (known architecture) by minimising the cross-entropy to its answers")
    func equationSolvingHidden() throws {
        let spec = try ModelSpec.parse("20-16-3")
        let (victim, model) = try Self.victim("20-16-3", seed: 11)
        let oracle = try ExtractionOracle(model, budget: 800)
        // Full-batch Adam with a cosine schedule: the equations are solved by optimisation, not sampled.
        var recipe = Training.TrainingRecipe(architecture: spec, seed: 1, epochs: 600)
        recipe.batchSize = 800
        recipe.schedule = .cosine(minimum: 0)
        recipe.optimizer = .adam(learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false)
        let surrogate = try EquationSolvingExtraction.extract(from: oracle, architecture: spec, queries: 800, recipe: recipe, seed: 2)
        #expect(oracle.queriesUsed == 800 && model.received == 800)
        // Measured on new inputs: close to the victim, far closer than an untrained network of the same shape.
        let x = Self.random(1000, 20, seed: 5)
        let untrained = Sequential(spec: spec, seed: 3)
        func agreement(_ network: Sequential) -> Int { zip(victim.predictions(on: x), network.predictions(on: x)).filter { $0 == $1 }.count }
        func meanError(_ network: Sequential) throws -> Float {
            let (p, q) = (try Self.probabilities(victim, x), try Self.probabilities(network, x))
            return zip(p, q).reduce(0) { $0 + abs($1.0 - $1.1) } / Float(p.count)
        }
        let (stolen, baseline) = (agreement(surrogate), agreement(untrained))
        let (error, baselineError) = (try meanError(surrogate), try meanError(untrained))
        #expect(stolen >= 850 && error < 0.03 && error < baselineError / 3,
                "agreement \(stolen) of 1000 (untrained \(baseline)); mean probability error \(error) (untrained \(baselineError))")
        #expect(throws: ThreatError.self) {
            try EquationSolvingExtraction.extract(from: ExtractionOracle(model, policy: .label, budget: 10), architecture: spec, queries: 10,
                                                  recipe: recipe, seed: 2)
        }
        #expect(throws: ThreatError.self) {
            try EquationSolvingExtraction.extract(from: oracle, architecture: try ModelSpec.parse("20-6-6-3"), queries: 1, recipe: recipe, seed: 2)
        }
    }

    @Test("knockoff on soft labels trains on the released probability vectors (the surrogate learns the confidences too); refused against a label-only API")
    func softKnockoff() throws {
        let (victim, model) = try Self.victim("20-16-3", seed: 11)
        let pool = Self.random(400, 20, seed: 6)
        let test = LabeledData(features: Self.random(1000, 20, seed: 7), labels: Array(repeating: 0, count: 1000), classCount: 3)
        var recipe = Training.TrainingRecipe(architecture: try ModelSpec.parse("20-32-3"), epochs: 100)
        recipe.batchSize = 50
        func steal(soft: Bool) throws -> (fidelity: Double, probabilityError: Float) {
            let result = try KnockoffExtraction.extract(from: ExtractionOracle(model, budget: 400), pool: pool, recipe: recipe, checkpoints: [],
                                                        softLabels: soft, victimPredictions: victim.predictions(on: test.features), test: test, seed: 1)
            let (p, q) = (try Self.probabilities(victim, test.features), try Self.probabilities(result.surrogate, test.features))
            return (result.curve.last!.fidelity.value, zip(p, q).reduce(0) { $0 + abs($1.0 - $1.1) } / Float(p.count))
        }
        // Soft labels carry the victim's confidences: the surrogate's probabilities come out far closer.
        let (soft, hard) = (try steal(soft: true), try steal(soft: false))
        #expect(soft.fidelity > 0.8 && soft.probabilityError < hard.probabilityError / 2, "soft labels \(soft), labels \(hard)")
        #expect(throws: ThreatError.self) {
            try KnockoffExtraction.extract(from: ExtractionOracle(model, policy: .label, budget: 400), pool: pool, recipe: recipe, checkpoints: [],
                                           softLabels: true, victimPredictions: [], test: test, seed: 1)
        }
    }

    @Test("Jacobian augmentation doubles its set each round, spends exactly the budget, and keeps every query in [0, 1]")
    func jacobian() throws {
        let (victim, model) = try Self.victim("784-16-10")
        let oracle = try ExtractionOracle(model, policy: .label, budget: 100)
        let test = LabeledData(features: Self.random(30, 784, seed: 4), labels: Array(repeating: 0, count: 30), classCount: 10)
        let recipe = Training.TrainingRecipe(architecture: try ModelSpec.parse("784-8-10"), epochs: 2)
        let result = try JacobianAugmentation.extract(from: oracle, seed: Self.random(20, 784, seed: 8), recipe: recipe,
                                                      victimPredictions: victim.predictions(on: test.features), test: test, seed: 3)
        #expect(result.curve.map(\.queries) == [20, 40, 80, 100])
        #expect(oracle.queriesUsed == 100 && model.received == 100)
        // One augmentation step: each coordinate moves by ±λ (or stays, at a bound or a zero gradient), within [0, 1].
        let x = Self.random(5, 784, seed: 12)
        let stepped = JacobianAugmentation.augment(x, labels: [0, 1, 2, 3, 4], substitute: result.surrogate, step: 0.1)
        for (a, b) in zip(x.scalars, stepped.scalars) {
            #expect((0...1).contains(b) && abs(b - a) <= 0.1 + 1e-6)
        }
        #expect(zip(x.scalars, stepped.scalars).filter { abs($0 - $1) > 0.05 }.count > 1000)
        #expect(throws: ThreatError.self) {
            try JacobianAugmentation.extract(from: ExtractionOracle(model, budget: 10), seed: Self.random(20, 784, seed: 8), recipe: recipe,
                                             victimPredictions: [], test: test, seed: 3)
        }
    }
}

import Foundation
import NeuralNet
import TensorCore

/// Decoupled Direction and Norm (Rony et al., 2019, "Decoupling Direction and Norm for Efficient
/// Gradient-Based L2 Adversarial Attacks and Defenses", Algorithm 1), a minimum-norm L2 attack. It
/// takes a normalised cross-entropy gradient step and then sets the perturbation's norm to a
/// budget ε_k that shrinks while the iterate is adversarial and grows while it is not:
/// ```
/// g = ∇ₓ CE(x₀ + δ, y)
/// ε_k ← ε_k·(1 − γ) if x₀ + δ is misclassified, else ε_k·(1 + γ)   (at most the box's largest norm)
/// δ ← ε_k·(δ + α_k·g/‖g‖)/‖δ + α_k·g/‖g‖‖;  δ ← clamp(x₀ + δ, 0, 1) − x₀
/// ```
/// with α_k annealed from 1 to 0.01 by a cosine over the steps, δ₀ = 0 and ε₀ = `initialEpsilon`;
/// where the gradient is exactly zero the step takes a random Gaussian direction (as foolbox does).
/// The closest misclassified iterate is the input's result (`AttackRowResults.minimalNorm`). The
/// paper's quantisation of each iterate to 256 levels is not applied (inputs are continuous here,
/// as in foolbox). Defaults: γ = 0.05, ε₀ = 1 (the paper), 1,000 steps (the paper's longest runs).
public struct DDN: MinimumNormAttack {
    public let epsilon: Float
    public let steps: Int
    public let gamma: Float
    public let initialEpsilon: Float
    public var norm: Norm { .l2 }
    public var loss: AttackLoss { .crossEntropy }

    public static let defaultSteps = 1000

    /// - Throws: `AttackError.invalidParameter` naming a bad value.
    public init(norm: Norm = .l2, epsilon: Float, steps: Int = defaultSteps, gamma: Float = 0.05, initialEpsilon: Float = 1) throws {
        try require(norm == .l2, "norm", norm.rawValue, "DDN minimises the L2 norm (give --norm l2, or \"norm\": \"l2\")")
        try require(epsilon > 0 && epsilon.isFinite, "epsilon", epsilon, "must be a positive number")
        try require(steps >= 1 && steps <= 100_000, "steps", steps, "must be between 1 and 100000")
        try require(gamma > 0 && gamma < 1, "gamma", gamma, "must be in (0, 1)")
        try require(initialEpsilon > 0 && initialEpsilon.isFinite, "init_epsilon", initialEpsilon, "must be a positive number")
        self.epsilon = epsilon
        self.steps = steps
        self.gamma = gamma
        self.initialEpsilon = initialEpsilon
    }

    public var description: String { "DDN(ε=\(epsilon), steps=\(steps), γ=\(gamma), ε₀=\(initialEpsilon))" }

    public func validate(goal: AttackGoal, classes: Int) throws {
        if goal.isTargeted {
            throw AttackError.invalidParameter(name: "targeted", value: goal.targets!.description, requirement: "DDN is untargeted here")
        }
        try require(classes >= 2, "classes", classes, "DDN needs at least 2 classes")
    }

    /// Scratch of one shard: per attacked input (a slot) its clean input, iterate, closest
    /// misclassified iterate, its norm, the current norm budget and the box's largest norm.
    public final class Workspace: AttackWorkspace {
        public let capacity: Int
        public let features: Int
        public let results: AttackRowResults
        let clean: FloatBuffer, current: FloatBuffer, best: FloatBuffer
        let bestNorm: FloatBuffer, budget: FloatBuffer, largest: FloatBuffer, objective: FloatBuffer
        let rows: UnsafeMutablePointer<Int>, labels: UnsafeMutablePointer<Int>, predictions: UnsafeMutablePointer<Int>

        init(rows capacity: Int, features: Int) {
            self.capacity = capacity
            self.features = features
            results = AttackRowResults(capacity: capacity)
            let size = capacity * features
            (clean, current, best) = (FloatBuffer(count: size), FloatBuffer(count: size), FloatBuffer(count: size))
            (bestNorm, budget) = (FloatBuffer(count: capacity), FloatBuffer(count: capacity))
            (largest, objective) = (FloatBuffer(count: capacity), FloatBuffer(count: capacity))
            rows = allocateFilled(capacity, with: 0)
            labels = allocateFilled(capacity, with: 0)
            predictions = allocateFilled(capacity, with: 0)
        }

        deinit {
            rows.deallocate()
            labels.deallocate()
            predictions.deallocate()
        }
    }

    public func makeWorkspace(rows: Int, features: Int) -> Workspace { Workspace(rows: rows, features: features) }

    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                        workspace ws: Workspace, generator: inout RandomGenerator) throws {
        try checkShapes(clean, adversarial, workspace: ws, classifier: classifier)
        guard targets == nil else { throw AttackError.invalidParameter(name: "targets", value: "given", requirement: "DDN is untargeted here") }
        let (n, d) = (clean.rows, clean.columns)
        guard n > 0 else { return }
        adversarial.copy(from: clean)
        let m = beginMinimumNormRun(clean, labels: labels, classifier: classifier, shard: shard, results: ws.results,
                                    predictions: ws.predictions, slots: ws.rows, slotLabels: ws.labels, slotClean: ws.clean.pointer)
        guard m > 0 else { return try ball.verify(adversarial, clean: clean, results: ws.results) }
        ws.current.pointer.update(from: ws.clean.pointer, count: m * d)
        ws.bestNorm.pointer.update(repeating: .infinity, count: m)
        ws.budget.pointer.update(repeating: initialEpsilon, count: m)
        for i in 0..<m {
            let x0 = ws.clean.pointer + i * d
            var squares: Float = 0
            for j in 0..<d { squares += max(x0[j], 1 - x0[j]) * max(x0[j], 1 - x0[j]) }
            ws.largest.pointer[i] = squares.squareRoot()
        }
        for step in 0..<steps {
            let gradient = classifier.attackObjective(ws.current.matrix(rows: m, columns: d), loss: .crossEntropy, labels: ws.labels,
                                                      targets: nil, shard: shard, objective: ws.objective.pointer,
                                                      predictions: ws.predictions, withGradient: true)!
            let alpha = Float(0.01 + (1 - 0.01) * (1 + cos(Double.pi * Double(step) / Double(steps))) / 2)
            for i in 0..<m {
                let x = ws.current.pointer + i * d, x0 = ws.clean.pointer + i * d, g = gradient.row(i)
                let misclassified = ws.predictions[i] != ws.labels[i]
                if misclassified { keepIfCloser(slot: i, iterate: x, iteration: step, workspace: ws) }
                ws.budget.pointer[i] = min(ws.budget.pointer[i] * (misclassified ? 1 - gamma : 1 + gamma), ws.largest.pointer[i])
                // A zero gradient (saturated model) gives no direction: step in a random one instead, as foolbox does.
                if (0..<d).allSatisfy({ g[$0] == 0 }) { for j in 0..<d { g[j] = generator.nextGaussian() } }
                move(x, clean: x0, gradient: g, stepSize: alpha, budget: ws.budget.pointer[i], count: d)
            }
        }
        // The last iterate, which no forward pass has checked yet, is checked with the others here.
        Kernels.argmaxRows(classifier.logits(ws.current.matrix(rows: m, columns: d), shard: shard), into: ws.predictions)
        for i in 0..<m where ws.predictions[i] != ws.labels[i] {
            keepIfCloser(slot: i, iterate: ws.current.pointer + i * d, iteration: steps, workspace: ws)
        }
        finishMinimumNormRun(count: m, features: d, slots: ws.rows, best: ws.best.pointer, bestNorm: ws.bestNorm.pointer,
                             results: ws.results, into: adversarial)
        try ball.verify(adversarial, clean: clean, results: ws.results)
    }

    /// Slot `i`'s misclassified iterate is kept if it is the closest so far.
    private func keepIfCloser(slot i: Int, iterate x: UnsafeMutablePointer<Float>, iteration: Int, workspace ws: Workspace) {
        keepIfCloser(slot: i, iterate: x, iteration: iteration, features: ws.features, slotClean: ws.clean.pointer,
                     best: ws.best.pointer, bestNorm: ws.bestNorm.pointer, slots: ws.rows, results: ws.results)
    }

    /// x ← clamp(x₀ + budget·δ′/‖δ′‖, 0, 1) with δ′ = x − x₀ + α·g/‖g‖.
    private func move(_ x: UnsafeMutablePointer<Float>, clean x0: UnsafeMutablePointer<Float>, gradient g: UnsafeMutablePointer<Float>,
                      stepSize alpha: Float, budget: Float, count d: Int) {
        var gradientSquares: Float = 0
        for j in 0..<d { gradientSquares += g[j] * g[j] }
        let scale = gradientSquares > 0 ? alpha / gradientSquares.squareRoot() : 0
        var squares: Float = 0
        for j in 0..<d {
            let delta = x[j] - x0[j] + scale * g[j]
            x[j] = delta
            squares += delta * delta
        }
        let shrink = squares > 0 ? budget / squares.squareRoot() : 0
        for j in 0..<d { x[j] = min(max(x0[j] + shrink * x[j], 0), 1) }
    }
}

extension DDN {
    /// The attack's settings in an `AttackSpec` (all but ε):
    /// `{"type": "ddn", "norm": "l2", "steps": 1000, "gamma": 0.05, "init_epsilon": 1}`.
    public struct Parameters: Codable, Equatable, Sendable {
        public var norm: Norm
        public var steps: Int
        public var gamma: Float
        public var initialEpsilon: Float

        public init(norm: Norm = .l2, steps: Int = DDN.defaultSteps, gamma: Float = 0.05, initialEpsilon: Float = 1) throws {
            self.norm = norm
            self.steps = steps
            self.gamma = gamma
            self.initialEpsilon = initialEpsilon
            try validate()
        }

        static let keys: Set<String> = ["norm", "steps", "gamma", "init_epsilon"]

        enum CodingKeys: String, CodingKey {
            case norm, steps, gamma
            case initialEpsilon = "init_epsilon"
        }

        /// - Throws: `AttackError.invalidParameter` naming a bad value.
        public func validate() throws {
            _ = try DDN(norm: norm, epsilon: 1, steps: steps, gamma: gamma, initialEpsilon: initialEpsilon)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            norm = try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .l2
            steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? DDN.defaultSteps
            gamma = try c.decodeIfPresent(Float.self, forKey: .gamma) ?? 0.05
            initialEpsilon = try c.decodeIfPresent(Float.self, forKey: .initialEpsilon) ?? 1
            do { try validate() } catch { throw c.invalid(CodingKeys(stringValue: parameterName(of: error)) ?? .steps, "\(error)") }
        }
    }
}

import Foundation
import NeuralNet
import TensorCore

/// Momentum iterative FGSM (Dong et al., 2018, "Boosting Adversarial Attacks with Momentum"), L∞
/// and L2: iterative FGSM whose direction accumulates the L1-normalised gradients, which
/// stabilises the direction and transfers better to other models:
/// ```
/// g ← μ·g + ∇ₓJ(xᵏ)/‖∇ₓJ(xᵏ)‖₁
/// xᵏ⁺¹ = Π(xᵏ + α·sign(g))      (L2: α·g/‖g‖₂)
/// ```
/// from the clean input (no random start), α = ε/steps by default (the paper's), μ = 1.
/// As in PGD, each input keeps its first fooling iterate in evaluation and leaves the batch, or
/// its highest-J iterate otherwise.
public struct MIFGSM: Attack {
    public let norm: Norm
    public let epsilon: Float
    public let stepSize: Float
    public let steps: Int
    public let decay: Float
    public let loss: AttackLoss
    public let stopAtFirstSuccess: Bool
    /// With every step run: return each input's first iterate whose margin past the goal is at
    /// least κ, else its highest-J one (as `PGD.returnMargin`).
    public var returnMargin: Float?

    public static let defaultSteps = 10

    /// - Throws: `AttackError.invalidParameter` naming a bad value.
    public init(norm: Norm = .linf, epsilon: Float, stepSize: Float? = nil, steps: Int = MIFGSM.defaultSteps, decay: Float = 1,
                loss: AttackLoss = .crossEntropy, stopAtFirstSuccess: Bool = true) throws {
        try require(epsilon > 0 && epsilon.isFinite, "epsilon", epsilon, "must be a positive number")
        try require(steps >= 1 && steps <= 100_000, "steps", steps, "must be between 1 and 100000")
        try require(decay >= 0 && decay.isFinite, "decay", decay, "must be ≥ 0")
        let alpha = stepSize ?? epsilon / Float(steps)
        try require(alpha > 0 && alpha.isFinite, "step size", alpha, "must be a positive number")
        self.norm = norm
        self.epsilon = epsilon
        self.stepSize = alpha
        self.steps = steps
        self.decay = decay
        self.loss = loss
        self.stopAtFirstSuccess = stopAtFirstSuccess
    }

    public var description: String {
        "MI-FGSM(\(norm.rawValue), ε=\(epsilon), α=\(stepSize), steps=\(steps), μ=\(decay), loss=\(loss.rawValue)"
            + "\(stopAtFirstSuccess ? "" : ", highest-loss iterate"))"
    }

    /// Scratch of one shard: iterates, clean inputs and momentum of the rows (not compacted: MI-FGSM
    /// is cheap), objective values, predictions and each row's best.
    public final class Workspace: AttackWorkspace {
        public let capacity: Int
        public let features: Int
        public let results: AttackRowResults
        let current: FloatBuffer, momentum: FloatBuffer, direction: FloatBuffer
        let objective: FloatBuffer, bestObjective: FloatBuffer, margins: FloatBuffer
        let predictions: UnsafeMutablePointer<Int>
        let fooled: UnsafeMutablePointer<Bool>

        init(rows: Int, features: Int) {
            capacity = rows
            self.features = features
            results = AttackRowResults(capacity: rows)
            current = FloatBuffer(count: rows * features)
            momentum = FloatBuffer(count: rows * features)
            direction = FloatBuffer(count: rows * features)
            objective = FloatBuffer(count: rows)
            bestObjective = FloatBuffer(count: rows)
            margins = FloatBuffer(count: rows)
            predictions = allocateFilled(rows, with: 0)
            fooled = allocateFilled(rows, with: false)
        }

        deinit {
            predictions.deallocate()
            fooled.deallocate()
        }
    }

    public func makeWorkspace(rows: Int, features: Int) -> Workspace { Workspace(rows: rows, features: features) }

    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                        workspace ws: Workspace, generator: inout RandomGenerator) throws {
        try checkShapes(clean, adversarial, workspace: ws, classifier: classifier)
        let (n, d) = (clean.rows, clean.columns)
        guard n > 0 else { return }
        adversarial.copy(from: clean)
        ws.current.pointer.update(from: clean.row(0), count: n * d)
        ws.momentum.pointer.update(repeating: 0, count: n * d)
        ws.bestObjective.pointer.update(repeating: -.infinity, count: n)
        ws.fooled.update(repeating: false, count: n)
        ws.results.fooledAt.update(repeating: -1, count: n)
        let x = ws.current.matrix(rows: n, columns: d)
        for k in 0...steps {
            let gradient = classifier.attackObjective(x, loss: loss, labels: labels, targets: targets, shard: shard,
                                                      objective: ws.objective.pointer, predictions: ws.predictions, withGradient: k < steps,
                                                      margins: returnMargin == nil ? nil : ws.margins.pointer)
            if k > 0 {
                for r in 0..<n where !(stopAtFirstSuccess && ws.fooled[r]) {
                    let fools = targets.map { ws.predictions[r] == $0[r] } ?? (ws.predictions[r] != labels[r])
                    let reachedMargin = !stopAtFirstSuccess && returnMargin.map { ws.margins.pointer[r] >= $0 } == true
                    let value = reachedMargin ? Float.greatestFiniteMagnitude : ws.objective.pointer[r]
                    let better = value > ws.bestObjective.pointer[r] || ws.bestObjective.pointer[r] == -.infinity
                    if stopAtFirstSuccess ? (fools || better) : better {
                        adversarial.row(r).update(from: x.row(r), count: d)
                        ws.bestObjective.pointer[r] = value
                        if fools && !ws.fooled[r] { ws.results.fooledAt[r] = k }
                        ws.fooled[r] = ws.fooled[r] || fools
                    }
                }
            }
            guard let gradient else { break }
            for r in 0..<n where !(stopAtFirstSuccess && ws.fooled[r]) {
                let g = gradient.row(r), m = ws.momentum.pointer + r * d, direction = ws.direction.pointer + r * d
                var l1: Float = 0
                for j in 0..<d { l1 += abs(g[j]) }
                let scale = 1 / max(l1, 1e-12)
                for j in 0..<d {
                    m[j] = decay * m[j] + scale * g[j]
                    direction[j] = m[j]
                }
            }
            // The step on every row (fooled rows are not read again in evaluation).
            ball.step(x, clean: clean, gradient: ws.direction.matrix(rows: n, columns: d), stepSize: stepSize)
        }
        try ball.verify(adversarial, clean: clean, results: ws.results)
    }
}

extension MIFGSM {
    /// The attack's settings in an `AttackSpec` (all but ε):
    /// `{"type": "mi-fgsm", "norm": "linf", "loss": "ce", "steps": 10, "step_size": 0.01, "decay": 1}`.
    public struct Parameters: Codable, Equatable, Sendable {
        public var norm: Norm
        public var loss: AttackLoss
        public var steps: Int
        public var stepSize: Float?
        public var decay: Float

        public init(norm: Norm = .linf, loss: AttackLoss = .crossEntropy, steps: Int = MIFGSM.defaultSteps, stepSize: Float? = nil,
                    decay: Float = 1) throws {
            self.norm = norm
            self.loss = loss
            self.steps = steps
            self.stepSize = stepSize
            self.decay = decay
            try validate()
        }

        static let keys: Set<String> = ["norm", "loss", "steps", "step_size", "decay"]

        enum CodingKeys: String, CodingKey {
            case norm, loss, steps, decay
            case stepSize = "step_size"
        }

        /// - Throws: `AttackError.invalidParameter` naming a bad value.
        public func validate() throws {
            _ = try MIFGSM(norm: norm, epsilon: 1, stepSize: stepSize, steps: steps, decay: decay, loss: loss)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            norm = try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .linf
            loss = try c.decodeIfPresent(AttackLoss.self, forKey: .loss) ?? .crossEntropy
            steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? MIFGSM.defaultSteps
            stepSize = try c.decodeIfPresent(Float.self, forKey: .stepSize)
            decay = try c.decodeIfPresent(Float.self, forKey: .decay) ?? 1
            do { try validate() } catch { throw c.invalid(CodingKeys(stringValue: parameterName(of: error)) ?? .steps, "\(error)") }
        }
    }
}

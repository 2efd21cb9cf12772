import Foundation
import NeuralNet
import TensorCore

/// Projected gradient descent (Madry et al., 2018, "Towards Deep Learning Models Resistant to
/// Adversarial Attacks"), L∞ and L2, with random start, restarts and best-example tracking:
/// ```
/// x⁰ = x + U(ε-ball)            (random start; x⁰ = x without)
/// xᵏ⁺¹ = Π(xᵏ + α·dir(∇ₓJ(xᵏ)))   dir = sign (L∞) or g/‖g‖₂ (L2); Π = projection onto the ε-ball, then [0, 1]
/// ```
/// Every iterate after a step is a candidate: each input keeps its first iterate that fools the
/// model (misclassified, or classified as the target), otherwise the one with the highest J, across
/// steps and restarts. Since a fooled input's result can no longer change, it leaves the batch at
/// once (the returned examples are those of running every input for every step, at a fraction of
/// the cost on weak models). Restarts attack only the inputs not yet fooled. With one step, no
/// random start and α = ε it is exactly FGSM.
///
/// - Parameters:
///   - norm: `.linf` (default) or `.l2`.
///   - epsilon: budget ε > 0.
///   - stepSize: α > 0 (default 2.5·ε/steps, as in Madry et al.).
///   - steps: iterations per restart, ≥ 1 (default 10).
///   - restarts: ≥ 1 (default 1).
///   - randomStart: start uniformly inside the ε-ball (default true).
///   - loss: the objective J (default cross-entropy).
///   - stopAtFirstSuccess: keep an input's first fooling iterate and stop attacking it (default, for
///     evaluation); false runs every step for every input and keeps the iterate with the highest J,
///     which adversarial training uses (as the MadryLab `robustness` library does by default,
///     `use_best`; Madry et al.'s original code trains on the last iterate, which at α = 2.5·ε/steps
///     is almost always the same one).
public struct PGD: Attack {
    public let norm: Norm
    public let epsilon: Float
    public let stepSize: Float
    public let steps: Int
    public let restarts: Int
    public let randomStart: Bool
    public let loss: AttackLoss
    public let stopAtFirstSuccess: Bool
    /// With every step run (not `stopAtFirstSuccess`): return each input's first iterate whose
    /// margin past the goal is at least κ (C&W's confidence), else its highest-J one.
    public var returnMargin: Float?

    /// Default number of iterations.
    public static let defaultSteps = 10

    /// Madry et al.'s default step size: 2.5·ε/steps.
    public static func defaultStepSize(epsilon: Float, steps: Int) -> Float { 2.5 * epsilon / Float(steps) }

    /// - Throws: `AttackError.invalidParameter` naming a bad value.
    public init(norm: Norm = .linf, epsilon: Float, stepSize: Float? = nil, steps: Int = PGD.defaultSteps, restarts: Int = 1,
                randomStart: Bool = true, loss: AttackLoss = .crossEntropy, stopAtFirstSuccess: Bool = true) throws {
        try require(epsilon > 0 && epsilon.isFinite, "epsilon", epsilon, "must be a positive number")
        try require(steps >= 1 && steps <= 100_000, "steps", steps, "must be between 1 and 100000")
        try require(restarts >= 1 && restarts <= 1000, "restarts", restarts, "must be between 1 and 1000")
        let alpha = stepSize ?? Self.defaultStepSize(epsilon: epsilon, steps: steps)
        try require(alpha > 0 && alpha.isFinite, "step size", alpha, "must be a positive number")
        self.norm = norm
        self.epsilon = epsilon
        self.stepSize = alpha
        self.steps = steps
        self.restarts = restarts
        self.randomStart = randomStart
        self.loss = loss
        self.stopAtFirstSuccess = stopAtFirstSuccess
    }

    public var description: String {
        "PGD(\(norm.rawValue), ε=\(epsilon), α=\(stepSize), steps=\(steps), restarts=\(restarts), "
            + "random start=\(randomStart), loss=\(loss.rawValue)\(stopAtFirstSuccess ? "" : returnMargin.map { ", first iterate with margin ≥ \($0)" } ?? ", strongest iterate"))"
    }

    /// Scratch of one shard: the iterates and clean inputs of the rows still attacked (compacted),
    /// their objective values, labels, targets and predictions, and each row's best so far.
    public final class Workspace: AttackWorkspace {
        public let capacity: Int
        public let features: Int
        public let results: AttackRowResults
        let current: FloatBuffer                       // (rows, features) iterates of the active rows
        let activeClean: FloatBuffer                   // (rows, features) their clean inputs
        let objective: FloatBuffer                     // (rows) J of the active rows
        let bestObjective: FloatBuffer                 // (rows) best J per shard row
        let margins: FloatBuffer                       // (rows) margin past the goal of the active rows
        let activeLabels: UnsafeMutablePointer<Int>    // (rows)
        let activeTargets: UnsafeMutablePointer<Int>   // (rows)
        let predictions: UnsafeMutablePointer<Int>     // (rows) of the active rows
        let activeRows: UnsafeMutablePointer<Int>      // (rows) shard row of each active row
        let fooled: UnsafeMutablePointer<Bool>         // (rows) per shard row

        init(rows: Int, features: Int) {
            capacity = rows
            self.features = features
            results = AttackRowResults(capacity: rows)
            current = FloatBuffer(count: rows * features)
            activeClean = FloatBuffer(count: rows * features)
            objective = FloatBuffer(count: rows)
            bestObjective = FloatBuffer(count: rows)
            margins = FloatBuffer(count: rows)
            activeLabels = allocateFilled(rows, with: 0)
            activeTargets = allocateFilled(rows, with: 0)
            predictions = allocateFilled(rows, with: 0)
            activeRows = allocateFilled(rows, with: 0)
            fooled = allocateFilled(rows, with: false)
        }

        deinit {
            activeLabels.deallocate()
            activeTargets.deallocate()
            predictions.deallocate()
            activeRows.deallocate()
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
        ws.bestObjective.pointer.update(repeating: -.infinity, count: n)
        ws.fooled.update(repeating: false, count: n)
        ws.results.fooledAt.update(repeating: -1, count: n)

        for restart in 0..<restarts {
            let m = activate(restart: restart, clean: clean, labels: labels, targets: targets, workspace: ws)
            if m == 0 { break }
            if randomStart {
                ball.randomPoint(ws.current.matrix(rows: m, columns: d), around: ws.activeClean.matrix(rows: m, columns: d),
                                 generator: &generator)
            }
            iterate(active: m, targeted: targets != nil, classifier: classifier, shard: shard, into: adversarial, workspace: ws,
                    firstStep: restart * steps)
        }
        try ball.verify(adversarial, clean: clean, results: ws.results)
    }

    /// Copies the rows a restart attacks (all of them first, then those not yet fooled) into the
    /// workspace, compacted, starting at their clean inputs. Returns their number.
    private func activate(restart: Int, clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                          workspace ws: Workspace) -> Int {
        let d = clean.columns
        var m = 0
        for r in 0..<clean.rows where restart == 0 || !ws.fooled[r] {
            ws.activeRows[m] = r
            ws.activeClean.pointer.advanced(by: m * d).update(from: clean.row(r), count: d)
            ws.activeLabels[m] = labels[r]
            if let targets { ws.activeTargets[m] = targets[r] }
            m += 1
        }
        ws.current.pointer.update(from: ws.activeClean.pointer, count: m * d)
        return m
    }

    /// The steps of one restart on the `m` active rows.
    private func iterate(active: Int, targeted: Bool, classifier: any DifferentiableClassifier, shard: Int,
                         into adversarial: MatrixRef, workspace ws: Workspace, firstStep: Int) {
        let d = ws.features
        var m = active
        let targets: UnsafePointer<Int>? = targeted ? UnsafePointer(ws.activeTargets) : nil
        for k in 0...steps {
            let x = ws.current.matrix(rows: m, columns: d)
            let gradient = classifier.attackObjective(x, loss: loss, labels: ws.activeLabels, targets: targets, shard: shard,
                                                      objective: ws.objective.pointer, predictions: ws.predictions,
                                                      withGradient: k < steps, margins: returnMargin == nil ? nil : ws.margins.pointer)
            if k > 0 { keepBest(x, active: m, targets: targets, into: adversarial, workspace: ws, step: firstStep + k) }
            guard let gradient else { break }
            ball.step(x, clean: ws.activeClean.matrix(rows: m, columns: d), gradient: gradient, stepSize: stepSize)
            if k > 0 && stopAtFirstSuccess {
                m = dropFooled(active: m, workspace: ws)
                if m == 0 { break }
            }
        }
    }

    /// Removes the rows whose best example already fools the model from the active set (keeping
    /// order), so later steps compute nothing for them. Returns the new number of active rows.
    private func dropFooled(active m: Int, workspace ws: Workspace) -> Int {
        let d = ws.features
        var kept = 0
        for i in 0..<m where !ws.fooled[ws.activeRows[i]] {
            if kept != i {
                ws.current.pointer.advanced(by: kept * d).update(from: ws.current.pointer.advanced(by: i * d), count: d)
                ws.activeClean.pointer.advanced(by: kept * d).update(from: ws.activeClean.pointer.advanced(by: i * d), count: d)
                ws.activeRows[kept] = ws.activeRows[i]
                ws.activeLabels[kept] = ws.activeLabels[i]
                ws.activeTargets[kept] = ws.activeTargets[i]
            }
            kept += 1
        }
        return kept
    }

    /// Keeps, per input, the first iterate that fools the model, else the one with the highest J, and
    /// the model's prediction for it.
    private func keepBest(_ x: MatrixRef, active m: Int, targets: UnsafePointer<Int>?, into adversarial: MatrixRef,
                          workspace ws: Workspace, step: Int) {
        for i in 0..<m {
            let r = ws.activeRows[i]
            if ws.fooled[r] && stopAtFirstSuccess { continue }
            let prediction = ws.predictions[i]
            let fools = targets.map { prediction == $0[i] } ?? (prediction != ws.activeLabels[i])
            // With κ: an iterate κ past the goal outranks every other, and the first such one is kept.
            let reachedMargin = !stopAtFirstSuccess && returnMargin.map { ws.margins.pointer[i] >= $0 } == true
            let value = reachedMargin ? Float.greatestFiniteMagnitude : ws.objective.pointer[i]
            // The first candidate is always kept (even with a NaN objective), so every row has one.
            let better = value > ws.bestObjective.pointer[r] || ws.bestObjective.pointer[r] == -.infinity
            if stopAtFirstSuccess ? (fools || better) : better {
                adversarial.row(r).update(from: x.row(i), count: x.columns)
                ws.bestObjective.pointer[r] = value
                if fools && !ws.fooled[r] && ws.results.fooledAt[r] < 0 { ws.results.fooledAt[r] = step }
                ws.fooled[r] = fools
            }
        }
    }
}

extension PGD {
    /// The attack's settings in an `AttackSpec` (all but ε):
    /// `{"type": "pgd", "norm": "linf", "loss": "ce", "steps": 10, "step_size": 0.01 | "relative_step_size": 0.1,
    ///   "restarts": 1, "random_start": true}`; omitted fields take the defaults above.
    public struct Parameters: Codable, Equatable, Sendable {
        public var norm: Norm
        public var loss: AttackLoss
        public var steps: Int
        public var stepSize: StepSize?
        public var restarts: Int
        public var randomStart: Bool

        public init(norm: Norm = .linf, loss: AttackLoss = .crossEntropy, steps: Int = PGD.defaultSteps,
                    stepSize: StepSize? = nil, restarts: Int = 1, randomStart: Bool = true) throws {
            self.norm = norm
            self.loss = loss
            self.steps = steps
            self.stepSize = stepSize
            self.restarts = restarts
            self.randomStart = randomStart
            try validate()
        }

        static let keys: Set<String> = ["norm", "loss", "steps", "step_size", "relative_step_size", "restarts", "random_start"]

        enum CodingKeys: String, CodingKey {
            case norm, loss, steps, restarts
            case stepSize = "step_size", relativeStepSize = "relative_step_size", randomStart = "random_start"
        }

        /// - Throws: `AttackError.invalidParameter` naming a bad value (checks that need ε are in
        ///   `makeAttack`).
        public func validate() throws {
            try require(steps >= 1 && steps <= 100_000, "steps", steps, "must be between 1 and 100000")
            try require(restarts >= 1 && restarts <= 1000, "restarts", restarts, "must be between 1 and 1000")
            switch stepSize {
            case .absolute(let alpha)?: try require(alpha > 0 && alpha.isFinite, "step_size", alpha, "must be a positive number")
            case .relative(let r)?: try require(r > 0 && r.isFinite, "relative_step_size", r, "must be a positive number")
            case nil: break
            }
        }

        /// α at budget ε.
        public func stepSize(epsilon: Float) -> Float {
            switch stepSize {
            case .absolute(let alpha)?: return alpha
            case .relative(let r)?: return r * epsilon
            case nil: return PGD.defaultStepSize(epsilon: epsilon, steps: steps)
            }
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            norm = try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .linf
            loss = try c.decodeIfPresent(AttackLoss.self, forKey: .loss) ?? .crossEntropy
            steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? PGD.defaultSteps
            restarts = try c.decodeIfPresent(Int.self, forKey: .restarts) ?? 1
            randomStart = try c.decodeIfPresent(Bool.self, forKey: .randomStart) ?? true
            switch (try c.decodeIfPresent(Float.self, forKey: .stepSize), try c.decodeIfPresent(Float.self, forKey: .relativeStepSize)) {
            case (let alpha?, nil): stepSize = .absolute(alpha)
            case (nil, let r?): stepSize = .relative(r)
            case (nil, nil): stepSize = nil
            case (_?, _?): throw c.invalid(.relativeStepSize, "give either step_size or relative_step_size, not both")
            }
            do { try validate() } catch { throw c.invalid(.steps, "\(error)") }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(norm, forKey: .norm)
            try c.encode(loss, forKey: .loss)
            try c.encode(steps, forKey: .steps)
            try c.encode(restarts, forKey: .restarts)
            try c.encode(randomStart, forKey: .randomStart)
            switch stepSize {
            case .absolute(let alpha)?: try c.encode(alpha, forKey: .stepSize)
            case .relative(let r)?: try c.encode(r, forKey: .relativeStepSize)
            case nil: break
            }
        }
    }

    /// How α is given: absolute, or relative to ε (α = r·ε), which suits an ε grid.
    public enum StepSize: Equatable, Sendable {
        case absolute(Float)
        case relative(Float)
    }
}

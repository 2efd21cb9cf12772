import Foundation
import NeuralNet
import TensorCore

/// Auto-PGD (Croce & Hein, 2020, "Reliable evaluation of adversarial robustness with an ensemble of
/// diverse parameter-free attacks", Algorithm 1), L∞ and L2: PGD with momentum and a step size that
/// halves itself when progress stalls, so it needs no step-size tuning.
/// ```
/// z⁽ᵏ⁺¹⁾ = P(x⁽ᵏ⁾ + η⁽ᵏ⁾·dir(∇J(x⁽ᵏ⁾)))
/// x⁽ᵏ⁺¹⁾ = P(x⁽ᵏ⁾ + a·(z⁽ᵏ⁺¹⁾ − x⁽ᵏ⁾) + (1 − a)·(x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾))      a = 0.75 (1 at the first step)
/// ```
/// η starts at 2ε. At the checkpoints wⱼ (0.22, 0.41, 0.57, … of the iterations) an input's η is
/// halved and its iterate reset to its highest-J point if J rose in at most ρ of the steps since the
/// last checkpoint, or if η was not halved last time and the best J has not improved since.
///
/// The details follow the authors' code (fra31/auto-attack, `APGDAttack.attack_single_run`), since
/// results are compared with it: the random start is a point on the ε-sphere of the norm (L∞:
/// x + ε·t/‖t‖∞, t uniform in [−1, 1]ᵈ; L2: x + ε·t/‖t‖₂, t Gaussian), clamped to [0, 1]; the L2
/// projection rescales onto the ball and then clamps; misclassification is sticky from the random
/// start on; the first checkpoint's window compares the first step's J with 0.
///
/// In evaluation (`stopAtFirstSuccess`) inputs misclassified at the clean point are not attacked,
/// and an input leaves the batch at its first fooling iterate, which is what is returned for it
/// (other inputs cannot be affected: every input has its own η); inputs never fooled return their
/// highest-J point. Otherwise (training, saved or transferred examples) every input is attacked,
/// runs every step, and returns its highest-J point; an input counts as fooled (and is left out of
/// later restarts and targets) only if that returned point fools the model.
///
/// - Parameters:
///   - norm: `.linf` (default) or `.l2`.
///   - epsilon: budget ε > 0.
///   - steps: iterations per restart (default 100, as in AutoAttack).
///   - restarts: ≥ 1; each restart attacks only the inputs not yet fooled, from a new random start.
///   - loss: the objective (cross-entropy for APGD-CE, `dlr` for APGD-DLR).
///   - rho: ρ of the oscillation condition (0.75).
public struct APGD: Attack {
    public let norm: Norm
    public let epsilon: Float
    public let steps: Int
    public let restarts: Int
    public let loss: AttackLoss
    public let rho: Float
    public let stopAtFirstSuccess: Bool

    /// AutoAttack's iterations per run.
    public static let defaultSteps = 100
    /// The momentum weight a.
    public static let momentum: Float = 0.75

    /// - Throws: `AttackError.invalidParameter` naming a bad value.
    public init(norm: Norm = .linf, epsilon: Float, steps: Int = APGD.defaultSteps, restarts: Int = 1,
                loss: AttackLoss = .crossEntropy, rho: Float = 0.75, stopAtFirstSuccess: Bool = true) throws {
        try require(epsilon > 0 && epsilon.isFinite, "epsilon", epsilon, "must be a positive number")
        try require(steps >= 1 && steps <= 100_000, "steps", steps, "must be between 1 and 100000")
        try require(restarts >= 1 && restarts <= 1000, "restarts", restarts, "must be between 1 and 1000")
        try require(rho > 0 && rho < 1, "rho", rho, "must be between 0 and 1")
        self.norm = norm
        self.epsilon = epsilon
        self.steps = steps
        self.restarts = restarts
        self.loss = loss
        self.rho = rho
        self.stopAtFirstSuccess = stopAtFirstSuccess
    }

    public var description: String {
        "APGD(\(norm.rawValue), ε=\(epsilon), steps=\(steps), restarts=\(restarts), loss=\(loss.rawValue)"
            + "\(stopAtFirstSuccess ? "" : ", highest-loss iterate"))"
    }

    /// The checkpoint schedule for `steps` iterations: the first interval (0.22·N), the smallest
    /// (0.06·N) and the decrease after each checkpoint (0.03·N), each at least 1.
    struct Schedule {
        let first: Int, minimum: Int, decrease: Int

        init(steps: Int) {
            let n = Double(steps)
            first = max(Int(0.22 * n), 1)
            minimum = max(Int(0.06 * n), 1)
            decrease = max(Int(0.03 * n), 1)
        }

        /// The interval after a checkpoint that ended an interval of `interval` iterations.
        func interval(after interval: Int) -> Int { max(interval - decrease, minimum) }

        /// The iterations (0-based) after which a checkpoint runs, with the window length of each
        /// (what `run` does, for tests and documentation).
        func checkpoints(steps: Int) -> [(iteration: Int, window: Int)] {
            var result: [(Int, Int)] = []
            var interval = first, since = 0
            for i in 0..<steps {
                since += 1
                if since == interval {
                    result.append((i, interval))
                    interval = self.interval(after: interval)
                    since = 0
                }
            }
            return result
        }
    }

    /// Scratch of one shard. Per active row (compacted, like PGD's): the iterate, the previous
    /// iterate, the highest-J point and the gradients at the iterate and at that point, the clean
    /// input; per-row step sizes and checkpoint state; per shard row whether it is fooled and the
    /// highest J returned so far.
    public final class Workspace: AttackWorkspace {
        public let capacity: Int
        public let features: Int
        public let results: AttackRowResults
        let current: FloatBuffer, previous: FloatBuffer, best: FloatBuffer
        let gradient: FloatBuffer, bestGradient: FloatBuffer, activeClean: FloatBuffer
        let objective: FloatBuffer, bestObjective: FloatBuffer, lastCheckObjective: FloatBuffer
        let lastObjective: FloatBuffer, stepSizes: FloatBuffer
        let increases: UnsafeMutablePointer<Int>
        let reducedLastCheck: UnsafeMutablePointer<Bool>
        /// Whether each row's highest-J point fools the model.
        let bestFools: UnsafeMutablePointer<Bool>
        let activeLabels: UnsafeMutablePointer<Int>, activeTargets: UnsafeMutablePointer<Int>
        let predictions: UnsafeMutablePointer<Int>, activeRows: UnsafeMutablePointer<Int>
        /// Per shard row.
        let fooled: UnsafeMutablePointer<Bool>
        let returnedObjective: FloatBuffer

        init(rows: Int, features: Int) {
            capacity = rows
            self.features = features
            results = AttackRowResults(capacity: rows)
            current = FloatBuffer(count: rows * features)
            previous = FloatBuffer(count: rows * features)
            best = FloatBuffer(count: rows * features)
            gradient = FloatBuffer(count: rows * features)
            bestGradient = FloatBuffer(count: rows * features)
            activeClean = FloatBuffer(count: rows * features)
            objective = FloatBuffer(count: rows)
            bestObjective = FloatBuffer(count: rows)
            lastCheckObjective = FloatBuffer(count: rows)
            lastObjective = FloatBuffer(count: rows)
            stepSizes = FloatBuffer(count: rows)
            increases = allocateFilled(rows, with: 0)
            reducedLastCheck = allocateFilled(rows, with: true)
            bestFools = allocateFilled(rows, with: false)
            activeLabels = allocateFilled(rows, with: 0)
            activeTargets = allocateFilled(rows, with: 0)
            predictions = allocateFilled(rows, with: 0)
            activeRows = allocateFilled(rows, with: 0)
            fooled = allocateFilled(rows, with: false)
            returnedObjective = FloatBuffer(count: rows)
        }

        deinit {
            increases.deallocate()
            reducedLastCheck.deallocate()
            bestFools.deallocate()
            activeLabels.deallocate()
            activeTargets.deallocate()
            predictions.deallocate()
            activeRows.deallocate()
            fooled.deallocate()
        }

        /// Moves active row `i` to slot `j` (compaction), with all its per-row state.
        func moveRow(_ i: Int, to j: Int) {
            let d = features
            func moveVector(_ buffer: FloatBuffer) {
                buffer.pointer.advanced(by: j * d).update(from: buffer.pointer.advanced(by: i * d), count: d)
            }
            func moveScalar(_ buffer: FloatBuffer) { buffer.pointer[j] = buffer.pointer[i] }
            moveVector(current); moveVector(previous); moveVector(best)
            moveVector(gradient); moveVector(bestGradient); moveVector(activeClean)
            moveScalar(objective); moveScalar(bestObjective); moveScalar(lastCheckObjective)
            moveScalar(lastObjective); moveScalar(stepSizes)
            increases[j] = increases[i]
            reducedLastCheck[j] = reducedLastCheck[i]
            bestFools[j] = bestFools[i]
            activeLabels[j] = activeLabels[i]
            activeTargets[j] = activeTargets[i]
            predictions[j] = predictions[i]
            activeRows[j] = activeRows[i]
        }
    }

    public func makeWorkspace(rows: Int, features: Int) -> Workspace { Workspace(rows: rows, features: features) }

    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                        workspace ws: Workspace, generator: inout RandomGenerator) throws {
        try checkShapes(clean, adversarial, workspace: ws, classifier: classifier)
        guard clean.rows > 0 else { return }
        begin(clean, labels: labels, targets: targets, into: adversarial, classifier: classifier, shard: shard, workspace: ws)
        for restart in 0..<restarts {
            let m = activate(clean: clean, labels: labels, targets: targets, workspace: ws)
            if m == 0 { break }
            run(active: m, targets: targets != nil, success: targets != nil ? .reachedTarget : .misclassified,
                classifier: classifier, shard: shard, into: adversarial, workspace: ws, generator: &generator, firstStep: restart * steps)
        }
        try ball.verify(adversarial, clean: clean, results: ws.results)
    }

    /// What counts as fooling the model: any wrong class (untargeted, and APGD-T), or the target.
    enum Success {
        case misclassified, reachedTarget
    }

    /// Starts a shard: the output is the clean input. In evaluation, inputs the model already gets
    /// wrong (or already classifies as their target) count as fooled and are not attacked.
    func begin(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?, into adversarial: MatrixRef,
               classifier: any DifferentiableClassifier, shard: Int, workspace ws: Workspace) {
        let n = clean.rows
        adversarial.copy(from: clean)
        Kernels.argmaxRows(classifier.logits(clean, shard: shard), into: ws.predictions)
        for r in 0..<n {
            ws.fooled[r] = stopAtFirstSuccess && (targets.map { ws.predictions[r] == $0[r] } ?? (ws.predictions[r] != labels[r]))
        }
        ws.returnedObjective.pointer.update(repeating: -.infinity, count: n)
        ws.results.fooledAt.update(repeating: -1, count: n)
        for r in 0..<n where ws.fooled[r] { ws.results.fooledAt[r] = 0 }
    }

    /// Copies the rows not yet fooled into the workspace, compacted. Returns their number.
    func activate(clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?, workspace ws: Workspace) -> Int {
        let d = clean.columns
        var m = 0
        for r in 0..<clean.rows where !ws.fooled[r] {
            ws.activeRows[m] = r
            ws.activeClean.pointer.advanced(by: m * d).update(from: clean.row(r), count: d)
            ws.activeLabels[m] = labels[r]
            if let targets { ws.activeTargets[m] = targets[r] }
            m += 1
        }
        return m
    }

    /// One run of Algorithm 1 on the `m` active rows (their targets, if `targets`, in
    /// `ws.activeTargets`), from a random start.
    /// `firstStep`: the iterations of earlier runs on these inputs (for `fooledAt`).
    func run(active: Int, targets targeted: Bool, success: Success, classifier: any DifferentiableClassifier, shard: Int,
             into adversarial: MatrixRef, workspace ws: Workspace, generator: inout RandomGenerator, firstStep: Int) {
        let d = ws.features
        var m = active
        let targets: UnsafePointer<Int>? = targeted ? UnsafePointer(ws.activeTargets) : nil
        randomStart(rows: m, workspace: ws, generator: &generator)
        evaluate(rows: m, targets: targets, classifier: classifier, shard: shard, workspace: ws)
        ws.previous.pointer.update(from: ws.current.pointer, count: m * d)
        ws.best.pointer.update(from: ws.current.pointer, count: m * d)
        ws.bestGradient.pointer.update(from: ws.gradient.pointer, count: m * d)
        ws.bestObjective.pointer.update(from: ws.objective.pointer, count: m)
        ws.lastCheckObjective.pointer.update(from: ws.objective.pointer, count: m)
        ws.lastObjective.pointer.update(repeating: 0, count: m)  // the reference compares the first step's J with 0
        ws.stepSizes.pointer.update(repeating: 2 * epsilon, count: m)
        ws.increases.update(repeating: 0, count: m)
        ws.reducedLastCheck.update(repeating: true, count: m)
        // A success at a later run's random start counts as that run's first iteration.
        recordFooled(rows: m, success: success, into: adversarial, workspace: ws, step: firstStep == 0 ? 0 : firstStep + 1)
        for i in 0..<m { ws.bestFools[i] = fools(i, success: success, workspace: ws) }
        if stopAtFirstSuccess { m = dropFooled(active: m, workspace: ws) }

        let schedule = Schedule(steps: steps)
        var interval = schedule.first, sinceCheck = 0
        for i in 0..<steps where m > 0 {
            step(rows: m, momentum: i == 0 ? 1 : Self.momentum, workspace: ws)
            evaluate(rows: m, targets: targets, classifier: classifier, shard: shard, workspace: ws)
            recordFooled(rows: m, success: success, into: adversarial, workspace: ws, step: firstStep + i + 1)
            trackBest(rows: m, success: success, workspace: ws)
            sinceCheck += 1
            if sinceCheck == interval {
                checkpoint(rows: m, interval: interval, workspace: ws)
                interval = schedule.interval(after: interval)
                sinceCheck = 0
            }
            if stopAtFirstSuccess { m = dropFooled(active: m, workspace: ws) }
        }
        // Inputs still in the batch return their highest-J point (across restarts and targets);
        // when every step runs, an input is fooled if and only if that returned point fools.
        for i in 0..<m {
            let r = ws.activeRows[i]
            guard !(stopAtFirstSuccess && ws.fooled[r]) else { continue }
            let value = ws.bestObjective.pointer[i]
            if value > ws.returnedObjective.pointer[r] || ws.returnedObjective.pointer[r] == -.infinity {
                ws.returnedObjective.pointer[r] = value
                adversarial.row(r).update(from: ws.best.pointer.advanced(by: i * d), count: d)
                if !stopAtFirstSuccess { ws.fooled[r] = ws.bestFools[i] }
            }
        }
    }

    /// Whether active row `i`'s current iterate fools the model.
    private func fools(_ i: Int, success: Success, workspace ws: Workspace) -> Bool {
        success == .reachedTarget ? ws.predictions[i] == ws.activeTargets[i] : ws.predictions[i] != ws.activeLabels[i]
    }

    /// J, predictions and ∂J/∂x at the current iterates (the gradient copied into the workspace).
    private func evaluate(rows m: Int, targets: UnsafePointer<Int>?, classifier: any DifferentiableClassifier, shard: Int,
                          workspace ws: Workspace) {
        let d = ws.features
        let x = ws.current.matrix(rows: m, columns: d)
        let gradient = classifier.attackObjective(x, loss: loss, labels: ws.activeLabels, targets: targets, shard: shard,
                                                  objective: ws.objective.pointer, predictions: ws.predictions,
                                                  withGradient: true)!
        for i in 0..<m { ws.gradient.pointer.advanced(by: i * d).update(from: gradient.row(i), count: d) }
    }

    /// The random start on the ε-sphere of the norm, clamped to [0, 1].
    private func randomStart(rows m: Int, workspace ws: Workspace, generator: inout RandomGenerator) {
        let d = ws.features
        for i in 0..<m {
            let x = ws.current.pointer + i * d, clean = ws.activeClean.pointer + i * d
            var size: Float = 0
            switch norm {
            case .linf:
                for j in 0..<d {
                    x[j] = generator.nextFloat(in: -1, 1)
                    size = max(size, abs(x[j]))
                }
            case .l2:
                for j in 0..<d {
                    x[j] = generator.nextGaussian()
                    size += x[j] * x[j]
                }
                size = size.squareRoot()
            }
            let scale = epsilon / (size + 1e-12)
            for j in 0..<d { x[j] = min(max(clean[j] + scale * x[j], 0), 1) }
        }
    }

    /// One momentum step of every active row, each with its own step size.
    private func step(rows m: Int, momentum a: Float, workspace ws: Workspace) {
        let d = ws.features
        for i in 0..<m {
            let x = ws.current.pointer + i * d, old = ws.previous.pointer + i * d
            let clean = ws.activeClean.pointer + i * d, g = ws.gradient.pointer + i * d
            let eta = ws.stepSizes.pointer[i]
            switch norm {
            case .linf:
                Kernels.apgdLinfStep(x, previous: old, clean: clean, gradient: g, count: d, stepSize: eta, momentum: a, epsilon: epsilon)
            case .l2:
                var squares: Float = 0
                for j in 0..<d { squares += g[j] * g[j] }
                let scale = eta / (squares.squareRoot() + 1e-12)
                // z = P(x + η·g/‖g‖), kept in `old`'s slot after the momentum term is taken from it.
                for j in 0..<d {
                    let z = x[j] + scale * g[j]
                    let momentumTerm = x[j] - old[j]
                    old[j] = x[j]
                    x[j] = z
                    g[j] = momentumTerm  // the gradient is not needed again until the next evaluation
                }
                project(x, clean: clean, count: d)
                for j in 0..<d { x[j] = old[j] + a * (x[j] - old[j]) + (1 - a) * g[j] }
                project(x, clean: clean, count: d)
            }
        }
    }

    /// L2: rescales v − clean onto the ε-ball, then clamps to [0, 1] (the reference's projection).
    private func project(_ v: UnsafeMutablePointer<Float>, clean: UnsafeMutablePointer<Float>, count d: Int) {
        var squares: Float = 0
        for j in 0..<d { squares += (v[j] - clean[j]) * (v[j] - clean[j]) }
        let size = squares.squareRoot()
        let scale = min(epsilon, size) / (size + 1e-12)
        for j in 0..<d { v[j] = min(max(clean[j] + (v[j] - clean[j]) * scale, 0), 1) }
    }

    /// In evaluation, marks active rows whose current iterate fools the model, keeping the first
    /// fooling iterate.
    private func recordFooled(rows m: Int, success: Success, into adversarial: MatrixRef, workspace ws: Workspace, step: Int) {
        guard stopAtFirstSuccess else { return }
        for i in 0..<m {
            let r = ws.activeRows[i]
            guard fools(i, success: success, workspace: ws), !ws.fooled[r] else { continue }
            ws.fooled[r] = true
            ws.results.fooledAt[r] = step
            adversarial.row(r).update(from: ws.current.pointer + i * ws.features, count: ws.features)
        }
    }

    /// Counts J's rises and keeps each row's highest-J point and its gradient (strict improvement).
    private func trackBest(rows m: Int, success: Success, workspace ws: Workspace) {
        let d = ws.features
        for i in 0..<m {
            let value = ws.objective.pointer[i]
            if value > ws.lastObjective.pointer[i] { ws.increases[i] += 1 }
            ws.lastObjective.pointer[i] = value
            if value > ws.bestObjective.pointer[i] {
                ws.bestObjective.pointer[i] = value
                ws.bestFools[i] = fools(i, success: success, workspace: ws)
                ws.best.pointer.advanced(by: i * d).update(from: ws.current.pointer + i * d, count: d)
                ws.bestGradient.pointer.advanced(by: i * d).update(from: ws.gradient.pointer + i * d, count: d)
            }
        }
    }

    /// A checkpoint: halves η and returns to the highest-J point for the rows whose J oscillated
    /// (rose in at most ρ·interval steps) or stalled (η not halved last time and no new best).
    private func checkpoint(rows m: Int, interval: Int, workspace ws: Workspace) {
        let d = ws.features
        for i in 0..<m {
            let oscillating = Float(ws.increases[i]) <= Float(interval) * rho
            let stalled = !ws.reducedLastCheck[i] && ws.lastCheckObjective.pointer[i] >= ws.bestObjective.pointer[i]
            let reduce = oscillating || stalled
            ws.reducedLastCheck[i] = reduce
            ws.lastCheckObjective.pointer[i] = ws.bestObjective.pointer[i]
            ws.increases[i] = 0
            if reduce {
                ws.stepSizes.pointer[i] /= 2
                ws.current.pointer.advanced(by: i * d).update(from: ws.best.pointer + i * d, count: d)
                ws.gradient.pointer.advanced(by: i * d).update(from: ws.bestGradient.pointer + i * d, count: d)
            }
        }
    }

    /// Removes fooled rows from the active set, keeping order. Returns the new number of active rows.
    private func dropFooled(active m: Int, workspace ws: Workspace) -> Int {
        var kept = 0
        for i in 0..<m where !ws.fooled[ws.activeRows[i]] {
            if kept != i { ws.moveRow(i, to: kept) }
            kept += 1
        }
        return kept
    }
}

extension APGD {
    /// The attack's settings in an `AttackSpec` (all but ε):
    /// `{"type": "apgd", "norm": "linf", "loss": "ce", "steps": 100, "restarts": 1, "rho": 0.75}`;
    /// omitted fields take the defaults above.
    public struct Parameters: Codable, Equatable, Sendable {
        public var norm: Norm
        public var loss: AttackLoss
        public var steps: Int
        public var restarts: Int
        public var rho: Float

        public init(norm: Norm = .linf, loss: AttackLoss = .crossEntropy, steps: Int = APGD.defaultSteps,
                    restarts: Int = 1, rho: Float = 0.75) throws {
            self.norm = norm
            self.loss = loss
            self.steps = steps
            self.restarts = restarts
            self.rho = rho
            try validate()
        }

        static let keys: Set<String> = ["norm", "loss", "steps", "restarts", "rho"]

        /// - Throws: `AttackError.invalidParameter` naming a bad value.
        public func validate() throws {
            try require(steps >= 1 && steps <= 100_000, "steps", steps, "must be between 1 and 100000")
            try require(restarts >= 1 && restarts <= 1000, "restarts", restarts, "must be between 1 and 1000")
            try require(rho > 0 && rho < 1, "rho", rho, "must be between 0 and 1")
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            norm = try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .linf
            loss = try c.decodeIfPresent(AttackLoss.self, forKey: .loss) ?? .crossEntropy
            steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? APGD.defaultSteps
            restarts = try c.decodeIfPresent(Int.self, forKey: .restarts) ?? 1
            rho = try c.decodeIfPresent(Float.self, forKey: .rho) ?? 0.75
            do { try validate() } catch { throw c.invalid(CodingKeys(stringValue: parameterName(of: error)) ?? .steps, "\(error)") }
        }
    }
}

/// The name of the parameter an `AttackError.invalidParameter` is about (for the JSON key of a decoding error).
func parameterName(of error: any Error) -> String {
    if case AttackError.invalidParameter(let name, _, _) = error { return name }
    return ""
}

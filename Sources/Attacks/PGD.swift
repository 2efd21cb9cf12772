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
///     as adversarial training wants (Madry et al. train on the strongest examples).
public struct PGD: Attack {
    public let norm: Norm
    public let epsilon: Float
    public let stepSize: Float
    public let steps: Int
    public let restarts: Int
    public let randomStart: Bool
    public let loss: AttackLoss
    public let stopAtFirstSuccess: Bool

    /// - Throws: `AttackError.invalidParameter` naming a bad value.
    public init(norm: Norm = .linf, epsilon: Float, stepSize: Float? = nil, steps: Int = 10, restarts: Int = 1,
                randomStart: Bool = true, loss: AttackLoss = .crossEntropy, stopAtFirstSuccess: Bool = true) throws {
        try require(epsilon > 0 && epsilon.isFinite, "epsilon", epsilon, "must be a positive number")
        try require(steps >= 1 && steps <= 100_000, "steps", steps, "must be between 1 and 100000")
        try require(restarts >= 1 && restarts <= 1000, "restarts", restarts, "must be between 1 and 1000")
        let alpha = stepSize ?? 2.5 * epsilon / Float(steps)
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
            + "random start=\(randomStart), loss=\(loss.rawValue)\(stopAtFirstSuccess ? "" : ", strongest iterate"))"
    }

    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any Classifier, shard: Int,
                        workspace ws: AttackWorkspace, generator: inout RandomGenerator) throws {
        let (n, d) = (clean.rows, clean.columns)
        guard n > 0 else { return }
        precondition(n <= ws.capacity && d == ws.features, "attack workspace too small")
        adversarial.copy(from: clean)
        ws.bestObjective.pointer.update(repeating: -.infinity, count: n)
        ws.fooled.update(repeating: false, count: n)

        for restart in 0..<restarts {
            // The rows this restart attacks, compacted into the workspace.
            var m = 0
            for r in 0..<n where restart == 0 || !ws.fooled[r] {
                ws.activeRows[m] = r
                m += 1
            }
            if m == 0 { break }
            for i in 0..<m {
                let r = ws.activeRows[i]
                ws.activeClean.pointer.advanced(by: i * d).update(from: clean.row(r), count: d)
                ws.activeLabels[i] = labels[r]
                if let targets { ws.activeTargets[i] = targets[r] }
            }
            let activeTargets: UnsafePointer<Int>? = targets == nil ? nil : UnsafePointer(ws.activeTargets)
            ws.current.pointer.update(from: ws.activeClean.pointer, count: m * d)
            if randomStart {
                randomize(ws.current.matrix(rows: m, columns: d), around: ws.activeClean.matrix(rows: m, columns: d),
                          generator: &generator)
            }

            for k in 0...steps {
                let x = ws.current.matrix(rows: m, columns: d)
                let gradient = objectiveGradient(x, labels: ws.activeLabels, targets: activeTargets, classifier: classifier,
                                                 shard: shard, workspace: ws, needGradient: k < steps)
                if k > 0 { keepBest(x, active: m, targets: activeTargets, into: adversarial, workspace: ws) }
                guard let gradient else { break }
                step(x, clean: ws.activeClean.matrix(rows: m, columns: d), gradient: gradient, stepSize: stepSize)
                if k > 0 && stopAtFirstSuccess {
                    m = dropFooled(active: m, workspace: ws)
                    if m == 0 { break }
                }
            }
        }
        try verify(adversarial, clean: clean, workspace: ws)
    }

    /// Removes the rows whose best example already fools the model from the active set (keeping
    /// order), so later steps compute nothing for them. Returns the new number of active rows.
    private func dropFooled(active m: Int, workspace ws: AttackWorkspace) -> Int {
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
                          workspace ws: AttackWorkspace) {
        for i in 0..<m {
            let r = ws.activeRows[i]
            if ws.fooled[r] && stopAtFirstSuccess { continue }
            let prediction = ws.predictions[i]
            let fools = targets.map { prediction == $0[i] } ?? (prediction != ws.activeLabels[i])
            let value = ws.objective.pointer[i]
            // The first candidate is always kept (even with a NaN objective), so every row has one.
            let better = value > ws.bestObjective.pointer[r] || ws.bestObjective.pointer[r] == -.infinity
            if stopAtFirstSuccess ? (fools || better) : better {
                adversarial.row(r).update(from: x.row(i), count: x.columns)
                ws.bestObjective.pointer[r] = value
                ws.fooled[r] = fools
                ws.resultPredictions[r] = prediction
            }
        }
    }

    /// A uniform random point of the ε-ball around each row, clamped to [0, 1]. L2: a Gaussian
    /// direction scaled to radius ε·u^(1/d), which is uniform in the ball.
    private func randomize(_ x: MatrixRef, around clean: MatrixRef, generator: inout RandomGenerator) {
        let d = x.columns
        for i in 0..<x.rows {
            let row = x.row(i), center = clean.row(i)
            switch norm {
            case .linf:
                for j in 0..<d { row[j] = center[j] + generator.nextFloat(in: -epsilon, epsilon) }
            case .l2:
                var squares: Float = 0
                for j in 0..<d {
                    row[j] = generator.nextGaussian()
                    squares += row[j] * row[j]
                }
                let radius = epsilon * Float(Foundation.pow(Double(generator.nextUnitFloat()), 1 / Double(d)))
                let scale = squares > 0 ? radius * (1 - 1e-6) / squares.squareRoot() : 0
                for j in 0..<d { row[j] = center[j] + scale * row[j] }
            }
            Kernels.clamp(UnsafeMutableBufferPointer(start: row, count: d), lower: 0, upper: 1)
        }
    }
}

import Foundation
import NeuralNet
import TensorCore

/// DeepFool (Moosavi-Dezfooli, Fawzi & Frossard, 2016, "DeepFool: a simple and accurate method to
/// fool deep neural networks"), L2 and L∞: a minimum-norm attack. At each step the classifier is
/// linearised around the iterate, and the input moves to the nearest linearised boundary:
/// ```
/// f_k = z_k − z_y,  w_k = ∇ₓf_k   (k ≠ y)
/// l = argmin_k |f_k| / ‖w_k‖_q     (q = 2 for L2, 1 for L∞)
/// r ← r + (|f_l| + 10⁻⁴)/‖w_l‖_q · (w_l/‖w_l‖₂  or  sign(w_l))
/// x = clamp(x₀ + (1 + overshoot)·r, 0, 1)
/// ```
/// until the input is misclassified or `steps` run out. The perturbation found is an upper bound
/// on the input's minimal adversarial norm; `AttackRowResults.minimalNorm` records it (∞ if none
/// was found; 0 for inputs misclassified clean). As an `Attack` with budget ε, an input is fooled
/// if its perturbation is within ε (then it is returned), and returned clean otherwise. Defaults:
/// 50 steps, overshoot 0.02, as in the paper.
public struct DeepFool: MinimumNormAttack {
    public let norm: Norm
    public let epsilon: Float
    public let steps: Int
    public let overshoot: Float
    public var loss: AttackLoss { .margin }

    /// - Throws: `AttackError.invalidParameter` naming a bad value.
    public init(norm: Norm = .l2, epsilon: Float, steps: Int = 50, overshoot: Float = 0.02) throws {
        try require(epsilon > 0 && epsilon.isFinite, "epsilon", epsilon, "must be a positive number")
        try require(steps >= 1 && steps <= 100_000, "steps", steps, "must be between 1 and 100000")
        try require(overshoot >= 0 && overshoot <= 1, "overshoot", overshoot, "must be in [0, 1]")
        self.norm = norm
        self.epsilon = epsilon
        self.steps = steps
        self.overshoot = overshoot
    }

    public var description: String { "DeepFool(\(norm.rawValue), ε=\(epsilon), steps=\(steps), overshoot=\(overshoot))" }

    public func validate(goal: AttackGoal, classes: Int) throws {
        if goal.isTargeted {
            throw AttackError.invalidParameter(name: "targeted", value: goal.targets!.description, requirement: "DeepFool is untargeted")
        }
        try require(classes >= 2, "classes", classes, "DeepFool needs at least 2 classes")
    }

    /// Scratch of one shard: per active row the iterate, the clean input, the accumulated step and
    /// the chosen boundary's normal.
    public final class Workspace: AttackWorkspace {
        public let capacity: Int
        public let features: Int
        public let results: AttackRowResults
        let current: FloatBuffer, activeClean: FloatBuffer, total: FloatBuffer, normal: FloatBuffer
        let bestRatio: FloatBuffer, bestDifference: FloatBuffer
        let activeLabels: UnsafeMutablePointer<Int>, activeRows: UnsafeMutablePointer<Int>, predictions: UnsafeMutablePointer<Int>
        /// The iterates' logits (made on first use, for the model's class count).
        var logitsCopy: FloatBuffer?

        init(rows: Int, features: Int) {
            capacity = rows
            self.features = features
            results = AttackRowResults(capacity: rows)
            current = FloatBuffer(count: rows * features)
            activeClean = FloatBuffer(count: rows * features)
            total = FloatBuffer(count: rows * features)
            normal = FloatBuffer(count: rows * features)
            bestRatio = FloatBuffer(count: rows)
            bestDifference = FloatBuffer(count: rows)
            activeLabels = allocateFilled(rows, with: 0)
            activeRows = allocateFilled(rows, with: 0)
            predictions = allocateFilled(rows, with: 0)
        }

        deinit {
            activeLabels.deallocate()
            activeRows.deallocate()
            predictions.deallocate()
        }

        func moveRow(_ i: Int, to j: Int) {
            let d = features
            current.pointer.advanced(by: j * d).update(from: current.pointer.advanced(by: i * d), count: d)
            activeClean.pointer.advanced(by: j * d).update(from: activeClean.pointer.advanced(by: i * d), count: d)
            total.pointer.advanced(by: j * d).update(from: total.pointer.advanced(by: i * d), count: d)
            activeLabels[j] = activeLabels[i]
            activeRows[j] = activeRows[i]
        }
    }

    public func makeWorkspace(rows: Int, features: Int) -> Workspace { Workspace(rows: rows, features: features) }

    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                        workspace ws: Workspace, generator: inout RandomGenerator) throws {
        try checkShapes(clean, adversarial, workspace: ws, classifier: classifier)
        let (n, d) = (clean.rows, clean.columns)
        let classes = classifier.classCount
        guard n > 0 else { return }
        if (ws.logitsCopy?.count ?? 0) < ws.capacity * classes { ws.logitsCopy = FloatBuffer(count: ws.capacity * classes) }
        let logitsCopy = ws.logitsCopy!.pointer
        adversarial.copy(from: clean)
        var m = beginMinimumNormRun(clean, labels: labels, classifier: classifier, shard: shard, results: ws.results,
                                    predictions: ws.predictions, slots: ws.activeRows, slotLabels: ws.activeLabels,
                                    slotClean: ws.activeClean.pointer)
        ws.current.pointer.update(from: ws.activeClean.pointer, count: m * d)
        ws.total.pointer.update(repeating: 0, count: m * d)
        for step in 1...steps where m > 0 {
            let logits = classifier.logits(ws.current.matrix(rows: m, columns: d), shard: shard)
            logitsCopy.update(from: logits.row(0), count: m * classes)
            ws.bestRatio.pointer.update(repeating: .infinity, count: m)
            // The nearest linearised boundary: one backward pass per other class.
            for k in 0..<classes {
                let logitsGradient = classifier.logitsGradient(shard: shard)
                for i in 0..<m {
                    let g = logitsGradient.row(i)
                    g.update(repeating: 0, count: classes)
                    if k != ws.activeLabels[i] {
                        g[k] = 1
                        g[ws.activeLabels[i]] = -1
                    }
                }
                let gradient = classifier.inputGradient(shard: shard)
                for i in 0..<m where k != ws.activeLabels[i] {
                    let w = gradient.row(i)
                    let difference = logitsCopy[i * classes + k] - logitsCopy[i * classes + ws.activeLabels[i]]
                    let ratio = abs(difference) / max(dualNorm(w, count: d), 1e-12)
                    if ratio < ws.bestRatio.pointer[i] {
                        ws.bestRatio.pointer[i] = ratio
                        ws.bestDifference.pointer[i] = difference
                        (ws.normal.pointer + i * d).update(from: w, count: d)
                    }
                }
            }
            for i in 0..<m {
                let w = ws.normal.pointer + i * d, r = ws.total.pointer + i * d
                let x = ws.current.pointer + i * d, x0 = ws.activeClean.pointer + i * d
                let dual = max(dualNorm(w, count: d), 1e-12)
                let length = (abs(ws.bestDifference.pointer[i]) + 1e-4) / dual
                switch norm {
                case .l2:
                    var squares: Float = 0
                    for j in 0..<d { squares += w[j] * w[j] }
                    let scale = length / max(squares.squareRoot(), 1e-12)
                    for j in 0..<d { r[j] += scale * w[j] }
                case .linf:
                    for j in 0..<d { r[j] += length * (w[j] > 0 ? 1 : (w[j] < 0 ? -1 : 0)) }
                }
                for j in 0..<d { x[j] = min(max(x0[j] + (1 + overshoot) * r[j], 0), 1) }
            }
            // Inputs now misclassified are done: record their perturbation and drop them.
            Kernels.argmaxRows(classifier.logits(ws.current.matrix(rows: m, columns: d), shard: shard), into: ws.predictions)
            var kept = 0
            for i in 0..<m {
                let row = ws.activeRows[i]
                if ws.predictions[i] != ws.activeLabels[i] {
                    let x = ws.current.pointer + i * d, x0 = ws.activeClean.pointer + i * d
                    let size = norm.distance(x, x0, count: d)
                    ws.results.minimalNorm[row] = size
                    if size <= epsilon {
                        ws.results.fooledAt[row] = step
                        adversarial.row(row).update(from: x, count: d)
                    }
                    continue
                }
                if kept != i { ws.moveRow(i, to: kept) }
                kept += 1
            }
            m = kept
        }
        try ball.verify(adversarial, clean: clean, results: ws.results)
    }

    /// ‖w‖_q, the dual of the attack's norm (L1 for L∞, L2 for L2).
    private func dualNorm(_ w: UnsafeMutablePointer<Float>, count d: Int) -> Float {
        var result: Float = 0
        if norm == .linf {
            for j in 0..<d { result += abs(w[j]) }
            return result
        }
        for j in 0..<d { result += w[j] * w[j] }
        return result.squareRoot()
    }
}

extension DeepFool {
    /// The attack's settings in an `AttackSpec` (all but ε): `{"type": "deepfool", "norm": "l2", "steps": 50, "overshoot": 0.02}`.
    public struct Parameters: Codable, Equatable, Sendable {
        public var norm: Norm
        public var steps: Int
        public var overshoot: Float

        public init(norm: Norm = .l2, steps: Int = 50, overshoot: Float = 0.02) throws {
            self.norm = norm
            self.steps = steps
            self.overshoot = overshoot
            try validate()
        }

        static let keys: Set<String> = ["norm", "steps", "overshoot"]

        /// - Throws: `AttackError.invalidParameter` naming a bad value.
        public func validate() throws {
            _ = try DeepFool(norm: norm, epsilon: 1, steps: steps, overshoot: overshoot)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            norm = try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .l2
            steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? 50
            overshoot = try c.decodeIfPresent(Float.self, forKey: .overshoot) ?? 0.02
            do { try validate() } catch { throw c.invalid(CodingKeys(stringValue: parameterName(of: error)) ?? .steps, "\(error)") }
        }
    }
}

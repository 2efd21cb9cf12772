import Foundation
import NeuralNet
import TensorCore

/// Targeted FAB (Croce & Hein, 2020, "Minimally distorted adversarial examples with a fast adaptive
/// boundary attack"), L∞ and L2, as AutoAttack's standard suite runs it (FAB-T): a minimum-norm
/// attack that walks along the decision boundary between the true class y and a target t,
/// linearised at each iterate:
/// ```
/// f(x) = z_t − z_y,  hyperplane  f(x₁) + ⟨∇f(x₁), z − x₁⟩ = 0
/// δ₁ = Π(x₁), δ₀ = Π(x₀)          (smallest p-norm step onto the hyperplane inside [0, 1]ᵈ)
/// α = min(‖δ₁‖/(‖δ₁‖ + ‖δ₀‖), α_max)
/// x₁ ← clamp((1 − α)(x₁ + η·δ₁) + α(x₀ + η·δ₀), 0, 1)
/// ```
/// x₀ is the clean input. When x₁ is misclassified it is kept if it is the closest so far, and x₁
/// steps back toward x₀: x₁ ← x₀ + β(x₁ − x₀). The targets are the classes with the 2nd, 3rd, …
/// (`targetClasses` + 1)-th highest clean logit, one run each, on the inputs no earlier run fooled
/// within ε. An input counts as fooled if a misclassified point within ε was found; otherwise it is
/// returned unchanged. Defaults follow AutoAttack: 100 steps, α_max = 0.1, η = 1.05, β = 0.9, 9
/// targets, no random start (one restart).
public struct FAB: Attack {
    public let norm: Norm
    public let epsilon: Float
    public let steps: Int
    public let targetClasses: Int
    public let alphaMax: Float
    public let eta: Float
    public let beta: Float
    public var loss: AttackLoss { .margin }

    /// - Throws: `AttackError.invalidParameter` naming a bad value.
    public init(norm: Norm = .linf, epsilon: Float, steps: Int = 100, targetClasses: Int = APGDT.defaultTargetClasses,
                alphaMax: Float = 0.1, eta: Float = 1.05, beta: Float = 0.9) throws {
        try require(epsilon > 0 && epsilon.isFinite, "epsilon", epsilon, "must be a positive number")
        try require(steps >= 1 && steps <= 100_000, "steps", steps, "must be between 1 and 100000")
        try require(targetClasses >= 1 && targetClasses <= 1000, "target_classes", targetClasses, "must be between 1 and 1000")
        try require(alphaMax >= 0 && alphaMax <= 1, "alpha_max", alphaMax, "must be in [0, 1]")
        try require(eta >= 1 && eta.isFinite, "eta", eta, "must be ≥ 1")
        try require(beta > 0 && beta < 1, "beta", beta, "must be in (0, 1)")
        self.norm = norm
        self.epsilon = epsilon
        self.steps = steps
        self.targetClasses = targetClasses
        self.alphaMax = alphaMax
        self.eta = eta
        self.beta = beta
    }

    public var description: String {
        "FAB-T(\(norm.rawValue), ε=\(epsilon), steps=\(steps), target classes=\(targetClasses))"
    }

    public func validate(goal: AttackGoal, classes: Int) throws {
        if goal.isTargeted {
            throw AttackError.invalidParameter(name: "targeted", value: goal.targets!.description,
                                               requirement: "FAB-T picks its own target classes (the highest clean logits)")
        }
        try require(classes >= 2, "classes", classes, "FAB-T needs at least 2 classes")
    }

    /// Scratch of one shard: per active row the iterate x₁, the clean input x₀, the closest
    /// adversarial point and its distance, the gradient and the two projections.
    public final class Workspace: AttackWorkspace {
        public let capacity: Int
        public let features: Int
        public let results: AttackRowResults
        let current: FloatBuffer, activeClean: FloatBuffer, best: FloatBuffer
        let gradient: FloatBuffer, stepFromCurrent: FloatBuffer, stepFromClean: FloatBuffer
        let bestDistance: FloatBuffer, difference: FloatBuffer
        /// Rows stepped back this iteration, gathered for their second pass.
        let stale: UnsafeMutablePointer<Bool>, subset: FloatBuffer, subsetDifference: FloatBuffer
        let subsetRows: UnsafeMutablePointer<Int>, subsetLabels: UnsafeMutablePointer<Int>, subsetTargets: UnsafeMutablePointer<Int>
        /// The projection kernel's scratch (5 × features).
        let projectionScratch: FloatBuffer
        let activeLabels: UnsafeMutablePointer<Int>, activeTargets: UnsafeMutablePointer<Int>
        let activeRows: UnsafeMutablePointer<Int>, predictions: UnsafeMutablePointer<Int>
        let fooled: UnsafeMutablePointer<Bool>
        /// On a model with an affine first layer: each active row's first-layer output at its clean
        /// input (made on first use, for the model's width).
        var cleanFirstLayer: FloatBuffer?
        var firstLayerWidth = 0

        init(rows: Int, features: Int) {
            capacity = rows
            self.features = features
            results = AttackRowResults(capacity: rows)
            current = FloatBuffer(count: rows * features)
            activeClean = FloatBuffer(count: rows * features)
            best = FloatBuffer(count: rows * features)
            gradient = FloatBuffer(count: rows * features)
            stepFromCurrent = FloatBuffer(count: features)
            stepFromClean = FloatBuffer(count: features)
            bestDistance = FloatBuffer(count: rows)
            stale = allocateFilled(rows, with: false)
            subset = FloatBuffer(count: rows * features)
            subsetDifference = FloatBuffer(count: rows)
            subsetRows = allocateFilled(rows, with: 0)
            subsetLabels = allocateFilled(rows, with: 0)
            subsetTargets = allocateFilled(rows, with: 0)
            projectionScratch = FloatBuffer(count: 5 * features)
            difference = FloatBuffer(count: rows)
            activeLabels = allocateFilled(rows, with: 0)
            activeTargets = allocateFilled(rows, with: 0)
            activeRows = allocateFilled(rows, with: 0)
            predictions = allocateFilled(rows, with: 0)
            fooled = allocateFilled(rows, with: false)
        }

        deinit {
            stale.deallocate()
            subsetRows.deallocate()
            subsetLabels.deallocate()
            subsetTargets.deallocate()
            activeLabels.deallocate()
            activeTargets.deallocate()
            activeRows.deallocate()
            predictions.deallocate()
            fooled.deallocate()
        }

        func moveRow(_ i: Int, to j: Int) {
            let d = features
            current.pointer.advanced(by: j * d).update(from: current.pointer.advanced(by: i * d), count: d)
            activeClean.pointer.advanced(by: j * d).update(from: activeClean.pointer.advanced(by: i * d), count: d)
            best.pointer.advanced(by: j * d).update(from: best.pointer.advanced(by: i * d), count: d)
            gradient.pointer.advanced(by: j * d).update(from: gradient.pointer.advanced(by: i * d), count: d)
            if let h = cleanFirstLayer {
                (h.pointer + j * firstLayerWidth).update(from: h.pointer + i * firstLayerWidth, count: firstLayerWidth)
            }
            bestDistance.pointer[j] = bestDistance.pointer[i]
            difference.pointer[j] = difference.pointer[i]
            activeLabels[j] = activeLabels[i]
            activeTargets[j] = activeTargets[i]
            activeRows[j] = activeRows[i]
        }
    }

    public func makeWorkspace(rows: Int, features: Int) -> Workspace { Workspace(rows: rows, features: features) }

    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                        workspace ws: Workspace, generator: inout RandomGenerator) throws {
        try checkShapes(clean, adversarial, workspace: ws, classifier: classifier)
        guard targets == nil else {
            throw AttackError.invalidParameter(name: "targets", value: "given", requirement: "FAB-T picks its own target classes")
        }
        let (n, d) = (clean.rows, clean.columns)
        guard n > 0 else { return }
        adversarial.copy(from: clean)
        ws.results.fooledAt.update(repeating: -1, count: n)
        Kernels.argmaxRows(classifier.logits(clean, shard: shard), into: ws.predictions)
        for r in 0..<n {
            ws.fooled[r] = ws.predictions[r] != labels[r]
            if ws.fooled[r] { ws.results.fooledAt[r] = 0 }
        }
        let classes = classifier.classCount
        var run = 0
        for rank in 2...(max(2, min(targetClasses, classes - 1) + 1)) where rank <= classes {
            defer { run += 1 }
            var m = 0
            for r in 0..<n where !ws.fooled[r] {
                ws.activeRows[m] = r
                ws.activeClean.pointer.advanced(by: m * d).update(from: clean.row(r), count: d)
                ws.activeLabels[m] = labels[r]
                m += 1
            }
            if m == 0 { break }
            selectTargets(rank: rank, rows: m, classifier: classifier, shard: shard, workspace: ws)
            attack(rows: m, classifier: classifier, shard: shard, into: adversarial, workspace: ws, firstStep: run * steps)
        }
        try ball.verify(adversarial, clean: clean, results: ws.results)
    }

    /// Each active row's target: the class with the `rank`-th highest clean logit.
    private func selectTargets(rank: Int, rows m: Int, classifier: any DifferentiableClassifier, shard: Int, workspace ws: Workspace) {
        let logits = classifier.logits(ws.activeClean.matrix(rows: m, columns: ws.features), shard: shard)
        for i in 0..<m { ws.activeTargets[i] = rankedClass(logits.row(i), count: logits.columns, rank: rank) }
    }

    /// One targeted run on the `m` active rows, from the clean inputs. Each iteration's forward pass
    /// also checks the previous update; misclassified iterates are kept and stepped back. On a model
    /// with an affine first layer the stepped-back rows' first-layer outputs are blended from those
    /// at the iterate and at the clean input (exact up to rounding), and only the later layers are
    /// recomputed; otherwise those rows need a second pass at their new point.
    private func attack(rows active: Int, classifier: any DifferentiableClassifier, shard: Int, into adversarial: MatrixRef,
                        workspace ws: Workspace, firstStep: Int) {
        let d = ws.features
        var m = active
        ws.current.pointer.update(from: ws.activeClean.pointer, count: m * d)
        ws.bestDistance.pointer.update(repeating: .infinity, count: m)
        let affine = (classifier as? any AffineFirstLayerClassifier).flatMap { c in c.affineFirstLayerWidth.map { (classifier: c, width: $0) } }
        if let affine {
            if ws.cleanFirstLayer == nil || ws.firstLayerWidth != affine.width {
                ws.cleanFirstLayer = FloatBuffer(count: ws.capacity * affine.width)
                ws.firstLayerWidth = affine.width
            }
            affine.classifier.firstLayerOutputs(ws.activeClean.matrix(rows: m, columns: d),
                                                into: ws.cleanFirstLayer!.matrix(rows: m, columns: affine.width), shard: shard)
        }
        for step in 0...steps {
            var logits = classifier.logits(ws.current.matrix(rows: m, columns: d), shard: shard)
            var stale = 0
            ws.stale.update(repeating: false, count: m)
            if step > 0 {
                Kernels.argmaxRows(logits, into: ws.predictions)
                for i in 0..<m where ws.predictions[i] != ws.activeLabels[i] {
                    keepCloser(row: i, workspace: ws)
                    ws.stale[i] = true
                    stale += 1
                }
                if step == steps {
                    m = keepFound(rows: m, into: adversarial, workspace: ws, step: firstStep + step)
                    break
                }
                if let affine, stale > 0 {
                    let h = affine.classifier.lastFirstLayerOutputs(shard: shard), clean = ws.cleanFirstLayer!.pointer
                    for i in 0..<m where ws.stale[i] {
                        let row = h.row(i), anchor = clean + i * affine.width
                        for o in 0..<affine.width { row[o] = (1 - beta) * anchor[o] + beta * row[o] }
                    }
                    logits = affine.classifier.refreshAfterFirstLayer(shard: shard)
                    stale = 0
                }
            }
            // f = z_t − z_y and its input gradient at the current points: when many rows were stepped
            // back, from a second forward pass of all rows; otherwise from this pass, and again for
            // the stepped-back rows only, gathered.
            let recomputeAll = stale * 3 > m
            differenceGradients(recomputeAll ? classifier.logits(ws.current.matrix(rows: m, columns: d), shard: shard) : logits, rows: m,
                                labels: ws.activeLabels, targets: ws.activeTargets, classifier: classifier, shard: shard,
                                into: ws.difference.pointer, gradients: ws.gradient.pointer)
            if stale > 0 && !recomputeAll {
                var k = 0
                for i in 0..<m where ws.stale[i] {
                    ws.subsetRows[k] = i
                    ws.subsetLabels[k] = ws.activeLabels[i]
                    ws.subsetTargets[k] = ws.activeTargets[i]
                    (ws.subset.pointer + k * d).update(from: ws.current.pointer + i * d, count: d)
                    k += 1
                }
                let subsetLogits = classifier.logits(ws.subset.matrix(rows: k, columns: d), shard: shard)
                differenceGradients(subsetLogits, rows: k, labels: ws.subsetLabels, targets: ws.subsetTargets, classifier: classifier,
                                    shard: shard, into: ws.subsetDifference.pointer, gradients: ws.subset.pointer)
                for s in 0..<k {
                    let i = ws.subsetRows[s]
                    ws.difference.pointer[i] = ws.subsetDifference.pointer[s]
                    (ws.gradient.pointer + i * d).update(from: ws.subset.pointer + s * d, count: d)
                }
            }
            if step > 0 {
                m = keepFound(rows: m, into: adversarial, workspace: ws, step: firstStep + step)
                if m == 0 { break }
            }
            for i in 0..<m {
                let x1 = ws.current.pointer + i * d, x0 = ws.activeClean.pointer + i * d, w = ws.gradient.pointer + i * d
                // The hyperplane ⟨w, z⟩ = ⟨w, x₁⟩ − f: from a point p, ⟨w, p⟩ − b = ⟨w, p − x₁⟩ + f.
                var offsetClean = ws.difference.pointer[i]
                var partial = SIMD8<Float>()
                var j = 0
                while j + 8 <= d {
                    let difference = UnsafeRawPointer(x0 + j).loadUnaligned(as: SIMD8<Float>.self) - UnsafeRawPointer(x1 + j).loadUnaligned(as: SIMD8<Float>.self)
                    partial += UnsafeRawPointer(w + j).loadUnaligned(as: SIMD8<Float>.self) * difference
                    j += 8
                }
                offsetClean += partial.sum()
                while j < d { offsetClean += w[j] * (x0[j] - x1[j]); j += 1 }
                let a1 = max(project(from: x1, normal: w, offset: ws.difference.pointer[i], into: ws.stepFromCurrent.pointer, count: d, workspace: ws), 1e-8)
                let a2 = max(project(from: x0, normal: w, offset: offsetClean, into: ws.stepFromClean.pointer, count: d, workspace: ws), 1e-8)
                let alpha = min(max(a1 / (a1 + a2), 0), alphaMax)
                update(x1, clean: x0, stepFromCurrent: ws.stepFromCurrent.pointer, stepFromClean: ws.stepFromClean.pointer,
                       alpha: alpha, count: d)
            }
        }
    }

    /// x₁ ← clamp((1 − α)(x₁ + η·δ₁) + α(x₀ + η·δ₀), 0, 1), eight values at a time.
    private func update(_ x1: UnsafeMutablePointer<Float>, clean x0: UnsafeMutablePointer<Float>, stepFromCurrent: UnsafeMutablePointer<Float>,
                        stepFromClean: UnsafeMutablePointer<Float>, alpha: Float, count d: Int) {
        let (keep, blend, scale) = (SIMD8<Float>(repeating: 1 - alpha), SIMD8<Float>(repeating: alpha), SIMD8<Float>(repeating: eta))
        let (zero, one) = (SIMD8<Float>(), SIMD8<Float>(repeating: 1))
        var j = 0
        while j + 8 <= d {
            let current = UnsafeRawPointer(x1 + j).loadUnaligned(as: SIMD8<Float>.self)
            let clean = UnsafeRawPointer(x0 + j).loadUnaligned(as: SIMD8<Float>.self)
            let fromCurrent = UnsafeRawPointer(stepFromCurrent + j).loadUnaligned(as: SIMD8<Float>.self)
            let fromClean = UnsafeRawPointer(stepFromClean + j).loadUnaligned(as: SIMD8<Float>.self)
            var next = keep * (current + scale * fromCurrent) + blend * (clean + scale * fromClean)
            next = next.replacing(with: zero, where: next .< zero).replacing(with: one, where: next .> one)
            UnsafeMutableRawPointer(x1 + j).storeBytes(of: next, as: SIMD8<Float>.self)
            j += 8
        }
        while j < d {
            let next = (1 - alpha) * (x1[j] + eta * stepFromCurrent[j]) + alpha * (x0[j] + eta * stepFromClean[j])
            x1[j] = min(max(next, 0), 1)
            j += 1
        }
    }

    /// f = z_t − z_y of each of the first `m` rows of `logits` (the shard's last forward pass) into
    /// `difference`, and ∇ₓf into `gradients` (m × features).
    private func differenceGradients(_ logits: MatrixRef, rows m: Int, labels: UnsafeMutablePointer<Int>, targets: UnsafeMutablePointer<Int>,
                                     classifier: any DifferentiableClassifier, shard: Int, into difference: UnsafeMutablePointer<Float>,
                                     gradients: UnsafeMutablePointer<Float>) {
        let logitsGradient = classifier.logitsGradient(shard: shard)
        for i in 0..<m {
            let (t, y) = (targets[i], labels[i])
            difference[i] = logits.row(i)[t] - logits.row(i)[y]
            let g = logitsGradient.row(i)
            g.update(repeating: 0, count: logitsGradient.columns)
            g[t] = 1
            g[y] = -1
        }
        let gradient = classifier.inputGradient(shard: shard)
        for i in 0..<m { (gradients + i * gradient.columns).update(from: gradient.row(i), count: gradient.columns) }
    }

    /// Row `i`'s iterate is misclassified: keep it if it is the closest so far, then step back
    /// toward the clean input, x₁ ← x₀ + β(x₁ − x₀).
    private func keepCloser(row i: Int, workspace ws: Workspace) {
        let d = ws.features
        let x1 = ws.current.pointer + i * d, x0 = ws.activeClean.pointer + i * d
        let distance = norm.distance(x1, x0, count: d)
        if distance < ws.bestDistance.pointer[i] {
            ws.bestDistance.pointer[i] = distance
            ws.best.pointer.advanced(by: i * d).update(from: x1, count: d)
        }
        for j in 0..<d { x1[j] = x0[j] + beta * (x1[j] - x0[j]) }
    }

    /// Rows with a misclassified point within ε are fooled: their point goes to the output and they
    /// leave the batch (a closer point changes no accuracy). Returns the new number of active rows.
    private func keepFound(rows m: Int, into adversarial: MatrixRef, workspace ws: Workspace, step: Int) -> Int {
        let d = ws.features
        var kept = 0
        for i in 0..<m {
            let r = ws.activeRows[i]
            // Within ε, with the tolerance the ball's verification allows.
            if ws.bestDistance.pointer[i] <= epsilon {
                ws.fooled[r] = true
                ws.results.fooledAt[r] = step
                adversarial.row(r).update(from: ws.best.pointer + i * d, count: d)
                continue
            }
            if kept != i { ws.moveRow(i, to: kept) }
            kept += 1
        }
        return kept
    }

    /// The smallest step δ (in the attack's norm) from `point` onto the hyperplane ⟨w, z⟩ = b with
    /// point + δ in [0, 1]ᵈ, given offset = ⟨w, point⟩ − b; if the box does not reach the
    /// hyperplane, the step that gets closest. Every coordinate moves against sign(offset)·wⱼ by
    /// min(λ·sⱼ, roomⱼ) (sⱼ = 1 for L∞, |wⱼ| for L2: the KKT form of both problems), and λ solves
    /// Σ|wⱼ|·min(λ·sⱼ, roomⱼ) = |offset|. That function is concave and piecewise linear, so the
    /// active-set iteration λ ← (|offset| − Σ_saturated |wⱼ|·roomⱼ) / Σ_free |wⱼ|·sⱼ rises
    /// monotonically to the exact λ in a few passes (the reference sorts the breakpoints instead).
    /// Returns the step's size in the attack's norm. (`Kernels.fabProject`, in C.)
    @discardableResult
    func project(from point: UnsafeMutablePointer<Float>, normal w: UnsafeMutablePointer<Float>, offset: Float,
                 into step: UnsafeMutablePointer<Float>, count d: Int, workspace ws: Workspace) -> Float {
        Kernels.fabProject(from: point, normal: w, offset: offset, into: step, count: d, linf: norm == .linf,
                           scratch: ws.projectionScratch.pointer)
    }
}

extension FAB {
    /// The attack's settings in an `AttackSpec` (all but ε):
    /// `{"type": "fab-t", "norm": "linf", "steps": 100, "target_classes": 9, "alpha_max": 0.1, "eta": 1.05, "beta": 0.9}`.
    public struct Parameters: Codable, Equatable, Sendable {
        public var norm: Norm
        public var steps: Int
        public var targetClasses: Int
        public var alphaMax: Float
        public var eta: Float
        public var beta: Float

        public init(norm: Norm = .linf, steps: Int = 100, targetClasses: Int = APGDT.defaultTargetClasses, alphaMax: Float = 0.1,
                    eta: Float = 1.05, beta: Float = 0.9) throws {
            self.norm = norm
            self.steps = steps
            self.targetClasses = targetClasses
            self.alphaMax = alphaMax
            self.eta = eta
            self.beta = beta
            try validate()
        }

        static let keys: Set<String> = ["norm", "steps", "target_classes", "alpha_max", "eta", "beta"]

        enum CodingKeys: String, CodingKey {
            case norm, steps, eta, beta
            case targetClasses = "target_classes", alphaMax = "alpha_max"
        }

        /// - Throws: `AttackError.invalidParameter` naming a bad value.
        public func validate() throws {
            _ = try FAB(norm: norm, epsilon: 1, steps: steps, targetClasses: targetClasses, alphaMax: alphaMax, eta: eta, beta: beta)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            norm = try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .linf
            steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? 100
            targetClasses = try c.decodeIfPresent(Int.self, forKey: .targetClasses) ?? APGDT.defaultTargetClasses
            alphaMax = try c.decodeIfPresent(Float.self, forKey: .alphaMax) ?? 0.1
            eta = try c.decodeIfPresent(Float.self, forKey: .eta) ?? 1.05
            beta = try c.decodeIfPresent(Float.self, forKey: .beta) ?? 0.9
            do { try validate() } catch { throw c.invalid(CodingKeys(stringValue: parameterName(of: error)) ?? .steps, "\(error)") }
        }
    }
}

import Foundation
import NeuralNet
import TensorCore

/// Square Attack (Andriushchenko, Croce, Flammarion & Hein, 2020, "Square Attack: a query-efficient
/// black-box adversarial attack via random search"), L∞ and L2: a score-based black-box attack. It
/// uses only the model's logits, never a gradient, so gradient masking does not stop it; each
/// model evaluation of an input is one query, and an input stops being attacked once fooled.
///
/// Random search on the margin loss m = z_y − max_{j≠y} z_j (targeted: max_{j≠t} z_j − z_t): a
/// candidate changes one random square window of side s of the image and is kept if it lowers m.
/// s shrinks with the iteration i: s = round(√(p(i)·h·w)), p(i) = p_init halved at i = 10, 50, 200,
/// 500, 1000, 2000, 4000, 6000, 8000: the authors' schedule for 10,000 queries, not rescaled to
/// the budget, as AutoAttack runs it; `rescaleSchedule` stretches it to the budget (i·10,000/queries),
/// as the Square paper's code and torchattacks do by default.
/// - L∞: the start is vertical stripes x + ε·σ (σ = ±1 per column and channel); a candidate sets its
///   window to x ± ε (one sign per channel). Clamped to [0, 1].
/// - L2: the start is a grid of "double rectangle" patterns of norm ε; a candidate moves the
///   perturbation's mass from a second window into the first, redrawing it as a fresh pattern plus
///   the old one, with the total norm kept at ε. Clamped to [0, 1].
///
/// Each input draws its own windows and signs (the authors' code shares them across a batch).
/// Inputs misclassified at the clean point are not attacked. `queries` bounds the model
/// evaluations per input and restart, the initial one included.
///
/// On a `Sequential` whose first layer is `Dense`, L∞ candidates are evaluated incrementally: a
/// candidate differs from its input's current point in s² pixels, so the first layer's
/// pre-activations are updated by W₁ restricted to those pixels (h + W₁[:, S]·Δ, on a transposed copy
/// of W₁) instead of recomputed; when a ReLU and a second `Dense` follow, that layer is updated from
/// the hidden units whose ReLU output changed (see `IncrementalForward`), and only the later layers
/// run in full. The attack still sees only logits; the first layers are recomputed exactly every
/// `refreshInterval` iterations so rounding does not accumulate, and a success is confirmed by a
/// full forward pass.
public struct Square: Attack {
    public let norm: Norm
    public let epsilon: Float
    public let queries: Int
    public let pInit: Float
    public let restarts: Int
    /// Height, width and channels of the input image (features in channel-major order: c, h, w).
    public let image: ImageShape?
    public let rescaleSchedule: Bool
    public var loss: AttackLoss { .margin }

    public static let defaultQueries = 5000
    /// How much of the incremental evaluation runs: all of it unless `BULWARK_SQUARE_FULL_FORWARD`
    /// is set, to measure what it saves (read once; results are the same up to rounding).
    enum IncrementalEvaluation {
        /// The first two layers updated (the default).
        case twoLayers
        /// `BULWARK_SQUARE_FULL_FORWARD=second`: the first layer updated, the second recomputed.
        case firstLayer
        /// `BULWARK_SQUARE_FULL_FORWARD` set to anything else: full forward passes.
        case off

        static let configured: IncrementalEvaluation = switch ProcessInfo.processInfo.environment["BULWARK_SQUARE_FULL_FORWARD"] {
        case nil: .twoLayers
        case "second": .firstLayer
        default: .off
        }
    }
    public static let refreshInterval = 250

    /// Height, width and channels of the flat inputs.
    public struct ImageShape: Equatable, Sendable, Codable {
        public var height: Int, width: Int, channels: Int

        public init(height: Int, width: Int, channels: Int = 1) {
            self.height = height
            self.width = width
            self.channels = channels
        }

        /// A square image with 1 or 3 channels that has `features` values, if there is one.
        public static func inferred(features: Int) -> ImageShape? {
            for channels in [1, 3] where features % channels == 0 {
                let side = Int(Double(features / channels).squareRoot().rounded())
                if side * side * channels == features && side > 0 { return ImageShape(height: side, width: side, channels: channels) }
            }
            return nil
        }

        var features: Int { height * width * channels }
    }

    /// - Throws: `AttackError.invalidParameter` naming a bad value.
    public init(norm: Norm = .linf, epsilon: Float, queries: Int = Square.defaultQueries, pInit: Float = 0.8, restarts: Int = 1,
                image: ImageShape? = nil, rescaleSchedule: Bool = false) throws {
        try require(epsilon > 0 && epsilon.isFinite, "epsilon", epsilon, "must be a positive number")
        try require(queries >= 1 && queries <= 1_000_000, "queries", queries, "must be between 1 and 1000000")
        try require(pInit > 0 && pInit <= 1, "p_init", pInit, "must be in (0, 1]")
        try require(restarts >= 1 && restarts <= 1000, "restarts", restarts, "must be between 1 and 1000")
        if let image {
            try require((1...65_536).contains(image.height) && (1...65_536).contains(image.width) && (1...4096).contains(image.channels),
                        "image", "\(image.height)×\(image.width)×\(image.channels)", "needs height and width in 1…65536 and 1…4096 channels")
        }
        self.norm = norm
        self.epsilon = epsilon
        self.queries = queries
        self.pInit = pInit
        self.restarts = restarts
        self.image = image
        self.rescaleSchedule = rescaleSchedule
    }

    public var description: String {
        "Square(\(norm.rawValue), ε=\(epsilon), queries=\(queries), p_init=\(pInit), restarts=\(restarts)\(rescaleSchedule ? ", rescaled schedule" : ""))"
    }

    /// The fraction p of the image a window covers at iteration `i` (0-based).
    func fraction(iteration: Int) -> Float {
        let i = rescaleSchedule ? Int(Double(iteration) / Double(queries) * 10_000) : iteration
        let divisor: Float = switch i {
        case ...10: 1
        case ...50: 2
        case ...200: 4
        case ...500: 8
        case ...1000: 16
        case ...2000: 32
        case ...4000: 64
        case ...6000: 128
        case ...8000: 256
        default: 512
        }
        return pInit / divisor
    }

    /// The window side at iteration `i`.
    func side(iteration i: Int, shape: ImageShape) -> Int {
        let s = Int((fraction(iteration: i) * Float(shape.height * shape.width)).squareRoot().rounded(.toNearestOrEven))
        switch norm {
        case .linf:
            return min(max(s, 1), min(shape.height, shape.width))
        case .l2:
            let odd = max(s, 3) % 2 == 0 ? max(s, 3) + 1 : max(s, 3)
            return min(odd, min(shape.height, shape.width))
        }
    }

    /// Scratch of one shard: the current point, the candidate and the clean input of each active row,
    /// their margins, labels and targets, per-row query counts, and for incremental evaluation the
    /// first layer's pre-activations of the current points and candidates and the later layers'
    /// activations.
    public final class Workspace: AttackWorkspace {
        public let capacity: Int
        public let features: Int
        public let results: AttackRowResults
        let best: FloatBuffer, candidate: FloatBuffer, activeClean: FloatBuffer
        let margin: FloatBuffer, bestMargin: FloatBuffer
        let activeLabels: UnsafeMutablePointer<Int>, activeTargets: UnsafeMutablePointer<Int>
        let activeRows: UnsafeMutablePointer<Int>
        /// Active rows whose success is being confirmed.
        let confirming: UnsafeMutablePointer<Int>
        /// L∞: each row's window of the last candidate (top, left), and whether every active row's
        /// candidate equals its current point (then only the window needs restoring or keeping).
        let windowTop: UnsafeMutablePointer<Int>, windowLeft: UnsafeMutablePointer<Int>
        var candidatesMatchBest = false
        /// Per shard row.
        let fooled: UnsafeMutablePointer<Bool>
        /// L2 patterns: a window of the perturbation and a fresh pattern (features each).
        let pattern: FloatBuffer, window: FloatBuffer
        /// Incremental evaluation (made on first use on a network with a dense first layer), and an
        /// L∞ candidate's changed features and their changes (features each).
        var incremental: IncrementalForward?
        let changedFeatures: UnsafeMutablePointer<Int>, changes: FloatBuffer

        init(rows: Int, features: Int) {
            capacity = rows
            self.features = features
            results = AttackRowResults(capacity: rows)
            best = FloatBuffer(count: rows * features)
            candidate = FloatBuffer(count: rows * features)
            activeClean = FloatBuffer(count: rows * features)
            margin = FloatBuffer(count: rows)
            bestMargin = FloatBuffer(count: rows)
            activeLabels = allocateFilled(rows, with: 0)
            activeTargets = allocateFilled(rows, with: 0)
            activeRows = allocateFilled(rows, with: 0)
            confirming = allocateFilled(rows, with: 0)
            windowTop = allocateFilled(rows, with: 0)
            windowLeft = allocateFilled(rows, with: 0)
            fooled = allocateFilled(rows, with: false)
            pattern = FloatBuffer(count: features)
            window = FloatBuffer(count: features)
            changedFeatures = allocateFilled(features, with: 0)
            changes = FloatBuffer(count: features)
        }

        deinit {
            activeLabels.deallocate()
            activeTargets.deallocate()
            activeRows.deallocate()
            confirming.deallocate()
            windowTop.deallocate()
            windowLeft.deallocate()
            fooled.deallocate()
            changedFeatures.deallocate()
        }

        func moveRow(_ i: Int, to j: Int) {
            let d = features
            candidatesMatchBest = false
            best.pointer.advanced(by: j * d).update(from: best.pointer.advanced(by: i * d), count: d)
            activeClean.pointer.advanced(by: j * d).update(from: activeClean.pointer.advanced(by: i * d), count: d)
            bestMargin.pointer[j] = bestMargin.pointer[i]
            activeLabels[j] = activeLabels[i]
            activeTargets[j] = activeTargets[i]
            activeRows[j] = activeRows[i]
            incremental?.moveRow(i, to: j)
        }
    }

    public func makeWorkspace(rows: Int, features: Int) -> Workspace { Workspace(rows: rows, features: features) }

    public func validate(goal: AttackGoal, classes: Int) throws {
        try goal.validate(classes: classes, loss: .margin)
    }

    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                        workspace ws: Workspace, generator: inout RandomGenerator) throws {
        try checkShapes(clean, adversarial, workspace: ws, classifier: classifier)
        let shape = try Self.imageShape(image, features: clean.columns)
        let n = clean.rows
        guard n > 0 else { return }
        ws.results.queries.update(repeating: 0, count: n)
        ws.results.fooledAt.update(repeating: -1, count: n)
        adversarial.copy(from: clean)
        // Which inputs are already fooled at the clean point (not counted as queries of the attack).
        let logits = classifier.logits(clean, shard: shard)
        for r in 0..<n {
            ws.fooled[r] = margin(logits.row(r), count: logits.columns, label: labels[r], target: targets?[r]) <= 0
            if ws.fooled[r] { ws.results.fooledAt[r] = 0 }
        }
        let evaluation = IncrementalEvaluation.configured
        if norm == .linf, evaluation != .off, let network = classifier as? Sequential {
            if ws.incremental?.fits(network, rows: ws.capacity) != true {
                ws.incremental = IncrementalForward(network, rows: ws.capacity, secondLayer: evaluation == .twoLayers)
            }
            ws.incremental?.refreshWeights()
        } else {
            ws.incremental = nil
        }
        for _ in 0..<restarts {
            var m = 0
            for r in 0..<n where !ws.fooled[r] {
                ws.activeRows[m] = r
                ws.activeClean.pointer.advanced(by: m * clean.columns).update(from: clean.row(r), count: clean.columns)
                ws.activeLabels[m] = labels[r]
                if let targets { ws.activeTargets[m] = targets[r] }
                m += 1
            }
            if m == 0 { break }
            run(active: m, targeted: targets != nil, shape: shape, classifier: classifier, shard: shard, into: adversarial,
                workspace: ws, generator: &generator)
        }
        try ball.verify(adversarial, clean: clean, results: ws.results)
    }

    /// The image shape of `features` inputs: `given`, or inferred for square images.
    /// - Throws: `AttackError.invalidParameter` saying how to give it.
    public static func imageShape(_ given: ImageShape?, features: Int) throws -> ImageShape {
        guard let shape = given ?? ImageShape.inferred(features: features), shape.features == features else {
            throw AttackError.invalidParameter(name: "image", value: given.map { "\($0.height)×\($0.width)×\($0.channels)" } ?? "not given",
                                               requirement: "Square needs the image shape of the \(features) input features: --image HxWxC, or "
                                                   + "\"image\": {\"height\": …, \"width\": …, \"channels\": …} in a configuration")
        }
        return shape
    }

    /// The margin of one row of `k` logits (≤ 0: fooled): `logitMargin`.
    func margin(_ z: UnsafeMutablePointer<Float>, count k: Int, label: Int, target: Int?) -> Float {
        logitMargin(z, count: k, label: label, target: target)
    }

    /// One restart on the `m` active rows: the start, then random search until the query budget is
    /// spent or every row is fooled.
    private func run(active: Int, targeted: Bool, shape: ImageShape, classifier: any DifferentiableClassifier, shard: Int,
                     into adversarial: MatrixRef, workspace ws: Workspace, generator: inout RandomGenerator) {
        let d = ws.features
        var m = active
        for i in 0..<m {
            let x = ws.best.pointer + i * d, clean = ws.activeClean.pointer + i * d
            switch norm {
            case .linf: stripes(x, clean: clean, shape: shape, generator: &generator)
            case .l2: grid(x, clean: clean, shape: shape, workspace: ws, generator: &generator)
            }
        }
        ws.incremental?.firstLayer(ws.best.matrix(rows: m, columns: d))
        evaluate(ws.best.matrix(rows: m, columns: d), rows: m, targeted: targeted, fromBest: true, classifier: classifier, shard: shard,
                 into: ws.bestMargin, workspace: ws)
        for i in 0..<m { ws.results.queries[ws.activeRows[i]] += 1 }
        m = keep(rows: m, into: adversarial, classifier: classifier, shard: shard, targeted: targeted, workspace: ws)

        var iteration = 0
        ws.candidatesMatchBest = false
        while m > 0 && iteration + 1 < queries {
            let s = side(iteration: iteration, shape: shape)
            // L∞ candidates differ from the current points in one window: once the candidates equal
            // the current points, only that window is copied back (rejected) or over (accepted).
            if !ws.candidatesMatchBest || norm == .l2 { ws.candidate.pointer.update(from: ws.best.pointer, count: m * d) }
            ws.candidatesMatchBest = norm == .linf
            for i in 0..<m {
                let x = ws.candidate.pointer + i * d, clean = ws.activeClean.pointer + i * d
                switch norm {
                case .linf: linfCandidate(x, best: ws.best.pointer + i * d, clean: clean, side: s, shape: shape, row: i,
                                          workspace: ws, generator: &generator)
                case .l2: l2Candidate(x, clean: clean, side: s, shape: shape, workspace: ws, generator: &generator)
                }
            }
            evaluate(ws.candidate.matrix(rows: m, columns: d), rows: m, targeted: targeted, fromBest: false, classifier: classifier,
                     shard: shard, into: ws.margin, workspace: ws)
            for i in 0..<m {
                ws.results.queries[ws.activeRows[i]] += 1
                let value = ws.margin.pointer[i]
                let (best, candidate) = (ws.best.pointer + i * d, ws.candidate.pointer + i * d)
                guard value < ws.bestMargin.pointer[i] || value <= 0 else {
                    if norm == .linf { copyWindow(from: best, to: candidate, row: i, side: s, shape: shape, workspace: ws) }
                    continue
                }
                ws.bestMargin.pointer[i] = value
                if norm == .linf {
                    copyWindow(from: candidate, to: best, row: i, side: s, shape: shape, workspace: ws)
                } else {
                    best.update(from: candidate, count: d)
                }
                ws.incremental?.acceptCandidate(row: i)
            }
            iteration += 1
            if iteration % Self.refreshInterval == 0 { ws.incremental?.firstLayer(ws.best.matrix(rows: m, columns: d)) }
            m = keep(rows: m, into: adversarial, classifier: classifier, shard: shard, targeted: targeted, workspace: ws)
        }
        // The rows still active keep their lowest-margin point.
        for i in 0..<m { adversarial.row(ws.activeRows[i]).update(from: ws.best.pointer + i * d, count: d) }
    }

    /// Copies row `i`'s last L∞ window (all channels) between two images.
    private func copyWindow(from source: UnsafeMutablePointer<Float>, to destination: UnsafeMutablePointer<Float>, row i: Int, side s: Int,
                            shape: ImageShape, workspace ws: Workspace) {
        let (top, left) = (ws.windowTop[i], ws.windowLeft[i])
        for c in 0..<shape.channels {
            for line in top..<(top + s) {
                let start = (c * shape.height + line) * shape.width + left
                (destination + start).update(from: source + start, count: s)
            }
        }
    }

    /// The margins of `x` (the rows' current points, or their candidates) into `margins`: with the
    /// incremental path, from the first layer's pre-activations (`fromBest`: those of the current
    /// points, else the candidates' updated ones).
    private func evaluate(_ x: MatrixRef, rows m: Int, targeted: Bool, fromBest: Bool, classifier: any DifferentiableClassifier,
                          shard: Int, into margins: FloatBuffer, workspace ws: Workspace) {
        let logits: MatrixRef
        if let incremental = ws.incremental {
            logits = incremental.logits(rows: m, fromCandidates: !fromBest)
        } else {
            logits = classifier.logits(x, shard: shard)
        }
        for i in 0..<m {
            margins.pointer[i] = margin(logits.row(i), count: logits.columns, label: ws.activeLabels[i],
                                        target: targeted ? ws.activeTargets[i] : nil)
        }
    }

    /// Writes the fooled rows' points to the output and drops them from the active set; at the end
    /// of a restart (no budget left) the caller's loop stops, and the rows still active keep their
    /// lowest-margin point. Returns the new number of active rows.
    private func keep(rows m: Int, into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                      targeted: Bool, workspace ws: Workspace) -> Int {
        let d = ws.features
        if let incremental = ws.incremental {
            // Margins from incrementally updated first layers drift by rounding: confirm a success
            // with an exact forward pass before the input leaves the batch.
            var k = 0
            for i in 0..<m where ws.bestMargin.pointer[i] <= 0 {
                (ws.candidate.pointer + k * d).update(from: ws.best.pointer + i * d, count: d)
                ws.confirming[k] = i
                k += 1
            }
            if k > 0 {
                ws.candidatesMatchBest = false  // the candidates' rows were used as scratch
                let logits = classifier.logits(ws.candidate.matrix(rows: k, columns: d), shard: shard)
                var drifted = false
                for s in 0..<k {
                    let i = ws.confirming[s]
                    let exact = margin(logits.row(s), count: logits.columns, label: ws.activeLabels[i], target: targeted ? ws.activeTargets[i] : nil)
                    if exact > 0 {
                        ws.bestMargin.pointer[i] = exact
                        drifted = true
                    }
                }
                if drifted { incremental.firstLayer(ws.best.matrix(rows: m, columns: d)) }
            }
        }
        var kept = 0
        for i in 0..<m {
            let r = ws.activeRows[i]
            if ws.bestMargin.pointer[i] <= 0 {
                adversarial.row(r).update(from: ws.best.pointer + i * d, count: d)
                ws.fooled[r] = true
                ws.results.fooledAt[r] = ws.results.queries[r]
                continue
            }
            if kept != i { ws.moveRow(i, to: kept) }
            kept += 1
        }
        return kept
    }

    /// L∞ start: x + ε·σ with one sign per column and channel, clamped to [0, 1].
    private func stripes(_ x: UnsafeMutablePointer<Float>, clean: UnsafeMutablePointer<Float>, shape: ImageShape,
                         generator: inout RandomGenerator) {
        for c in 0..<shape.channels {
            for column in 0..<shape.width {
                let sign: Float = generator.nextUnitFloat() < 0.5 ? -1 : 1
                for row in 0..<shape.height {
                    let j = (c * shape.height + row) * shape.width + column
                    x[j] = min(max(clean[j] + sign * epsilon, 0), 1)
                }
            }
        }
    }

    /// A random window offset in 0 ..< size − side (0 when the window fills the image), as the
    /// authors draw it.
    private func offset(_ size: Int, side s: Int, generator: inout RandomGenerator) -> Int {
        size > s ? generator.nextInt(below: size - s) : 0
    }

    /// L∞ candidate: one window set to clean ± ε (a sign per channel), clamped to [0, 1]; the changed
    /// pixels go to the incremental evaluator.
    private func linfCandidate(_ x: UnsafeMutablePointer<Float>, best: UnsafeMutablePointer<Float>, clean: UnsafeMutablePointer<Float>,
                               side s: Int, shape: ImageShape, row: Int, workspace ws: Workspace, generator: inout RandomGenerator) {
        let top = offset(shape.height, side: s, generator: &generator), left = offset(shape.width, side: s, generator: &generator)
        (ws.windowTop[row], ws.windowLeft[row]) = (top, left)
        var changed = 0
        for c in 0..<shape.channels {
            let sign: Float = generator.nextUnitFloat() < 0.5 ? -1 : 1
            for i in top..<(top + s) {
                for j in left..<(left + s) {
                    let index = (c * shape.height + i) * shape.width + j
                    let value = min(max(clean[index] + sign * epsilon, 0), 1)
                    x[index] = value
                    if value != best[index] {
                        ws.changedFeatures[changed] = index
                        ws.changes.pointer[changed] = value - best[index]
                        changed += 1
                    }
                }
            }
        }
        ws.incremental?.setCandidate(row: row, features: ws.changedFeatures, changes: ws.changes.pointer, count: changed)
    }

    /// Writes the authors' "double rectangle" pattern of side `s` (unit L2 norm; transposed with
    /// probability ½) into `pattern[0..<s*s]`.
    private func pattern(_ pattern: UnsafeMutablePointer<Float>, side s: Int, generator: inout RandomGenerator) {
        pattern.update(repeating: 0, count: s * s)
        func rectangles(rows a: Int, from first: Int, sign: Float) {
            // Nested squares around the centre of an a × s block, weight 1/(r+1)² for ring r, then
            // the block is scaled to unit norm.
            guard a > 0 else { return }
            var (cx, cy) = (a / 2, s / 2)
            for r in 0..<max(a / 2 + 1, s / 2 + 1) {
                for i in max(cx, 0)..<max(min(cx + 2 * r + 1, a), max(cx, 0)) {
                    for j in max(cy, 0)..<max(min(cy + 2 * r + 1, s), max(cy, 0)) {
                        pattern[(first + i) * s + j] += sign / Float((r + 1) * (r + 1))
                    }
                }
                cx -= 1
                cy -= 1
            }
            normalise(pattern + first * s, count: a * s)
        }
        rectangles(rows: s / 2, from: 0, sign: 1)
        rectangles(rows: s - s / 2, from: s / 2, sign: -1)
        normalise(pattern, count: s * s)
        if generator.nextUnitFloat() > 0.5 {
            for i in 0..<s {
                for j in (i + 1)..<s {
                    let (a, b) = (pattern[i * s + j], pattern[j * s + i])
                    pattern[i * s + j] = b
                    pattern[j * s + i] = a
                }
            }
        }
    }

    private func normalise(_ v: UnsafeMutablePointer<Float>, count: Int) {
        var squares: Float = 0
        for j in 0..<count { squares += v[j] * v[j] }
        let scale = 1 / (squares.squareRoot() + 1e-12)
        for j in 0..<count { v[j] *= scale }
    }

    /// x ← clamp(clean + ε·δ/‖δ‖₂, 0, 1) for the perturbation δ held in `x` (x − clean on entry).
    private func projectL2(_ x: UnsafeMutablePointer<Float>, clean: UnsafeMutablePointer<Float>, count d: Int) {
        // The norm in Double and a scale a hair under ε, so rounding never leaves the ball.
        var squares: Double = 0
        for j in 0..<d { squares += Double(x[j]) * Double(x[j]) }
        let scale = Float(Double(epsilon) * (1 - 1e-6) / (squares.squareRoot() + 1e-12))
        for j in 0..<d { x[j] = min(max(clean[j] + scale * x[j], 0), 1) }
    }

    /// L2 start: a grid of patterns of side h/5 with random signs per tile and channel, scaled to
    /// norm ε, clamped to [0, 1].
    private func grid(_ x: UnsafeMutablePointer<Float>, clean: UnsafeMutablePointer<Float>, shape: ImageShape, workspace ws: Workspace,
                      generator: inout RandomGenerator) {
        let d = ws.features
        x.update(repeating: 0, count: d)
        let s = max(min(shape.height, shape.width) / 5, 1)
        var top = max((shape.height - 5 * s) / 2, 0)
        for _ in 0..<(shape.height / s) {
            var left = max((shape.width - 5 * s) / 2, 0)
            for _ in 0..<(shape.width / s) {
                pattern(ws.pattern.pointer, side: s, generator: &generator)
                for c in 0..<shape.channels {
                    let sign: Float = generator.nextUnitFloat() < 0.5 ? -1 : 1
                    for i in 0..<s where top + i >= 0 && top + i < shape.height {
                        for j in 0..<s where left + j >= 0 && left + j < shape.width {
                            x[(c * shape.height + top + i) * shape.width + left + j] += sign * ws.pattern.pointer[i * s + j]
                        }
                    }
                }
                left += s
            }
            top += s
        }
        projectL2(x, clean: clean, count: d)
    }

    /// L2 candidate: window 1 gets a fresh pattern plus its old (normalised) content, rescaled so the
    /// perturbation keeps norm ε with window 2's mass moved into it; window 2 is cleared first.
    private func l2Candidate(_ x: UnsafeMutablePointer<Float>, clean: UnsafeMutablePointer<Float>, side s: Int, shape: ImageShape,
                             workspace ws: Workspace, generator: inout RandomGenerator) {
        let d = ws.features
        for j in 0..<d { x[j] -= clean[j] }  // the current perturbation δ
        let (h, w) = (shape.height, shape.width)
        let top = offset(h, side: s, generator: &generator), left = offset(w, side: s, generator: &generator)
        let top2 = offset(h, side: s, generator: &generator), left2 = offset(w, side: s, generator: &generator)
        func inFirst(_ i: Int, _ j: Int) -> Bool { i >= top && i < top + s && j >= left && j < left + s }
        func inSecond(_ i: Int, _ j: Int) -> Bool { i >= top2 && i < top2 + s && j >= left2 && j < left2 + s }
        var total: Float = 0
        for j in 0..<d { total += x[j] * x[j] }
        pattern(ws.pattern.pointer, side: s, generator: &generator)
        let channels = Float(shape.channels)
        for c in 0..<shape.channels {
            let base = c * h * w
            var first: Float = 0, both: Float = 0
            for i in 0..<h {
                for j in 0..<w {
                    let v = x[base + i * w + j]
                    if inFirst(i, j) { first += v * v }
                    if inFirst(i, j) || inSecond(i, j) { both += v * v }
                }
            }
            let firstNorm = first.squareRoot(), bothNorm = both.squareRoot()
            let sign: Float = generator.nextUnitFloat() < 0.5 ? -1 : 1
            var newNorm: Float = 0
            for i in 0..<s {
                for j in 0..<s {
                    let v = sign * ws.pattern.pointer[i * s + j] + x[base + (top + i) * w + left + j] / (firstNorm + 1e-12)
                    ws.window.pointer[i * s + j] = v
                    newNorm += v * v
                }
            }
            let target = (max(epsilon * epsilon - total, 0) / channels + bothNorm * bothNorm).squareRoot()
            let scale = target / (newNorm.squareRoot() + 1e-12)
            for i in 0..<s { for j in 0..<s { x[base + (top2 + i) * w + left2 + j] = 0 } }
            for i in 0..<s { for j in 0..<s { x[base + (top + i) * w + left + j] = ws.window.pointer[i * s + j] * scale } }
        }
        projectL2(x, clean: clean, count: d)
    }
}

extension Square {
    /// The attack's settings in an `AttackSpec` (all but ε):
    /// `{"type": "square", "norm": "linf", "queries": 5000, "p_init": 0.8, "restarts": 1,
    ///   "image": {"height": 28, "width": 28, "channels": 1}}` (`image` inferred for square inputs).
    public struct Parameters: Codable, Equatable, Sendable {
        public var norm: Norm
        public var queries: Int
        public var pInit: Float
        public var restarts: Int
        public var image: ImageShape?
        public var rescaleSchedule: Bool

        public init(norm: Norm = .linf, queries: Int = Square.defaultQueries, pInit: Float = 0.8, restarts: Int = 1,
                    image: ImageShape? = nil, rescaleSchedule: Bool = false) throws {
            self.norm = norm
            self.queries = queries
            self.pInit = pInit
            self.restarts = restarts
            self.image = image
            self.rescaleSchedule = rescaleSchedule
            try validate()
        }

        static let keys: Set<String> = ["norm", "queries", "p_init", "restarts", "image", "rescale_schedule"]

        enum CodingKeys: String, CodingKey {
            case norm, queries, restarts, image
            case pInit = "p_init", rescaleSchedule = "rescale_schedule"
        }

        /// - Throws: `AttackError.invalidParameter` naming a bad value.
        public func validate() throws {
            _ = try Square(norm: norm, epsilon: 1, queries: queries, pInit: pInit, restarts: restarts, image: image)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            norm = try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .linf
            queries = try c.decodeIfPresent(Int.self, forKey: .queries) ?? Square.defaultQueries
            pInit = try c.decodeIfPresent(Float.self, forKey: .pInit) ?? 0.8
            restarts = try c.decodeIfPresent(Int.self, forKey: .restarts) ?? 1
            image = try c.decodeIfPresent(ImageShape.self, forKey: .image)
            rescaleSchedule = try c.decodeIfPresent(Bool.self, forKey: .rescaleSchedule) ?? false
            do { try validate() } catch { throw c.invalid(CodingKeys(stringValue: parameterName(of: error)) ?? .queries, "\(error)") }
        }
    }
}

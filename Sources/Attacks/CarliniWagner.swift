import Foundation
import NeuralNet
import TensorCore

/// Carlini & Wagner's L2 attack (Carlini & Wagner, 2017, "Towards Evaluating the Robustness of
/// Neural Networks", §V.A), a minimum-norm attack. In the variable w, with x = (tanh(w) + 1)/2 so
/// that x stays in [0, 1], it minimises
/// ```
/// ‖x − x₀‖₂² + c·max(Z_y(x) − max_{j≠y} Z_j(x) + κ, 0)
/// ```
/// by Adam from the clean input, for each constant c of a binary search per input: c starts at
/// `initialConst`; after a search step in which some iterate was adversarial with confidence κ
/// (Z_y + κ < max_{j≠y} Z_j) the upper bound falls to c, otherwise the lower bound rises to c; the
/// next c is the midpoint, or 10·c while no adversarial iterate has been found. The closest
/// adversarial iterate over all search steps is the input's result; `AttackRowResults.minimalNorm`
/// records its L2 norm (∞ if none, 0 for inputs misclassified clean). As an `Attack` with budget ε
/// an input is fooled, and returned, if that iterate is within ε; otherwise it is returned clean.
///
/// Abort early: every ⌈steps/10⌉ iterations a search step stops for an input whose loss has not
/// fallen below 0.9999 of its value at the previous check. The reference code and foolbox check the
/// batch's summed loss; checking per input keeps each input's result independent of its batch.
/// Defaults: 9 search steps, learning rate 0.01, κ = 0, c₀ = 10⁻³ (the reference and foolbox), and
/// 1,000 iterations per search step (the reference allows 10,000; with abort early few inputs use
/// 1,000).
public struct CarliniWagner: MinimumNormAttack {
    public let epsilon: Float
    public let steps: Int
    public let binarySearchSteps: Int
    public let learningRate: Float
    public let confidence: Float
    public let initialConst: Float
    public let abortEarly: Bool
    public var norm: Norm { .l2 }
    public var loss: AttackLoss { .margin }

    public static let defaultSteps = 1000

    /// - Throws: `AttackError.invalidParameter` naming a bad value.
    public init(norm: Norm = .l2, epsilon: Float, steps: Int = defaultSteps, binarySearchSteps: Int = 9, learningRate: Float = 0.01,
                confidence: Float = 0, initialConst: Float = 1e-3, abortEarly: Bool = true) throws {
        try require(norm == .l2, "norm", norm.rawValue, "C&W-L2 minimises the L2 norm (give --norm l2, or \"norm\": \"l2\")")
        try require(epsilon > 0 && epsilon.isFinite, "epsilon", epsilon, "must be a positive number")
        try require(steps >= 1 && steps <= 100_000, "steps", steps, "must be between 1 and 100000")
        try require(binarySearchSteps >= 1 && binarySearchSteps <= 100, "binary_search_steps", binarySearchSteps, "must be between 1 and 100")
        try require(learningRate > 0 && learningRate.isFinite, "learning_rate", learningRate, "must be a positive number")
        try require(confidence >= 0 && confidence.isFinite, "confidence", confidence, "must be ≥ 0")
        try require(initialConst > 0 && initialConst.isFinite, "initial_const", initialConst, "must be a positive number")
        self.epsilon = epsilon
        self.steps = steps
        self.binarySearchSteps = binarySearchSteps
        self.learningRate = learningRate
        self.confidence = confidence
        self.initialConst = initialConst
        self.abortEarly = abortEarly
    }

    public var description: String {
        "C&W-L2(ε=\(epsilon), steps=\(steps), binary search steps=\(binarySearchSteps), learning rate=\(learningRate), κ=\(confidence), c₀=\(initialConst))"
    }

    public func validate(goal: AttackGoal, classes: Int) throws {
        if goal.isTargeted {
            throw AttackError.invalidParameter(name: "targeted", value: goal.targets!.description, requirement: "C&W-L2 is untargeted here")
        }
        try require(classes >= 2, "classes", classes, "C&W-L2 needs at least 2 classes")
    }

    /// Scratch of one shard. Per attacked input (a slot): its clean input, its start w₀ and the
    /// clean input as the change of variables reproduces it, Adam's w, m and v, the closest
    /// adversarial iterate and the binary search's bounds. The iterates of the inputs still
    /// optimising are gathered into `input` for each forward pass.
    public final class Workspace: AttackWorkspace {
        public let capacity: Int
        public let features: Int
        public let results: AttackRowResults
        let clean: FloatBuffer, start: FloatBuffer, reference: FloatBuffer
        let w: FloatBuffer, firstMoment: FloatBuffer, secondMoment: FloatBuffer
        let input: FloatBuffer, best: FloatBuffer, gradient: FloatBuffer
        let bestNorm: FloatBuffer, constant: FloatBuffer, lower: FloatBuffer, upper: FloatBuffer, lastLoss: FloatBuffer, classTerm: FloatBuffer
        let found: UnsafeMutablePointer<Bool>
        let rows: UnsafeMutablePointer<Int>, labels: UnsafeMutablePointer<Int>, live: UnsafeMutablePointer<Int>
        let predictions: UnsafeMutablePointer<Int>

        init(rows capacity: Int, features: Int) {
            self.capacity = capacity
            self.features = features
            results = AttackRowResults(capacity: capacity)
            let size = capacity * features
            (clean, start, reference) = (FloatBuffer(count: size), FloatBuffer(count: size), FloatBuffer(count: size))
            (w, firstMoment, secondMoment) = (FloatBuffer(count: size), FloatBuffer(count: size), FloatBuffer(count: size))
            (input, best, gradient) = (FloatBuffer(count: size), FloatBuffer(count: size), FloatBuffer(count: features))
            (bestNorm, constant, lower) = (FloatBuffer(count: capacity), FloatBuffer(count: capacity), FloatBuffer(count: capacity))
            (upper, lastLoss, classTerm) = (FloatBuffer(count: capacity), FloatBuffer(count: capacity), FloatBuffer(count: capacity))
            found = allocateFilled(capacity, with: false)
            rows = allocateFilled(capacity, with: 0)
            labels = allocateFilled(capacity, with: 0)
            live = allocateFilled(capacity, with: 0)
            predictions = allocateFilled(capacity, with: 0)
        }

        deinit {
            found.deallocate()
            rows.deallocate()
            labels.deallocate()
            live.deallocate()
            predictions.deallocate()
        }
    }

    public func makeWorkspace(rows: Int, features: Int) -> Workspace { Workspace(rows: rows, features: features) }

    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                        workspace ws: Workspace, generator: inout RandomGenerator) throws {
        try checkShapes(clean, adversarial, workspace: ws, classifier: classifier)
        guard targets == nil else { throw AttackError.invalidParameter(name: "targets", value: "given", requirement: "C&W-L2 is untargeted here") }
        let (n, d) = (clean.rows, clean.columns)
        guard n > 0 else { return }
        adversarial.copy(from: clean)
        let m = beginMinimumNormRun(clean, labels: labels, classifier: classifier, shard: shard, results: ws.results,
                                    predictions: ws.predictions, slots: ws.rows, slotLabels: ws.labels, slotClean: ws.clean.pointer)
        for i in 0..<m {
            let (x0, w0) = (ws.clean.pointer + i * d, ws.start.pointer + i * d)
            for j in 0..<d { w0[j] = atanh((2 * x0[j] - 1) * 0.999999) }
            Kernels.tanhBox(w0, into: ws.reference.pointer + i * d, count: d)
        }
        ws.constant.pointer.update(repeating: initialConst, count: m)
        ws.lower.pointer.update(repeating: 0, count: m)
        ws.upper.pointer.update(repeating: .infinity, count: m)
        ws.bestNorm.pointer.update(repeating: .infinity, count: m)
        for search in 0..<binarySearchSteps where m > 0 {
            // The reference's last step with ten or more search steps tries the upper bound itself.
            if binarySearchSteps >= 10 && search == binarySearchSteps - 1 {
                for i in 0..<m where ws.upper.pointer[i].isFinite { ws.constant.pointer[i] = ws.upper.pointer[i] }
            }
            searchStep(slots: m, firstIteration: search * steps, classifier: classifier, shard: shard, workspace: ws)
            for i in 0..<m {
                let c = ws.constant.pointer[i]
                if ws.found[i] { ws.upper.pointer[i] = min(ws.upper.pointer[i], c) } else { ws.lower.pointer[i] = max(ws.lower.pointer[i], c) }
                // The reference's bound: c never exceeds 10¹⁰ (Float would overflow after ~40 fruitless steps).
                ws.constant.pointer[i] = ws.upper.pointer[i].isFinite ? (ws.lower.pointer[i] + ws.upper.pointer[i]) / 2 : min(c * 10, 1e10)
            }
        }
        finishMinimumNormRun(count: m, features: d, slots: ws.rows, best: ws.best.pointer, bestNorm: ws.bestNorm.pointer,
                             results: ws.results, into: adversarial)
        try ball.verify(adversarial, clean: clean, results: ws.results)
    }

    /// One search step: Adam over w from w₀ for every slot at its current constant, until `steps`
    /// run out or the slot aborts early. Records each slot's closest adversarial iterate.
    private func searchStep(slots m: Int, firstIteration: Int, classifier: any DifferentiableClassifier, shard: Int, workspace ws: Workspace) {
        let d = ws.features
        ws.w.pointer.update(from: ws.start.pointer, count: m * d)
        ws.firstMoment.pointer.update(repeating: 0, count: m * d)
        ws.secondMoment.pointer.update(repeating: 0, count: m * d)
        ws.lastLoss.pointer.update(repeating: .infinity, count: m)
        ws.found.update(repeating: false, count: m)
        for i in 0..<m { ws.live[i] = i }
        var live = m
        let checkEvery = (steps + 9) / 10
        let (beta1, beta2): (Float, Float) = (0.9, 0.999)
        for iteration in 0..<steps where live > 0 {
            for k in 0..<live { Kernels.tanhBox(ws.w.pointer + ws.live[k] * d, into: ws.input.pointer + k * d, count: d) }
            let logits = classifier.logits(ws.input.matrix(rows: live, columns: d), shard: shard)
            Kernels.argmaxRows(logits, into: ws.predictions)
            let classTerm = ws.classTerm.pointer
            let logitsGradient = classifier.logitsGradient(shard: shard)
            for k in 0..<live {
                let i = ws.live[k], y = ws.labels[i], z = logits.row(k)
                var other = -Float.infinity, otherClass = 0
                for j in 0..<logits.columns where j != y && z[j] > other { (other, otherClass) = (z[j], j) }
                let hinge = z[y] - other + confidence
                let g = logitsGradient.row(k)
                g.update(repeating: 0, count: logitsGradient.columns)
                let c = ws.constant.pointer[i]
                if hinge > 0 {
                    g[y] = c
                    g[otherClass] = -c
                }
                classTerm[k] = c * max(hinge, 0)
                // Adversarial with confidence κ; for κ = 0 exactly the fresh forward pass's argmax.
                let adversarial = confidence == 0 ? ws.predictions[k] != y : other > z[y] + confidence
                if adversarial { recordAdversarial(slot: i, iterate: ws.input.pointer + k * d, iteration: firstIteration + iteration + 1, workspace: ws) }
            }
            let gradient = classifier.inputGradient(shard: shard)
            let t = Float(iteration + 1)
            let stepSize = learningRate / (1 - pow(beta1, t)), inverseRoot = 1 / (1 - pow(beta2, t)).squareRoot()
            let check = abortEarly && iteration % checkEvery == 0
            var kept = 0
            for k in 0..<live {
                let i = ws.live[k]
                let squares = Kernels.carliniWagnerGradient(x: ws.input.pointer + k * d, reference: ws.reference.pointer + i * d,
                                                            gradient: gradient.row(k), into: ws.gradient.pointer, count: d)
                Kernels.adamUpdate(parameters: ws.w.pointer + i * d, gradients: ws.gradient.pointer, firstMoment: ws.firstMoment.pointer + i * d,
                                   secondMoment: ws.secondMoment.pointer + i * d, count: d, stepSize: stepSize, beta1: beta1, beta2: beta2,
                                   epsilon: 1e-8, inverseRootCorrection2: inverseRoot, l2: 0, shrink: 1)
                if check {
                    let loss = squares + classTerm[k]
                    if !(loss <= 0.9999 * ws.lastLoss.pointer[i]) { continue }
                    ws.lastLoss.pointer[i] = loss
                }
                ws.live[kept] = i
                kept += 1
            }
            live = kept
        }
    }

    /// Slot `i`'s iterate is adversarial: its search step found one, and it is kept if it is the
    /// closest so far (distance to the true clean input, by the verification's kernel).
    private func recordAdversarial(slot i: Int, iterate: UnsafeMutablePointer<Float>, iteration: Int, workspace ws: Workspace) {
        ws.found[i] = true
        keepIfCloser(slot: i, iterate: iterate, iteration: iteration, features: ws.features, slotClean: ws.clean.pointer,
                     best: ws.best.pointer, bestNorm: ws.bestNorm.pointer, slots: ws.rows, results: ws.results)
    }
}

extension CarliniWagner {
    /// The attack's settings in an `AttackSpec` (all but ε): `{"type": "cw", "norm": "l2", "steps": 1000,
    /// "binary_search_steps": 9, "learning_rate": 0.01, "confidence": 0, "initial_const": 0.001, "abort_early": true}`.
    public struct Parameters: Codable, Equatable, Sendable {
        public var norm: Norm
        public var steps: Int
        public var binarySearchSteps: Int
        public var learningRate: Float
        public var confidence: Float
        public var initialConst: Float
        public var abortEarly: Bool

        public init(norm: Norm = .l2, steps: Int = CarliniWagner.defaultSteps, binarySearchSteps: Int = 9, learningRate: Float = 0.01,
                    confidence: Float = 0, initialConst: Float = 1e-3, abortEarly: Bool = true) throws {
            self.norm = norm
            self.steps = steps
            self.binarySearchSteps = binarySearchSteps
            self.learningRate = learningRate
            self.confidence = confidence
            self.initialConst = initialConst
            self.abortEarly = abortEarly
            try validate()
        }

        static let keys: Set<String> = ["norm", "steps", "binary_search_steps", "learning_rate", "confidence", "initial_const", "abort_early"]

        enum CodingKeys: String, CodingKey {
            case norm, steps, confidence
            case binarySearchSteps = "binary_search_steps", learningRate = "learning_rate", initialConst = "initial_const"
            case abortEarly = "abort_early"
        }

        /// - Throws: `AttackError.invalidParameter` naming a bad value.
        public func validate() throws {
            _ = try CarliniWagner(norm: norm, epsilon: 1, steps: steps, binarySearchSteps: binarySearchSteps, learningRate: learningRate,
                                  confidence: confidence, initialConst: initialConst, abortEarly: abortEarly)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            norm = try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .l2
            steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? CarliniWagner.defaultSteps
            binarySearchSteps = try c.decodeIfPresent(Int.self, forKey: .binarySearchSteps) ?? 9
            learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? 0.01
            confidence = try c.decodeIfPresent(Float.self, forKey: .confidence) ?? 0
            initialConst = try c.decodeIfPresent(Float.self, forKey: .initialConst) ?? 1e-3
            abortEarly = try c.decodeIfPresent(Bool.self, forKey: .abortEarly) ?? true
            do { try validate() } catch { throw c.invalid(CodingKeys(stringValue: parameterName(of: error)) ?? .steps, "\(error)") }
        }
    }
}

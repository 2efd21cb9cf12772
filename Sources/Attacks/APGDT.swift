import Foundation
import NeuralNet
import TensorCore

/// APGD-T (Croce & Hein, 2020): APGD on the targeted DLR loss
/// −(z_y − z_t) / (z_π₁ − (z_π₃ + z_π₄)/2), run once per target class t: the classes with the 2nd,
/// 3rd, … (`targetClasses` + 1)-th highest logit at the clean input. Each run starts afresh from a
/// random point and attacks only the inputs no earlier run has fooled; any misclassification
/// counts as success. AutoAttack's standard version uses 9 target classes, 100 steps, 1 restart.
///
/// The targets are chosen by the attack, so it runs untargeted (an `AttackGoal` with targets is
/// refused); it needs at least 4 classes, and uses at most classes − 1 targets.
public struct APGDT: Attack {
    public let targetClasses: Int
    /// The APGD run used for each target (loss: targeted DLR).
    public let apgd: APGD

    public var norm: Norm { apgd.norm }
    public var epsilon: Float { apgd.epsilon }
    public var loss: AttackLoss { .dlr }

    /// AutoAttack's number of target classes.
    public static let defaultTargetClasses = 9

    /// - Throws: `AttackError.invalidParameter` naming a bad value.
    public init(norm: Norm = .linf, epsilon: Float, steps: Int = APGD.defaultSteps, restarts: Int = 1,
                targetClasses: Int = APGDT.defaultTargetClasses, rho: Float = 0.75, stopAtFirstSuccess: Bool = true) throws {
        try require(targetClasses >= 1 && targetClasses <= 1000, "target_classes", targetClasses, "must be between 1 and 1000")
        self.targetClasses = targetClasses
        apgd = try APGD(norm: norm, epsilon: epsilon, steps: steps, restarts: restarts, loss: .dlr, rho: rho,
                        stopAtFirstSuccess: stopAtFirstSuccess)
    }

    public var description: String {
        "APGD-T(\(norm.rawValue), ε=\(epsilon), steps=\(apgd.steps), restarts=\(apgd.restarts), target classes=\(targetClasses)"
            + "\(apgd.stopAtFirstSuccess ? "" : ", highest-loss iterate"))"
    }

    public func validate(goal: AttackGoal, classes: Int) throws {
        if goal.isTargeted {
            throw AttackError.invalidParameter(name: "targeted", value: goal.targets!.description,
                                               requirement: "APGD-T picks its own target classes (the highest clean logits); use apgd for a targeted attack")
        }
        try require(classes >= 4, "classes", classes, "APGD-T's targeted DLR loss needs at least 4 classes")
    }

    public func makeWorkspace(rows: Int, features: Int) -> APGD.Workspace { APGD.Workspace(rows: rows, features: features) }

    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                        workspace ws: APGD.Workspace, generator: inout RandomGenerator) throws {
        try checkShapes(clean, adversarial, workspace: ws, classifier: classifier)
        guard targets == nil else {
            throw AttackError.invalidParameter(name: "targets", value: "given",
                                               requirement: "APGD-T picks its own target classes; use apgd for a targeted attack")
        }
        guard clean.rows > 0 else { return }
        let classes = classifier.classCount
        try require(classes >= 4, "classes", classes, "APGD-T's targeted DLR loss needs at least 4 classes")
        apgd.begin(clean, labels: labels, targets: nil, into: adversarial, classifier: classifier, shard: shard, workspace: ws)
        var run = 0
        for rank in 2...(min(targetClasses, classes - 1) + 1) {
            for _ in 0..<apgd.restarts {
                defer { run += 1 }
                let m = apgd.activate(clean: clean, labels: labels, targets: nil, workspace: ws)
                if m == 0 { break }
                selectTargets(rank: rank, rows: m, classifier: classifier, shard: shard, workspace: ws)
                apgd.run(active: m, targets: true, success: .misclassified, classifier: classifier, shard: shard,
                         into: adversarial, workspace: ws, generator: &generator, firstStep: run * apgd.steps)
            }
        }
        try ball.verify(adversarial, clean: clean, results: ws.results)
    }

    /// Sets each active row's target to the class with the `rank`-th highest clean logit.
    private func selectTargets(rank: Int, rows m: Int, classifier: any DifferentiableClassifier, shard: Int,
                               workspace ws: APGD.Workspace) {
        let logits = classifier.logits(ws.activeClean.matrix(rows: m, columns: ws.features), shard: shard)
        for i in 0..<m { ws.activeTargets[i] = rankedClass(logits.row(i), count: logits.columns, rank: rank) }
    }
}

extension APGDT {
    /// The attack's settings in an `AttackSpec` (all but ε):
    /// `{"type": "apgd-t", "norm": "linf", "steps": 100, "restarts": 1, "target_classes": 9, "rho": 0.75}`.
    public struct Parameters: Codable, Equatable, Sendable {
        public var norm: Norm
        public var steps: Int
        public var restarts: Int
        public var targetClasses: Int
        public var rho: Float

        public init(norm: Norm = .linf, steps: Int = APGD.defaultSteps, restarts: Int = 1,
                    targetClasses: Int = APGDT.defaultTargetClasses, rho: Float = 0.75) throws {
            self.norm = norm
            self.steps = steps
            self.restarts = restarts
            self.targetClasses = targetClasses
            self.rho = rho
            try validate()
        }

        static let keys: Set<String> = ["norm", "steps", "restarts", "target_classes", "rho"]

        enum CodingKeys: String, CodingKey {
            case norm, steps, restarts, rho
            case targetClasses = "target_classes"
        }

        /// - Throws: `AttackError.invalidParameter` naming a bad value.
        public func validate() throws {
            try APGD.Parameters(steps: steps, restarts: restarts, rho: rho).validate()
            try require(targetClasses >= 1 && targetClasses <= 1000, "target_classes", targetClasses, "must be between 1 and 1000")
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            norm = try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .linf
            steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? APGD.defaultSteps
            restarts = try c.decodeIfPresent(Int.self, forKey: .restarts) ?? 1
            targetClasses = try c.decodeIfPresent(Int.self, forKey: .targetClasses) ?? APGDT.defaultTargetClasses
            rho = try c.decodeIfPresent(Float.self, forKey: .rho) ?? 0.75
            do { try validate() } catch { throw c.invalid(CodingKeys(stringValue: parameterName(of: error)) ?? .steps, "\(error)") }
        }
    }
}

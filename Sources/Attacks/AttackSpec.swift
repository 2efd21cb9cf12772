import Foundation
import _FileSystem

/// A typed, Codable description of an attack, everything but its budget ε: the one description
/// that `bulwark attack`'s flags, bench configurations and adversarial training all use.
///
/// JSON: a `type` and that attack's parameters, flat, validated when decoded; a key that does not
/// belong to the type is an error naming it:
/// ```json
/// {"type": "fgsm", "norm": "linf", "loss": "ce"}
/// {"type": "pgd", "norm": "linf", "loss": "ce", "steps": 20, "relative_step_size": 0.1, "restarts": 1, "random_start": true}
/// {"type": "apgd", "norm": "linf", "loss": "ce", "steps": 100, "restarts": 1, "rho": 0.75}
/// {"type": "apgd-t", "norm": "linf", "steps": 100, "restarts": 1, "target_classes": 9, "rho": 0.75}
/// {"type": "square", "norm": "linf", "queries": 5000, "p_init": 0.8, "restarts": 1}
/// {"type": "fab-t", "norm": "linf", "steps": 100, "target_classes": 9}
/// {"type": "autoattack", "norm": "linf", "version": "standard"}
/// {"type": "mi-fgsm", "norm": "linf", "loss": "ce", "steps": 10, "decay": 1}
/// {"type": "deepfool", "norm": "l2", "steps": 50, "overshoot": 0.02}
/// {"type": "cw", "norm": "l2", "steps": 1000, "binary_search_steps": 9, "learning_rate": 0.01, "confidence": 0, "initial_const": 0.001}
/// {"type": "ddn", "norm": "l2", "steps": 1000, "gamma": 0.05, "init_epsilon": 1}
/// ```
/// Adding an attack: its file (the attack, its `Parameters`, its `Workspace`), one case here, and
/// one line in each switch below.
public enum AttackSpec: Equatable, Sendable {
    case fgsm(FGSM.Parameters)
    case pgd(PGD.Parameters)
    case apgd(APGD.Parameters)
    case apgdTargeted(APGDT.Parameters)
    case square(Square.Parameters)
    case fabTargeted(FAB.Parameters)
    case autoattack(AutoAttackSuite.Parameters)
    case miFGSM(MIFGSM.Parameters)
    case deepFool(DeepFool.Parameters)
    case carliniWagner(CarliniWagner.Parameters)
    case ddn(DDN.Parameters)

    /// The `type` names, in the order they are listed in messages.
    public static let types = ["fgsm", "pgd", "mi-fgsm", "apgd", "apgd-t", "fab-t", "square", "deepfool", "cw", "ddn", "autoattack"]

    public var type: String {
        switch self {
        case .fgsm: "fgsm"
        case .pgd: "pgd"
        case .apgd: "apgd"
        case .apgdTargeted: "apgd-t"
        case .square: "square"
        case .fabTargeted: "fab-t"
        case .autoattack: "autoattack"
        case .miFGSM: "mi-fgsm"
        case .deepFool: "deepfool"
        case .carliniWagner: "cw"
        case .ddn: "ddn"
        }
    }

    public var norm: Norm {
        switch self {
        case .fgsm(let p): p.norm
        case .pgd(let p): p.norm
        case .apgd(let p): p.norm
        case .apgdTargeted(let p): p.norm
        case .square(let p): p.norm
        case .fabTargeted(let p): p.norm
        case .autoattack(let p): p.norm
        case .miFGSM(let p): p.norm
        case .deepFool(let p): p.norm
        case .carliniWagner(let p): p.norm
        case .ddn(let p): p.norm
        }
    }

    public var loss: AttackLoss {
        switch self {
        case .fgsm(let p): p.loss
        case .pgd(let p): p.loss
        case .apgd(let p): p.loss
        case .apgdTargeted: .dlr
        case .square, .fabTargeted: .margin
        case .autoattack: .crossEntropy
        case .miFGSM(let p): p.loss
        case .deepFool, .carliniWagner: .margin
        case .ddn: .crossEntropy
        }
    }

    /// Whether the attack takes several gradient steps (and so must be at least as strong as FGSM).
    public var isIterative: Bool {
        switch self {
        case .fgsm: false
        case .pgd, .apgd, .apgdTargeted, .square, .fabTargeted, .autoattack, .miFGSM, .deepFool, .carliniWagner, .ddn: true
        }
    }

    /// Whether the attack ascends the loss by gradient steps (PGD, MI-FGSM, APGD, APGD-T): more
    /// steps can only help it, so it must be at least as strong as FGSM.
    public var isGradientAscent: Bool {
        switch self {
        case .pgd, .miFGSM, .apgd, .apgdTargeted: true
        default: false
        }
    }

    /// Which example the attack returns for each input when run for `purpose`.
    public func returnedExamples(purpose: Purpose) -> String {
        switch self {
        case .fgsm: "single-step"
        case .pgd, .miFGSM, .apgd, .apgdTargeted: purpose == .evaluation ? "first-success" : "highest-loss"
        case .square: "first-success, else lowest-margin"
        case .fabTargeted: "closest-success, else clean"
        case .deepFool, .carliniWagner, .ddn: "minimal-norm success within ε, else clean"
        case .autoattack: "success of the stage that fooled it, else clean"
        }
    }

    /// Whether the attack uses only the model's outputs (no gradients).
    public var isBlackBox: Bool {
        if case .square = self { return true }
        return false
    }

    /// Gradient steps per input at most (over restarts and target classes): the attack's cost.
    public var maximumSteps: Int {
        switch self {
        case .fgsm: 1
        case .pgd(let p): p.steps * p.restarts
        case .apgd(let p): (p.steps + 1) * p.restarts
        case .apgdTargeted(let p): (p.steps + 1) * p.restarts * p.targetClasses
        case .square(let p): p.queries * p.restarts / 3  // forward passes only
        case .fabTargeted(let p): 2 * p.steps * p.targetClasses
        case .autoattack(let p): 101 + 909 + 1800 + p.squareQueries / 3
        case .miFGSM(let p): p.steps
        case .deepFool(let p): p.steps * 10
        case .carliniWagner(let p): p.steps * p.binarySearchSteps
        case .ddn(let p): p.steps
        }
    }

    /// Iterations per input at most, over restarts and target runs (queries for Square), and the
    /// length of one run; nil for single-step attacks.
    public func iterationBudget(classes: Int) -> (total: Int, run: Int)? {
        switch self {
        case .fgsm: nil
        case .pgd(let p): (p.steps * p.restarts, p.steps)
        case .apgd(let p): (p.steps * p.restarts, p.steps)
        case .apgdTargeted(let p): (p.steps * p.restarts * max(1, min(p.targetClasses, classes - 1)), p.steps)
        case .square(let p): (p.queries * p.restarts, p.queries)
        case .fabTargeted(let p): (p.steps * max(1, min(p.targetClasses, classes - 1)), p.steps)
        case .autoattack: nil  // a cascade: its stages report their own convergence when run alone
        case .miFGSM(let p): (p.steps, p.steps)
        case .deepFool(let p): (p.steps, p.steps)
        case .carliniWagner(let p): (p.steps * p.binarySearchSteps, p.steps)
        case .ddn(let p): (p.steps, p.steps)
        }
    }

    /// The parameter keys of attack type `type` (besides `type`).
    public static func keys(for type: String) -> Set<String>? {
        switch type {
        case "fgsm": FGSM.Parameters.keys
        case "pgd": PGD.Parameters.keys
        case "apgd": APGD.Parameters.keys
        case "apgd-t": APGDT.Parameters.keys
        case "square": Square.Parameters.keys
        case "fab-t": FAB.Parameters.keys
        case "autoattack": AutoAttackSuite.Parameters.keys
        case "mi-fgsm": MIFGSM.Parameters.keys
        case "deepfool": DeepFool.Parameters.keys
        case "cw": CarliniWagner.Parameters.keys
        case "ddn": DDN.Parameters.keys
        default: nil
        }
    }

    /// What an attack is run for. Evaluation stops attacking an input once it is fooled and returns
    /// that first fooling iterate (it decides accuracy, cheaply). Training (Madry et al. train on the
    /// strongest examples) and `examples` (adversarial inputs that are saved or transferred to other
    /// models) run every step for every input and return its highest-loss iterate.
    public enum Purpose: Sendable {
        case evaluation, training, examples

        var stopsAtFirstSuccess: Bool { self == .evaluation }
    }

    /// The attack at budget ε: the one factory.
    /// - Throws: `AttackError.invalidParameter` naming a bad value.
    public func makeAttack(epsilon: Float, purpose: Purpose = .evaluation, returnMargin: Float? = nil) throws -> any Attack {
        if let returnMargin {
            try require(purpose != .evaluation, "return margin", returnMargin, "applies to saved or transferred examples (every step runs)")
            try require(returnMargin.isFinite, "return margin", returnMargin, "must be a finite number")
            switch self {
            case .pgd, .miFGSM: break
            default: throw AttackError.invalidParameter(name: "return margin", value: "\(returnMargin)", requirement: "applies to pgd and mi-fgsm, not \(type)")
            }
        }
        switch self {
        case .fgsm(let p):
            return try FGSM(norm: p.norm, epsilon: epsilon, loss: p.loss)
        case .pgd(let p):
            var attack = try PGD(norm: p.norm, epsilon: epsilon, stepSize: p.stepSize(epsilon: epsilon), steps: p.steps,
                                 restarts: p.restarts, randomStart: p.randomStart, loss: p.loss,
                                 stopAtFirstSuccess: purpose.stopsAtFirstSuccess)
            attack.returnMargin = returnMargin
            return attack
        case .apgd(let p):
            return try APGD(norm: p.norm, epsilon: epsilon, steps: p.steps, restarts: p.restarts, loss: p.loss, rho: p.rho,
                            stopAtFirstSuccess: purpose.stopsAtFirstSuccess)
        case .apgdTargeted(let p):
            return try APGDT(norm: p.norm, epsilon: epsilon, steps: p.steps, restarts: p.restarts, targetClasses: p.targetClasses,
                             rho: p.rho, stopAtFirstSuccess: purpose.stopsAtFirstSuccess)
        case .square(let p):
            return try Square(norm: p.norm, epsilon: epsilon, queries: p.queries, pInit: p.pInit, restarts: p.restarts, image: p.image,
                              rescaleSchedule: p.rescaleSchedule)
        case .fabTargeted(let p):
            return try FAB(norm: p.norm, epsilon: epsilon, steps: p.steps, targetClasses: p.targetClasses, alphaMax: p.alphaMax,
                           eta: p.eta, beta: p.beta)
        case .autoattack(let p):
            return try AutoAttackSuite(norm: p.norm, epsilon: epsilon, squareQueries: p.squareQueries, image: p.image)
        case .miFGSM(let p):
            var attack = try MIFGSM(norm: p.norm, epsilon: epsilon, stepSize: p.stepSize, steps: p.steps, decay: p.decay, loss: p.loss,
                                    stopAtFirstSuccess: purpose.stopsAtFirstSuccess)
            attack.returnMargin = returnMargin
            return attack
        case .deepFool(let p):
            return try DeepFool(norm: p.norm, epsilon: epsilon, steps: p.steps, overshoot: p.overshoot)
        case .carliniWagner(let p):
            return try CarliniWagner(norm: p.norm, epsilon: epsilon, steps: p.steps, binarySearchSteps: p.binarySearchSteps,
                                     learningRate: p.learningRate, confidence: p.confidence, initialConst: p.initialConst, abortEarly: p.abortEarly)
        case .ddn(let p):
            return try DDN(norm: p.norm, epsilon: epsilon, steps: p.steps, gamma: p.gamma, initialEpsilon: p.initialEpsilon)
        }
    }
}

extension AttackSpec: Codable {
    public init(from decoder: any Decoder) throws {
        try self.init(from: decoder, alsoAllowing: [])
    }

    /// Decodes a spec that shares its JSON object with other fields (a bench configuration's attack
    /// entry also has `name`, `epsilons`, `targeted`, `labels`): keys outside the type's parameters
    /// and `alsoAllowing` are errors.
    public init(from decoder: any Decoder, alsoAllowing extra: Set<String>) throws {
        let container = try decoder.container(keyedBy: AnyCodingKey.self)
        let typeKey = AnyCodingKey("type")
        let type = try container.decode(String.self, forKey: typeKey)
        guard let keys = Self.keys(for: type) else {
            let suggestion = StrictDecoding.closest(to: type, in: Self.types).map { "; did you mean \"\($0)\"?" } ?? ""
            throw container.invalid(typeKey, "unknown attack type \"\(type)\" (known: \(Self.types.joined(separator: ", ")))\(suggestion)")
        }
        try StrictDecoding.rejectUnknownKeys(decoder, allowed: keys.union(extra).union(["type"])) { key in
            let owners = Self.types.filter { Self.keys(for: $0)?.contains(key) == true }
            let list = owners.count > 1 ? owners.dropLast().joined(separator: ", ") + " and " + owners.last! : owners.joined()
            return owners.isEmpty ? nil : "\"\(key)\" is a parameter of \(list) attacks, not \(type)"
        }
        switch type {
        case "fgsm": self = .fgsm(try FGSM.Parameters(from: decoder))
        case "pgd": self = .pgd(try PGD.Parameters(from: decoder))
        case "apgd": self = .apgd(try APGD.Parameters(from: decoder))
        case "apgd-t": self = .apgdTargeted(try APGDT.Parameters(from: decoder))
        case "square": self = .square(try Square.Parameters(from: decoder))
        case "fab-t": self = .fabTargeted(try FAB.Parameters(from: decoder))
        case "autoattack": self = .autoattack(try AutoAttackSuite.Parameters(from: decoder))
        case "mi-fgsm": self = .miFGSM(try MIFGSM.Parameters(from: decoder))
        case "deepfool": self = .deepFool(try DeepFool.Parameters(from: decoder))
        case "cw": self = .carliniWagner(try CarliniWagner.Parameters(from: decoder))
        case "ddn": self = .ddn(try DDN.Parameters(from: decoder))
        default: throw container.invalid(typeKey, "attack type \"\(type)\" has parameters but no decoder (a bug: add it here)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: AnyCodingKey.self)
        try container.encode(type, forKey: AnyCodingKey("type"))
        switch self {
        case .fgsm(let p): try p.encode(to: encoder)
        case .pgd(let p): try p.encode(to: encoder)
        case .apgd(let p): try p.encode(to: encoder)
        case .apgdTargeted(let p): try p.encode(to: encoder)
        case .square(let p): try p.encode(to: encoder)
        case .fabTargeted(let p): try p.encode(to: encoder)
        case .autoattack(let p): try p.encode(to: encoder)
        case .miFGSM(let p): try p.encode(to: encoder)
        case .deepFool(let p): try p.encode(to: encoder)
        case .carliniWagner(let p): try p.encode(to: encoder)
        case .ddn(let p): try p.encode(to: encoder)
        }
    }
}

/// Which labels an untargeted attack pushes away from.
public enum LabelSource: String, Sendable, Codable, CaseIterable {
    /// The true labels.
    case trueLabels = "true"
    /// The model's clean predictions, which avoids label leaking (Kurakin et al., 2017).
    case predictions
}

/// The class each input is pushed toward in a targeted attack. JSON: `"random"` or a class index.
public enum TargetSelection: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The same class for every input (inputs of that class are left unchanged and not counted).
    case fixed(Int)
    /// A class drawn uniformly from the classes other than the true label (seeded).
    case random

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self), text == "random" {
            self = .random
        } else if let target = try? container.decode(Int.self), target >= 0 {
            self = .fixed(target)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\"targeted\" must be \"random\" or a class index ≥ 0")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .fixed(let target): try container.encode(target)
        case .random: try container.encode("random")
        }
    }

    public var description: String {
        switch self {
        case .fixed(let target): "class \(target)"
        case .random: "random"
        }
    }
}

/// What an attack run aims at: untargeted away from the true labels or the model's predictions,
/// or targeted toward a class. JSON (beside an attack spec): `"targeted": "random" | 3`,
/// `"labels": "true" | "predictions"`.
public struct AttackGoal: Equatable, Sendable {
    public var targets: TargetSelection?
    public var labels: LabelSource

    public init(targets: TargetSelection? = nil, labels: LabelSource = .trueLabels) {
        self.targets = targets
        self.labels = labels
    }

    public static let untargeted = AttackGoal()

    public var isTargeted: Bool { targets != nil }

    /// Checks the goal against a model's class count and the attack's loss.
    /// - Throws: `AttackError.invalidParameter` naming the problem.
    public func validate(classes: Int, loss: AttackLoss) throws {
        if case .fixed(let target)? = targets {
            try require(target < classes, "target class", target, "must be between 0 and \(classes - 1)")
        }
        if targets != nil && labels == .predictions {
            throw AttackError.invalidParameter(name: "labels", value: "predictions",
                                               requirement: "applies to untargeted attacks; a targeted attack pushes toward its target")
        }
        let needed = loss.minimumClasses(targeted: targets != nil)
        try require(classes >= needed, "loss", loss.rawValue, "needs at least \(needed) classes, the model has \(classes)")
    }
}

import Attacks
import Certification
import Foundation
import NeuralNet
import _FileSystem

/// What a recipe trains on, as a typed, Codable value; `makeObjective()` builds the
/// `TrainingObjective` the trainer runs.
///
/// ```json
/// {"type": "cross_entropy", "label_smoothing": 0}
/// {"type": "adversarial", "attack": {"type": "pgd", "steps": 7, "step_size": 0.025}, "epsilon": 0.1, "mix": 0.9}
/// {"type": "dp_sgd", "noise_multiplier": 1.1, "clip": 1, "delta": 1e-5}
/// {"type": "ibp", "epsilon": 0.15, "warmup_epochs": 2, "ramp_epochs": 20, "final_kappa": 0.5}   (or "crown_ibp")
/// {"type": "trades", "epsilon": 0.1, "beta": 6, "steps": 10, "step_size": 0.025}
/// {"type": "fast_adversarial", "method": "n-fgsm", "epsilon": 0.1, "step_size": 0.1, "noise": 2}
/// ```
/// `mix` is the fraction of each batch replaced by adversarial examples (default 0.5 for FGSM, as
/// in Goodfellow et al.; 1 for iterative attacks, as in Madry et al.); `epsilon` defaults to 0.1 and
/// the attack's parameters to `AttackSpec`'s defaults (PGD: 10 steps of 2.5·ε/steps), as with
/// `bulwark train`'s flags.
public enum ObjectiveSpec: Equatable, Sendable {
    case crossEntropy(labelSmoothing: Float)
    case adversarial(AdversarialTrainingSpec)
    case dpSGD(DPSGDSpec)
    case certified(CertifiedTrainingSpec)
    case trades(TRADESSpec)
    case fastAdversarial(FastAdversarialSpec)

    public static let standard = ObjectiveSpec.crossEntropy(labelSmoothing: 0)

    public var labelSmoothing: Float {
        switch self {
        case .crossEntropy(let smoothing): smoothing
        case .adversarial(let spec): spec.labelSmoothing
        case .dpSGD(let spec): spec.labelSmoothing
        case .certified, .trades, .fastAdversarial: 0
        }
    }

    /// - Throws: `NeuralNetError` or `AttackError` naming a bad value.
    public func makeObjective() throws -> any TrainingObjective {
        switch self {
        case .crossEntropy(let smoothing):
            return try CrossEntropyObjective(labelSmoothing: smoothing)
        case .adversarial(let spec):
            return try AdversarialObjective(spec)
        case .dpSGD(let spec):
            guard spec.delta > 0 && spec.delta < 1 else {
                throw NeuralNetError.invalidHyperparameter(name: "DP δ", value: "\(spec.delta)", requirement: "must be in (0, 1)")
            }
            guard spec.noiseMultiplier > 0 else {
                throw NeuralNetError.invalidHyperparameter(name: "DP noise multiplier", value: "\(spec.noiseMultiplier)",
                                                           requirement: "must be > 0 (without noise, clipping gives no privacy: ε is infinite)")
            }
            return try DPSGDObjective(noiseMultiplier: spec.noiseMultiplier, clipNorm: spec.clip, labelSmoothing: spec.labelSmoothing,
                                      noiseSource: spec.noise)
        case .certified(let spec):
            return try IntervalBoundObjective(schedule: spec.schedule, crownIBP: spec.crownIBP, record: json)
        case .trades(let spec):
            return try TRADESObjective(spec)
        case .fastAdversarial(let spec):
            return try FastAdversarialObjective(spec)
        }
    }

    /// Whether training perturbs inputs within [0, 1] (which the data must then respect).
    public var perturbsInputs: Bool {
        switch self {
        case .adversarial, .trades, .fastAdversarial, .certified: true
        case .crossEntropy, .dpSGD: false
        }
    }

    /// The ball whose PGD robust accuracy is measured on held-out examples after every epoch
    /// (adversarial, single-step and TRADES training); nil for the other objectives.
    public var monitoredBall: (norm: Norm, epsilon: Float)? {
        switch self {
        case .adversarial(let spec): (spec.attack.norm, spec.epsilon)
        case .trades(let spec): (.linf, spec.epsilon)
        case .fastAdversarial(let spec): (.linf, spec.epsilon)
        case .crossEntropy, .dpSGD, .certified: nil
        }
    }

    /// A short phrase: "cross-entropy", "PGD adversarial training (ε = 0.1, mix 0.9)".
    public var summary: String {
        switch self {
        case .crossEntropy(let smoothing): smoothing == 0 ? "cross-entropy" : "cross-entropy (label smoothing \(smoothing))"
        case .adversarial(let spec): "\(spec.attack.type.uppercased()) adversarial training (ε = \(spec.epsilon), mix \(spec.mix))"
        case .dpSGD(let spec): "DP-SGD (σ = \(spec.noiseMultiplier), C = \(spec.clip), δ = \(spec.delta)\(spec.noise == .seeded ? ", seeded noise" : ""))"
        case .certified(let spec): "\(spec.crownIBP ? "CROWN-IBP" : "IBP") certified training (ε = \(spec.schedule.epsilon), κ → \(spec.schedule.finalKappa))"
        case .trades(let spec): "TRADES (β = \(spec.beta), ε = \(spec.epsilon), \(spec.steps) steps)"
        case .fastAdversarial(let spec): "\(spec.method.displayName) adversarial training (ε = \(spec.epsilon), α = \(spec.stepSize))"
        }
    }

    /// The canonical JSON (sorted keys), which is also the objective's checkpoint record.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// Adversarial training: which attack, at which ε, on which fraction of each batch.
public struct AdversarialTrainingSpec: Equatable, Sendable {
    /// ε when none is given (`--train-eps`, `"epsilon"`).
    public static let defaultEpsilon: Float = 0.1

    public var attack: AttackSpec
    public var epsilon: Float
    public var mix: Float
    public var labelSmoothing: Float

    /// - Parameter mix: default 0.5 for a single-step attack, 1 for an iterative one.
    public init(attack: AttackSpec, epsilon: Float, mix: Float? = nil, labelSmoothing: Float = 0) {
        self.attack = attack
        self.epsilon = epsilon
        self.mix = mix ?? (attack.isIterative ? 1 : 0.5)
        self.labelSmoothing = labelSmoothing
    }
}

/// DP-SGD (Abadi et al., 2016): per-example clipping to `clip`, Gaussian noise of σ·clip, the δ at
/// which the privacy accountant reports ε, and where the noise's seed comes from (`secure` unless
/// an experiment must repeat exactly: see `DPSGDObjective.NoiseSource`).
public struct DPSGDSpec: Equatable, Sendable {
    /// δ when none is given (`--dp-delta`, `"delta"`).
    public static let defaultDelta = 1e-5

    public var noiseMultiplier: Float
    public var clip: Float
    public var delta: Double
    public var labelSmoothing: Float
    public var noise: DPSGDObjective.NoiseSource

    public init(noiseMultiplier: Float, clip: Float, delta: Double = DPSGDSpec.defaultDelta, labelSmoothing: Float = 0,
                noise: DPSGDObjective.NoiseSource = .secure) {
        self.noiseMultiplier = noiseMultiplier
        self.clip = clip
        self.delta = delta
        self.labelSmoothing = labelSmoothing
        self.noise = noise
    }

    /// The (ε, δ) guarantee after `steps` steps of batches of `batchSize` from `trainingExamples`
    /// (sampling rate q = batchSize / trainingExamples; see `DPSGDObjective` on shuffled batches).
    public func guarantee(steps: Int, batchSize: Int, trainingExamples: Int) -> RDPAccountant.Guarantee {
        RDPAccountant.guarantee(samplingRate: min(1, Double(batchSize) / Double(max(trainingExamples, 1))),
                                noiseMultiplier: Double(noiseMultiplier), steps: steps, delta: delta)
    }
}

/// Certified training with interval bounds (`IntervalBoundObjective`; Gowal et al. 2018): its ε
/// and κ schedule.
public struct CertifiedTrainingSpec: Equatable, Sendable {
    public static let defaultWarmupEpochs = 1.0
    public static let defaultRampEpochs = 10.0
    public static let defaultFinalKappa: Float = 0.5

    public var schedule: CertifiedTrainingSchedule
    /// CROWN-IBP (Zhang et al. 2020) instead of IBP alone.
    public var crownIBP: Bool

    public init(crownIBP: Bool = false, epsilon: Float = AdversarialTrainingSpec.defaultEpsilon, warmupEpochs: Double = CertifiedTrainingSpec.defaultWarmupEpochs,
                rampEpochs: Double = CertifiedTrainingSpec.defaultRampEpochs, finalKappa: Float = CertifiedTrainingSpec.defaultFinalKappa) {
        self.crownIBP = crownIBP
        schedule = CertifiedTrainingSchedule(epsilon: epsilon, warmupEpochs: warmupEpochs, rampEpochs: rampEpochs, finalKappa: finalKappa)
    }
}

extension ObjectiveSpec: Codable {
    enum CodingKeys: String, CodingKey {
        case type, attack, epsilon, mix, clip, delta, noise
        case labelSmoothing = "label_smoothing", noiseMultiplier = "noise_multiplier"
        case warmupEpochs = "warmup_epochs", rampEpochs = "ramp_epochs", finalKappa = "final_kappa"
        case beta, steps, stepSize = "step_size", method
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        let smoothing = try c.decodeIfPresent(Float.self, forKey: .labelSmoothing) ?? 0
        switch type {
        case "cross_entropy":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["type", "label_smoothing"])
            self = .crossEntropy(labelSmoothing: smoothing)
        case "adversarial":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["type", "label_smoothing", "attack", "epsilon", "mix"])
            self = .adversarial(AdversarialTrainingSpec(
                attack: try c.decode(AttackSpec.self, forKey: .attack),
                epsilon: try c.decodeIfPresent(Float.self, forKey: .epsilon) ?? AdversarialTrainingSpec.defaultEpsilon,
                mix: try c.decodeIfPresent(Float.self, forKey: .mix), labelSmoothing: smoothing))
        case "dp_sgd":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["type", "label_smoothing", "noise_multiplier", "clip", "delta", "noise"])
            self = .dpSGD(DPSGDSpec(noiseMultiplier: try c.decode(Float.self, forKey: .noiseMultiplier), clip: try c.decode(Float.self, forKey: .clip),
                                    delta: try c.decodeIfPresent(Double.self, forKey: .delta) ?? DPSGDSpec.defaultDelta, labelSmoothing: smoothing,
                                    noise: try c.decodeIfPresent(DPSGDObjective.NoiseSource.self, forKey: .noise) ?? .secure))
        case "ibp", "crown_ibp":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["type", "epsilon", "warmup_epochs", "ramp_epochs", "final_kappa"])
            self = .certified(CertifiedTrainingSpec(
                crownIBP: type == "crown_ibp",
                epsilon: try c.decodeIfPresent(Float.self, forKey: .epsilon) ?? AdversarialTrainingSpec.defaultEpsilon,
                warmupEpochs: try c.decodeIfPresent(Double.self, forKey: .warmupEpochs) ?? CertifiedTrainingSpec.defaultWarmupEpochs,
                rampEpochs: try c.decodeIfPresent(Double.self, forKey: .rampEpochs) ?? CertifiedTrainingSpec.defaultRampEpochs,
                finalKappa: try c.decodeIfPresent(Float.self, forKey: .finalKappa) ?? CertifiedTrainingSpec.defaultFinalKappa))
        case "trades":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["type", "epsilon", "beta", "steps", "step_size"])
            self = .trades(TRADESSpec(epsilon: try c.decodeIfPresent(Float.self, forKey: .epsilon) ?? AdversarialTrainingSpec.defaultEpsilon,
                                      beta: try c.decodeIfPresent(Float.self, forKey: .beta) ?? TRADESSpec.defaultBeta,
                                      steps: try c.decodeIfPresent(Int.self, forKey: .steps) ?? 10,
                                      stepSize: try c.decodeIfPresent(Float.self, forKey: .stepSize)))
        case "fast_adversarial":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["type", "method", "epsilon", "step_size", "noise"])
            let name = try c.decode(String.self, forKey: .method)
            guard let method = FastAdversarialSpec.Method(rawValue: name) else {
                throw c.invalid(.method, "unknown single-step method \"\(name)\" (known: fgsm-rs, n-fgsm)")
            }
            self = .fastAdversarial(FastAdversarialSpec(method: method,
                                                        epsilon: try c.decodeIfPresent(Float.self, forKey: .epsilon) ?? AdversarialTrainingSpec.defaultEpsilon,
                                                        stepSize: try c.decodeIfPresent(Float.self, forKey: .stepSize),
                                                        noise: try c.decodeIfPresent(Float.self, forKey: .noise)))
        default:
            throw c.invalid(.type, "unknown objective \"\(type)\" (known: cross_entropy, adversarial, dp_sgd, ibp, crown_ibp, trades, fast_adversarial)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .crossEntropy(let smoothing):
            try c.encode("cross_entropy", forKey: .type)
            try c.encode(smoothing, forKey: .labelSmoothing)
        case .adversarial(let spec):
            try c.encode("adversarial", forKey: .type)
            try c.encode(spec.attack, forKey: .attack)
            try c.encode(spec.epsilon, forKey: .epsilon)
            try c.encode(spec.mix, forKey: .mix)
            try c.encode(spec.labelSmoothing, forKey: .labelSmoothing)
        case .dpSGD(let spec):
            try c.encode("dp_sgd", forKey: .type)
            try c.encode(spec.noiseMultiplier, forKey: .noiseMultiplier)
            try c.encode(spec.clip, forKey: .clip)
            try c.encode(spec.delta, forKey: .delta)
            try c.encode(spec.noise, forKey: .noise)
            try c.encode(spec.labelSmoothing, forKey: .labelSmoothing)
        case .certified(let spec):
            try c.encode(spec.crownIBP ? "crown_ibp" : "ibp", forKey: .type)
            try c.encode(spec.schedule.epsilon, forKey: .epsilon)
            try c.encode(spec.schedule.warmupEpochs, forKey: .warmupEpochs)
            try c.encode(spec.schedule.rampEpochs, forKey: .rampEpochs)
            try c.encode(spec.schedule.finalKappa, forKey: .finalKappa)
        case .trades(let spec):
            try c.encode("trades", forKey: .type)
            try c.encode(spec.epsilon, forKey: .epsilon)
            try c.encode(spec.beta, forKey: .beta)
            try c.encode(spec.steps, forKey: .steps)
            try c.encode(spec.stepSize, forKey: .stepSize)
        case .fastAdversarial(let spec):
            try c.encode("fast_adversarial", forKey: .type)
            try c.encode(spec.method.rawValue, forKey: .method)
            try c.encode(spec.epsilon, forKey: .epsilon)
            try c.encode(spec.stepSize, forKey: .stepSize)
            try c.encode(spec.noise, forKey: .noise)
        }
    }
}

import Foundation
import TensorCore
import _FileSystem

/// The engine's part of a training recipe: the architecture, initialisation, seed, batching,
/// optimizer, schedule and clipping. With the same configuration, objective and data, the same
/// weights come out. (The full recipe, with the objective and the data split, is the Training
/// target's `TrainingRecipe`.)
public struct TrainerConfiguration: Codable, Equatable, Sendable {
    public var architecture: ModelSpec
    public var initialization: InitializationScheme
    public var seed: UInt64
    public var epochs: Int
    public var batchSize: Int
    public var optimizer: OptimizerConfiguration
    public var schedule: LearningRateSchedule
    /// Global gradient-norm clipping threshold, if any.
    public var clipNorm: Float?

    public init(architecture: ModelSpec, initialization: InitializationScheme? = nil, seed: UInt64, epochs: Int,
                batchSize: Int, optimizer: OptimizerConfiguration, schedule: LearningRateSchedule = .constant,
                clipNorm: Float? = nil) {
        self.architecture = architecture
        self.initialization = initialization ?? architecture.defaultInitialization
        self.seed = seed
        self.epochs = epochs
        self.batchSize = batchSize
        self.optimizer = optimizer
        self.schedule = schedule
        self.clipNorm = clipNorm
    }

    enum CodingKeys: String, CodingKey {
        case architecture, initialization, seed, epochs, optimizer, schedule
        case batchSize = "batch_size"
        case clipNorm = "clip_norm"
    }

    /// - Throws: `NeuralNetError` naming the first invalid value.
    public func validate() throws {
        try require(epochs >= 1 && epochs <= 100_000, "epochs", epochs, "must be between 1 and 100000")
        try require(batchSize >= 1 && batchSize <= 1 << 20, "batch size", batchSize, "must be between 1 and 1048576")
        if let clipNorm { try require(clipNorm > 0 && clipNorm.isFinite, "clip norm", clipNorm, "must be positive") }
        try schedule.validate()
        _ = try optimizer.makeOptimizer(parameterCount: 0)
        let shards = WorkerPool.defaultShardCount
        try architecture.checkWorkspace(rows: (batchSize + shards - 1) / shards, what: "a batch of \(batchSize) split in \(shards) shards")
    }

    /// Whether a run with `other` can continue a checkpoint made with `self` and reach exactly the
    /// weights an uninterrupted run would: everything equal, except that the number of epochs may
    /// change when the learning-rate schedule does not depend on it. Returns the first difference.
    public func resumeConflict(with other: TrainerConfiguration) -> String? {
        var a = self, b = other
        let scheduleIndependentOfLength: Bool = switch schedule {
        case .constant, .step, .cyclic: true
        case .cosine, .oneCycle: false
        }
        if scheduleIndependentOfLength { a.epochs = 0; b.epochs = 0 }
        guard a != b else { return nil }
        return firstDifference(a, b) ?? "the training settings differ"
    }
}

/// "the checkpoint was made with seed = 0, this run has 9" for the first stored property that differs.
func firstDifference<T>(_ a: T, _ b: T) -> String? {
    for (childA, childB) in zip(Mirror(reflecting: a).children, Mirror(reflecting: b).children)
    where "\(childA.value)" != "\(childB.value)" {
        return "the checkpoint was made with \(childA.label ?? "?") = \(childA.value), this run has \(childB.value)"
    }
    return nil
}

// MARK: - JSON forms (flat, strict)

/// `{"type": "adam", "lr": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0}`,
/// `{"type": "adamw", …}` (decoupled decay, default 0.01) or
/// `{"type": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": true, "weight_decay": 5e-4}`; omitted
/// fields take `bulwark train`'s defaults (lr 1e-3, PyTorch's for the rest); unknown keys are errors.
extension OptimizerConfiguration: Codable {
    enum CodingKeys: String, CodingKey {
        case type, lr, momentum, nesterov, beta1, beta2, epsilon
        case weightDecay = "weight_decay"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        let lr = try c.decodeIfPresent(Float.self, forKey: .lr) ?? 1e-3
        let common: Set<String> = ["type", "lr", "weight_decay"]
        switch type {
        case "sgd":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: common.union(["momentum", "nesterov"]))
            self = .sgd(learningRate: lr, momentum: try c.decodeIfPresent(Float.self, forKey: .momentum) ?? 0,
                        nesterov: try c.decodeIfPresent(Bool.self, forKey: .nesterov) ?? false,
                        weightDecay: try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? 0)
        case "adam", "adamw":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: common.union(["beta1", "beta2", "epsilon"]))
            self = .adam(learningRate: lr, beta1: try c.decodeIfPresent(Float.self, forKey: .beta1) ?? 0.9,
                         beta2: try c.decodeIfPresent(Float.self, forKey: .beta2) ?? 0.999,
                         epsilon: try c.decodeIfPresent(Float.self, forKey: .epsilon) ?? 1e-8,
                         weightDecay: try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? (type == "adamw" ? 0.01 : 0),
                         decoupled: type == "adamw")
        default:
            throw c.invalid(.type, "unknown optimizer \"\(type)\" (known: sgd, adam, adamw)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .type)
        switch self {
        case .sgd(let lr, let momentum, let nesterov, let weightDecay):
            try c.encode(lr, forKey: .lr)
            try c.encode(momentum, forKey: .momentum)
            try c.encode(nesterov, forKey: .nesterov)
            try c.encode(weightDecay, forKey: .weightDecay)
        case .adam(let lr, let beta1, let beta2, let epsilon, let weightDecay, _):
            try c.encode(lr, forKey: .lr)
            try c.encode(beta1, forKey: .beta1)
            try c.encode(beta2, forKey: .beta2)
            try c.encode(epsilon, forKey: .epsilon)
            try c.encode(weightDecay, forKey: .weightDecay)
        }
    }
}

/// `{"type": "constant"}`, `{"type": "step", "every": 10, "gamma": 0.5}`, `{"type": "cosine",
/// "minimum": 0}`, `{"type": "onecycle"}`, `{"type": "cyclic", "every": 4}` (`every` 1, `gamma` 0.5
/// and `minimum` 0 by default, as `bulwark train`'s flags); unknown keys are errors.
extension LearningRateSchedule: Codable {
    enum CodingKeys: String, CodingKey {
        case type, every, gamma, minimum
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "constant":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["type"])
            self = .constant
        case "step":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["type", "every", "gamma"])
            self = .step(every: try c.decodeIfPresent(Int.self, forKey: .every) ?? 1, gamma: try c.decodeIfPresent(Float.self, forKey: .gamma) ?? 0.5)
        case "cosine":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["type", "minimum"])
            self = .cosine(minimum: try c.decodeIfPresent(Float.self, forKey: .minimum) ?? 0)
        case "onecycle":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["type"])
            self = .oneCycle
        case "cyclic":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["type", "every"])
            self = .cyclic(epochsPerCycle: try c.decodeIfPresent(Int.self, forKey: .every) ?? 1)
        default:
            throw c.invalid(.type, "unknown schedule \"\(type)\" (known: constant, step, cosine, onecycle, cyclic)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .constant:
            try c.encode("constant", forKey: .type)
        case .step(let every, let gamma):
            try c.encode("step", forKey: .type)
            try c.encode(every, forKey: .every)
            try c.encode(gamma, forKey: .gamma)
        case .cosine(let minimum):
            try c.encode("cosine", forKey: .type)
            try c.encode(minimum, forKey: .minimum)
        case .oneCycle:
            try c.encode("onecycle", forKey: .type)
        case .cyclic(let every):
            try c.encode("cyclic", forKey: .type)
            try c.encode(every, forKey: .every)
        }
    }
}

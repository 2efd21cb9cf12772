import Foundation

/// Everything that determines a training run: with the same recipe and data, the same weights come
/// out. Stored in model files and checkpoints (as JSON) so a model can be reproduced.
public struct TrainingRecipe: Codable, Equatable, Sendable {
    /// The canonical JSON layer list of the architecture.
    public var architecture: String
    public var initialization: InitializationScheme
    public var seed: UInt64
    public var epochs: Int
    public var batchSize: Int
    public var validationFraction: Double
    public var optimizer: OptimizerConfiguration
    public var schedule: LearningRateSchedule
    /// Global gradient-norm clipping threshold, if any.
    public var clipNorm: Float?
    public var labelSmoothing: Float
    /// Which data trained the model, e.g. `fashion-mnist (60000 train)`.
    public var dataset: String
    /// A description of the batch augmentation (adversarial training), if any.
    public var augmentation: String?

    public init(architecture: ModelSpec, initialization: InitializationScheme? = nil, seed: UInt64, epochs: Int,
                batchSize: Int, validationFraction: Double = 0.1, optimizer: OptimizerConfiguration,
                schedule: LearningRateSchedule = .constant, clipNorm: Float? = nil, labelSmoothing: Float = 0,
                dataset: String, augmentation: String? = nil) {
        self.architecture = architecture.json
        self.initialization = initialization ?? architecture.defaultInitialization
        self.seed = seed
        self.epochs = epochs
        self.batchSize = batchSize
        self.validationFraction = validationFraction
        self.optimizer = optimizer
        self.schedule = schedule
        self.clipNorm = clipNorm
        self.labelSmoothing = labelSmoothing
        self.dataset = dataset
        self.augmentation = augmentation
    }

    enum CodingKeys: String, CodingKey {
        case architecture, initialization, seed, epochs, optimizer, schedule, dataset, augmentation
        case batchSize = "batch_size"
        case validationFraction = "validation_fraction"
        case clipNorm = "clip_norm"
        case labelSmoothing = "label_smoothing"
    }

    /// - Throws: `NeuralNetError` naming the first invalid value.
    public func validate() throws {
        _ = try ModelSpec.parse(architecture)
        try require(epochs >= 1 && epochs <= 100_000, "epochs", epochs, "must be between 1 and 100000")
        try require(batchSize >= 1 && batchSize <= 1 << 20, "batch size", batchSize, "must be between 1 and 1048576")
        try require(validationFraction >= 0 && validationFraction < 1, "validation fraction", validationFraction, "must be in [0, 1)")
        try require(labelSmoothing >= 0 && labelSmoothing < 1, "label smoothing", labelSmoothing, "must be in [0, 1)")
        if let clipNorm { try require(clipNorm > 0 && clipNorm.isFinite, "clip norm", clipNorm, "must be positive") }
        try schedule.validate()
        _ = try optimizer.makeOptimizer(parameterCount: 0)
    }

    public var spec: ModelSpec {
        get throws { try ModelSpec.parse(architecture) }
    }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    public static func decode(json: String) throws -> TrainingRecipe {
        try JSONDecoder().decode(TrainingRecipe.self, from: Data(json.utf8))
    }

    /// Whether a run with `other` can continue a checkpoint made with `self` and reach exactly the
    /// weights an uninterrupted run would: everything equal, except that the number of epochs may
    /// change when the learning-rate schedule does not depend on it.
    public func resumeConflict(with other: TrainingRecipe) -> String? {
        var a = self, b = other
        let scheduleIndependentOfLength: Bool = switch schedule {
        case .constant, .step, .cyclic: true
        case .cosine, .oneCycle: false
        }
        if scheduleIndependentOfLength { a.epochs = 0; b.epochs = 0 }
        guard a != b else { return nil }
        let mirrorA = Mirror(reflecting: a), mirrorB = Mirror(reflecting: b)
        for (childA, childB) in zip(mirrorA.children, mirrorB.children) where "\(childA.value)" != "\(childB.value)" {
            return "the checkpoint was made with \(childA.label ?? "?") = \(childA.value), this run has \(childB.value)"
        }
        return "the recipes differ"
    }
}

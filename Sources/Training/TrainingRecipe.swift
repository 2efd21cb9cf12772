import Attacks
import Certification
import Foundation
import NeuralNet
import _FileSystem

/// Everything that determines a training run, as a typed value: with the same recipe and data, the
/// same weights come out. Stored in model files and checkpoints (as JSON), written by people in
/// bench configurations (strict: unknown keys are errors), and rendered as the `bulwark train`
/// command that reproduces it (`commandLineArguments`).
///
/// ```json
/// {"architecture": "784-256-256-10", "seed": 0, "epochs": 100, "batch_size": 128, "validation_fraction": 0.1,
///  "optimizer": {"type": "adam", "lr": 0.001}, "schedule": {"type": "cosine"},
///  "objective": {"type": "adversarial", "attack": {"type": "pgd", "steps": 7, "step_size": 0.025}, "epsilon": 0.1, "mix": 0.9}}
/// ```
/// Omitted fields take `bulwark train`'s defaults; `"initial_model": "models/mlp-standard.safetensors"`
/// starts from a model's weights instead of the seeded initialisation.
public struct TrainingRecipe: Equatable, Sendable {
    public var architecture: ModelSpec
    /// nil: the initialisation that suits the architecture's activation.
    public var initialization: InitializationScheme?
    public var seed: UInt64
    public var epochs: Int
    public var batchSize: Int
    public var validationFraction: Double
    public var optimizer: OptimizerConfiguration
    public var schedule: LearningRateSchedule
    public var clipNorm: Float?
    public var objective: ObjectiveSpec
    /// Held-out examples on which robust accuracy is measured after each adversarial epoch.
    public var robustEvaluationExamples: Int
    /// A model file whose weights replace the seeded initialisation (fine-tuning, e.g. adversarial
    /// fine-tuning of a standard model); its architecture must be `architecture`.
    public var initialModel: String?

    public static let defaultOptimizer = OptimizerConfiguration.adam(learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8,
                                                                     weightDecay: 0, decoupled: false)

    public init(architecture: ModelSpec, initialization: InitializationScheme? = nil, seed: UInt64 = 0, epochs: Int = 5,
                batchSize: Int = 128, validationFraction: Double = 0.1, optimizer: OptimizerConfiguration = defaultOptimizer,
                schedule: LearningRateSchedule = .constant, clipNorm: Float? = nil, objective: ObjectiveSpec = .standard,
                robustEvaluationExamples: Int = 1000, initialModel: String? = nil) {
        self.architecture = architecture
        self.initialization = initialization
        self.seed = seed
        self.epochs = epochs
        self.batchSize = batchSize
        self.validationFraction = validationFraction
        self.optimizer = optimizer
        self.schedule = schedule
        self.clipNorm = clipNorm
        self.objective = objective
        self.robustEvaluationExamples = robustEvaluationExamples
        self.initialModel = initialModel
    }

    /// The engine's part.
    public var trainerConfiguration: TrainerConfiguration {
        TrainerConfiguration(architecture: architecture, initialization: initialization, seed: seed, epochs: epochs,
                             batchSize: batchSize, optimizer: optimizer, schedule: schedule, clipNorm: clipNorm)
    }

    /// - Throws: `TrainingError.invalidRecipe` naming the first invalid value.
    public func validate() throws {
        do {
            try trainerConfiguration.validate()
            _ = try objective.makeObjective()
        } catch {
            throw TrainingError.invalidRecipe("\(error)")
        }
        if case .certified(let spec) = objective, spec.crownIBP, let problem = IntervalBoundObjective.crownIBPProblem(architecture) {
            throw TrainingError.invalidRecipe(problem)
        }
        guard validationFraction >= 0 && validationFraction < 1 else {
            throw TrainingError.invalidRecipe("validation fraction \(validationFraction) must be in [0, 1)")
        }
        if let initialModel { try Self.checkInitialModelPath(initialModel) }
        guard robustEvaluationExamples >= 0 else {
            throw TrainingError.invalidRecipe("robust evaluation examples \(robustEvaluationExamples) must be ≥ 0")
        }
    }

    /// - Throws: `TrainingError.invalidRecipe` unless `path` names a `.safetensors` model file.
    static func checkInitialModelPath(_ path: String) throws {
        guard path.hasSuffix(".safetensors") else {
            throw TrainingError.invalidRecipe("the initial model must be a .safetensors model file, got '\(path)'")
        }
    }

    /// The canonical JSON (sorted keys), as stored in model files and checkpoints.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    public static func decode(json: String) throws -> TrainingRecipe {
        try StrictJSON.decode(TrainingRecipe.self, from: Array(json.utf8))
    }

    /// Why a checkpoint made with `self` cannot be continued by a run with `other` (nil if it can):
    /// everything must be equal, except that the number of epochs may change when the schedule does
    /// not depend on it.
    public func resumeConflict(with other: TrainingRecipe) -> String? {
        if let conflict = trainerConfiguration.resumeConflict(with: other.trainerConfiguration) { return conflict }
        if objective != other.objective {
            return "the checkpoint was made with objective \(objective.json), this run has \(other.objective.json)"
        }
        if validationFraction != other.validationFraction {
            return "the checkpoint was made with validation fraction \(validationFraction), this run has \(other.validationFraction)"
        }
        if initialModel != other.initialModel {
            return "the checkpoint was made from initial weights \(initialModel ?? "seeded"), this run has \(other.initialModel ?? "seeded")"
        }
        return nil
    }
}

extension TrainingRecipe: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case architecture, initialization, seed, epochs, optimizer, schedule, objective
        case batchSize = "batch_size", validationFraction = "validation_fraction", clipNorm = "clip_norm"
        case robustEvaluationExamples = "robust_eval_n", initialModel = "initial_model"
    }

    public init(from decoder: any Decoder) throws {
        try StrictDecoding.rejectUnknownKeys(decoder, allowed: Set(CodingKeys.allCases.map(\.rawValue)))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(architecture: try c.decode(ModelSpec.self, forKey: .architecture),
                  initialization: try c.decodeIfPresent(InitializationScheme.self, forKey: .initialization),
                  seed: try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0,
                  epochs: try c.decodeIfPresent(Int.self, forKey: .epochs) ?? 5,
                  batchSize: try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? 128,
                  validationFraction: try c.decodeIfPresent(Double.self, forKey: .validationFraction) ?? 0.1,
                  optimizer: try c.decodeIfPresent(OptimizerConfiguration.self, forKey: .optimizer) ?? Self.defaultOptimizer,
                  schedule: try c.decodeIfPresent(LearningRateSchedule.self, forKey: .schedule) ?? .constant,
                  clipNorm: try c.decodeIfPresent(Float.self, forKey: .clipNorm),
                  objective: try c.decodeIfPresent(ObjectiveSpec.self, forKey: .objective) ?? .standard,
                  robustEvaluationExamples: try c.decodeIfPresent(Int.self, forKey: .robustEvaluationExamples) ?? 1000,
                  initialModel: try c.decodeIfPresent(String.self, forKey: .initialModel))
        do { try validate() } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(architecture, forKey: .architecture)
        try c.encodeIfPresent(initialization, forKey: .initialization)
        try c.encode(seed, forKey: .seed)
        try c.encode(epochs, forKey: .epochs)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(validationFraction, forKey: .validationFraction)
        try c.encode(optimizer, forKey: .optimizer)
        try c.encode(schedule, forKey: .schedule)
        try c.encodeIfPresent(clipNorm, forKey: .clipNorm)
        try c.encode(objective, forKey: .objective)
        try c.encode(robustEvaluationExamples, forKey: .robustEvaluationExamples)
        try c.encodeIfPresent(initialModel, forKey: .initialModel)
    }
}

/// Errors of training jobs, each naming the problem and the fix.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case invalidRecipe(String)
    case dataMismatch(String)
    case incompatibleCheckpoint(path: String, problem: String)

    public var description: String {
        switch self {
        case .invalidRecipe(let problem): return "invalid training recipe: \(problem)"
        case .dataMismatch(let problem): return "the data does not fit the model: \(problem)"
        case .incompatibleCheckpoint(let path, let problem): return "cannot resume from \(path): \(problem)"
        }
    }
}

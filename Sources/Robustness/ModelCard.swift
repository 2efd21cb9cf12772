import Foundation
import _FileSystem
import NeuralNet
import Training

/// A model card (JSON, schema `bulwark-model-card/1`) written next to a model by
/// `bulwark bench --cards`: the file's SHA-256, the command and recipe that made it, its seed, and
/// its clean and robust accuracy from the benchmark, each with n and a 95% Wilson interval.
public struct ModelCard: Codable, Equatable, Sendable {
    public static let schema = "bulwark-model-card/1"

    public var schema: String
    public var name: String
    public var file: String
    public var sha256: String
    public var architecture: String
    public var parameters: Int
    public var seed: UInt64?
    /// The command that reproduces the file (same machine type gives the same SHA-256).
    public var trainCommand: String?
    public var recipe: TrainingRecipe?
    /// Where `recipe` comes from: "model file" (the recipe the file was trained with) or
    /// "configuration" (the file records none this Bulwark reads, e.g. one made by an older version).
    public var recipeSource: String?
    public var data: String
    public var cleanAccuracy: BenchReport.Accuracy
    public var robustAccuracy: [Robust]
    /// Certified accuracy (lower bounds) from the benchmark's certificates, when it computed any.
    public var certifiedAccuracy: [BenchReport.CertifiedResult]?
    /// DP-SGD models: the guarantee recorded in the model file when it was trained.
    public var privacy: Privacy?
    public var bulwarkVersion: String

    /// The DP-SGD guarantee recorded in a model file: ε at δ from the RDP accountant, which assumes
    /// Poisson sampling; Bulwark samples shuffled fixed-size batches, for which this ε is the usual
    /// heuristic, not a proof (Chua et al., 2024, show shuffling can cost more). It covers the
    /// weights, with the noise source stated (`noise`: secure, or seeded and so not private against
    /// whoever knows the seed).
    public struct Privacy: Codable, Equatable, Sendable {
        public var epsilon: Double
        public var delta: Double
        public var noiseMultiplier: Double
        public var clip: Double
        public var samplingRate: Double
        public var steps: Int
        public var sampling: String?
        public var noise: String?
        public var scope: String?

        enum CodingKeys: String, CodingKey {
            case epsilon = "dp_epsilon", delta = "dp_delta", noiseMultiplier = "dp_noise_multiplier", clip = "dp_clip"
            case samplingRate = "dp_sampling_rate", steps = "dp_steps", sampling = "dp_sampling", noise = "dp_noise", scope = "dp_scope"
        }

        /// The guarantee in a model file's metadata, if it records one.
        public init?(metadata: [String: String]) {
            guard let epsilon = metadata["dp_epsilon"].flatMap(Double.init), let delta = metadata["dp_delta"].flatMap(Double.init),
                  let noise = metadata["dp_noise_multiplier"].flatMap(Double.init), let clip = metadata["dp_clip"].flatMap(Double.init),
                  let rate = metadata["dp_sampling_rate"].flatMap(Double.init), let steps = metadata["dp_steps"].flatMap(Int.init),
                  epsilon.isFinite else { return nil }
            self.epsilon = epsilon
            self.delta = delta
            noiseMultiplier = noise
            self.clip = clip
            samplingRate = rate
            self.steps = steps
            sampling = metadata["dp_sampling"]
            self.noise = metadata["dp_noise"]
            scope = metadata["dp_scope"]
        }
    }

    public struct Robust: Codable, Equatable, Sendable {
        public var attack: String
        public var description: String
        public var epsilon: Float
        public var accuracy: BenchReport.Accuracy
    }

    enum CodingKeys: String, CodingKey {
        case schema, name, file, sha256, architecture, parameters, seed, recipe, data
        case trainCommand = "train_command", cleanAccuracy = "clean_accuracy", recipeSource = "recipe_source"
        case robustAccuracy = "robust_accuracy", bulwarkVersion = "bulwark_version", privacy
        case certifiedAccuracy = "certified_accuracy"
    }

    /// The card of one model of a bench report.
    public init(result: BenchReport.ModelResult, entry: BenchConfiguration.ModelEntry, metadata: [String: String], report: BenchReport) {
        schema = Self.schema
        name = result.name
        file = PathText.name(of: entry.path)
        sha256 = result.sha256
        architecture = result.architecture
        parameters = result.parameters
        if let fromFile = metadata["recipe"].flatMap({ try? TrainingRecipe.decode(json: $0) }) {
            recipe = fromFile
            recipeSource = "model file"
        } else {
            recipe = entry.recipe
            recipeSource = entry.recipe == nil ? nil : "configuration"
        }
        seed = recipe?.seed
        trainCommand = recipe.map { (["bulwark", "train"] + $0.commandLineArguments + ["--out", entry.path]).map(shellQuoted).joined(separator: " ") }
        data = "\(report.data), n = \(report.n)"
        cleanAccuracy = result.clean
        robustAccuracy = result.attacks.map { Robust(attack: $0.attack, description: $0.description, epsilon: $0.epsilon, accuracy: $0.accuracy) }
        certifiedAccuracy = result.certified
        privacy = Privacy(metadata: metadata)
        bulwarkVersion = report.bulwarkVersion
    }

    /// Where the card of the model at `path` lives: `model.safetensors` → `model.card.json`.
    public static func path(forModel path: String) -> String {
        (path.hasSuffix(".safetensors") ? String(path.dropLast(".safetensors".count)) : path) + ".card.json"
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// `word` as one shell word (single-quoted when it holds anything but safe characters).
func shellQuoted(_ word: String) -> String {
    let safe = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
    return safe && !word.isEmpty ? word : "'" + word.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
}

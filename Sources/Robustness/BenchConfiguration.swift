import Attacks
import Foundation
import _FileSystem

/// Errors in a benchmark configuration or report, each naming the problem and the fix.
public enum BenchError: Error, CustomStringConvertible, Equatable {
    case invalidConfiguration(String)
    case invalidReport(path: String, problem: String)
    case missingModel(name: String, path: String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let problem):
            return "invalid bench configuration: \(problem)"
        case .invalidReport(let path, let problem):
            return "\(path) is not a usable Bulwark report: \(problem)"
        case .missingModel(let name, let path):
            return "model '\(name)' is missing at \(path) and the configuration has no \"train\" arguments to make it; add them or fix the path"
        }
    }
}

/// What `bulwark bench` measures: models, attacks, the ε grid, the data and the seed. Stored whole
/// in every report, so a report says exactly how it was made.
///
/// ```json
/// {"schema": "bulwark-bench-config/1", "seed": 0, "epsilons": [0, 0.05, 0.1, 0.2],
///  "dataset": {"name": "fashion-mnist", "split": "test", "n": 10000},
///  "models": [{"name": "standard", "path": "models/mlp-standard.safetensors", "train": ["--epochs", "5"]}],
///  "attacks": [{"name": "FGSM", "type": "fgsm", "norm": "linf"},
///              {"name": "PGD-20", "type": "pgd", "norm": "linf", "steps": 20, "relative_step_size": 0.1}]}
/// ```
public struct BenchConfiguration: Codable, Equatable, Sendable {
    public static let schema = "bulwark-bench-config/1"

    public var schema: String
    public var seed: UInt64
    public var epsilons: [Float]
    public var dataset: DatasetSelection
    public var models: [ModelEntry]
    public var attacks: [AttackEntry]
    /// Examples per batch (split into shards across threads).
    public var batchSize: Int?
    /// Examples used by the large-ε and gradient sanity checks.
    public var checkExamples: Int?

    public struct DatasetSelection: Codable, Equatable, Sendable {
        /// Only MNIST-format data is supported; the name is recorded in reports.
        public var name: String
        public var split: String
        /// Test examples to use (the first n); fewer are used if the data has fewer.
        public var n: Int
        /// MNIST-format directory; default: `--data-dir`, `$BULWARK_DATA_DIR`, the Debian package, the sample.
        public var dataDir: String?

        enum CodingKeys: String, CodingKey {
            case name, split, n
            case dataDir = "data_dir"
        }
    }

    public struct ModelEntry: Codable, Equatable, Sendable {
        public var name: String
        /// Relative paths are relative to the configuration file's directory (or the working
        /// directory for the built-in configuration).
        public var path: String
        /// `bulwark train` arguments that make the model when the file is missing (`--out` is added).
        public var train: [String]?

        public init(name: String, path: String, train: [String]? = nil) {
            self.name = name
            self.path = path
            self.train = train
        }
    }

    public struct AttackEntry: Codable, Equatable, Sendable {
        public var name: String
        /// `fgsm` or `pgd`.
        public var type: String
        public var norm: Norm
        public var steps: Int?
        /// Absolute step size α; or `relativeStepSize`·ε; default 2.5·ε/steps.
        public var stepSize: Float?
        public var relativeStepSize: Float?
        public var restarts: Int?
        public var randomStart: Bool?
        public var loss: AttackLoss?

        public init(name: String, type: String, norm: Norm, steps: Int? = nil, stepSize: Float? = nil,
                    relativeStepSize: Float? = nil, restarts: Int? = nil, randomStart: Bool? = nil, loss: AttackLoss? = nil) {
            self.name = name
            self.type = type
            self.norm = norm
            self.steps = steps
            self.stepSize = stepSize
            self.relativeStepSize = relativeStepSize
            self.restarts = restarts
            self.randomStart = randomStart
            self.loss = loss
        }

        enum CodingKeys: String, CodingKey {
            case name, type, norm, steps, restarts, loss
            case stepSize = "step_size", relativeStepSize = "relative_step_size", randomStart = "random_start"
        }

        public var isIterative: Bool { type == "pgd" }

        /// The attack at budget ε.
        public func makeAttack(epsilon: Float) throws -> any Attack {
            switch type {
            case "fgsm":
                return try FGSM(norm: norm, epsilon: epsilon, loss: loss ?? .crossEntropy)
            case "pgd":
                let alpha = stepSize ?? relativeStepSize.map { $0 * epsilon }
                return try PGD(norm: norm, epsilon: epsilon, stepSize: alpha, steps: steps ?? 10, restarts: restarts ?? 1,
                               randomStart: randomStart ?? true, loss: loss ?? .crossEntropy)
            default:
                throw BenchError.invalidConfiguration("attack '\(name)' has unknown type '\(type)' (known: fgsm, pgd)")
            }
        }
    }

    enum CodingKeys: String, CodingKey {
        case schema, seed, epsilons, dataset, models, attacks
        case batchSize = "batch_size", checkExamples = "check_examples"
    }

    /// The main job's configuration: a standard and a PGD-trained 784-256-256-10 MLP on
    /// Fashion-MNIST, FGSM and PGD-20 (α = ε/10, random start) at ε ∈ {0, 0.05, 0.1, 0.2}, all
    /// 10,000 test images, seed 0.
    public static let standard = BenchConfiguration(
        schema: schema, seed: 0, epsilons: [0, 0.05, 0.1, 0.2],
        dataset: DatasetSelection(name: "fashion-mnist", split: "test", n: 10_000, dataDir: nil),
        models: [
            ModelEntry(name: "standard", path: "models/mlp-standard.safetensors",
                       train: ModelEntry.standardRecipe),
            ModelEntry(name: "pgd-trained", path: "models/mlp-pgd.safetensors",
                       train: ModelEntry.pgdRecipe),
        ],
        attacks: [
            AttackEntry(name: "FGSM", type: "fgsm", norm: .linf),
            AttackEntry(name: "PGD-20", type: "pgd", norm: .linf, steps: 20, relativeStepSize: 0.1, restarts: 1,
                        randomStart: true, loss: .crossEntropy),
        ],
        batchSize: 500, checkExamples: 500)

    /// Parses and validates a configuration.
    /// - Throws: `BenchError.invalidConfiguration` naming the problem.
    public static func decode(_ data: Data, source: String) throws -> BenchConfiguration {
        let configuration: BenchConfiguration
        do {
            configuration = try JSONDecoder().decode(BenchConfiguration.self, from: data)
        } catch {
            throw BenchError.invalidConfiguration("\(source) does not parse (\(decodingErrorText(error)))")
        }
        try configuration.validate()
        return configuration
    }

    /// - Throws: `BenchError.invalidConfiguration` for the first problem found.
    public func validate() throws {
        func fail(_ problem: String) -> BenchError { .invalidConfiguration(problem) }
        guard schema == Self.schema else { throw fail("schema is '\(schema)', expected '\(Self.schema)'") }
        guard !epsilons.isEmpty else { throw fail("\"epsilons\" is empty; give at least one ε, e.g. [0, 0.1]") }
        guard epsilons.allSatisfy({ $0 >= 0 && $0.isFinite }) else { throw fail("every ε must be a finite number ≥ 0, got \(epsilons)") }
        guard epsilons == epsilons.sorted(), Set(epsilons).count == epsilons.count else {
            throw fail("\"epsilons\" must be increasing without repeats, got \(epsilons)")
        }
        guard dataset.name == "fashion-mnist" || dataset.name == "mnist-format" else {
            throw fail("dataset name '\(dataset.name)' is not supported (fashion-mnist or mnist-format)")
        }
        guard dataset.split == "test" else { throw fail("dataset split must be \"test\", got '\(dataset.split)'") }
        guard dataset.n >= 1 else { throw fail("dataset n must be at least 1, got \(dataset.n)") }
        guard !models.isEmpty else { throw fail("\"models\" is empty") }
        guard Set(models.map(\.name)).count == models.count else { throw fail("model names must be unique") }
        guard !attacks.isEmpty else { throw fail("\"attacks\" is empty") }
        guard Set(attacks.map(\.name)).count == attacks.count else { throw fail("attack names must be unique") }
        if let batchSize, !(1...100_000).contains(batchSize) { throw fail("batch_size must be between 1 and 100000, got \(batchSize)") }
        if let checkExamples, checkExamples < 0 { throw fail("check_examples must be ≥ 0, got \(checkExamples)") }
        for attack in attacks {
            if attack.stepSize != nil && attack.relativeStepSize != nil {
                throw fail("attack '\(attack.name)' gives both step_size and relative_step_size; keep one")
            }
            for epsilon in epsilons where epsilon > 0 {
                do { _ = try attack.makeAttack(epsilon: epsilon) } catch let error as BenchError { throw error } catch {
                    throw fail("attack '\(attack.name)' at ε = \(epsilon): \(error)")
                }
            }
        }
    }

    /// Canonical JSON (sorted keys), as stored in reports.
    public func encoded(pretty: Bool = true) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

extension BenchConfiguration.ModelEntry {
    /// The default standard model: `bulwark train` with its defaults.
    public static let standardRecipe = ["--model", "784-256-256-10", "--epochs", "5", "--batch", "128",
                                        "--optimizer", "adam", "--lr", "0.001", "--seed", "0"]
    /// The default PGD-trained model (Madry et al.): PGD-7, α = 0.025, ε = 0.1 on 90% of each batch
    /// (10% clean), 100 epochs, cosine schedule.
    public static let pgdRecipe = ["--model", "784-256-256-10", "--epochs", "100", "--batch", "128",
                                   "--optimizer", "adam", "--lr", "0.001", "--schedule", "cosine", "--seed", "0",
                                   "--adversarial", "pgd", "--train-eps", "0.1", "--train-steps", "7",
                                   "--train-step-size", "0.025", "--adversarial-mix", "0.9"]
}

import Attacks
import Certification
import Datasets
import Foundation
import NeuralNet
import Threats
import Training
import _FileSystem

/// Errors in a benchmark configuration or report, each naming the problem and the fix.
public enum BenchError: Error, CustomStringConvertible, Equatable {
    case invalidConfiguration(String)
    case invalidReport(path: String, problem: String)
    case missingModels([String])
    case modelMismatch(String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let problem):
            return "invalid bench configuration: \(problem)"
        case .invalidReport(let path, let problem):
            return "\(path) is not a usable Bulwark report: \(problem)"
        case .missingModels(let lines):
            return "models are missing:\n" + lines.map { "  - \($0)" }.joined(separator: "\n")
        case .modelMismatch(let problem):
            return "a model does not fit the data: \(problem)"
        }
    }
}

/// What `bulwark bench` measures: models, attacks with their ε grids, the data and the seed. Stored
/// whole in every report, so a report says exactly how it was made. Decoding is strict: an unknown
/// or misspelled key is an error that names it (docs/bench-config.md has the schema).
///
/// ```json
/// {"schema": "bulwark-bench-config/2", "seed": 0, "epsilons": [0, 0.05, 0.1, 0.2],
///  "dataset": {"name": "fashion-mnist", "split": "test", "n": 10000},
///  "models": [{"name": "standard", "path": "models/mlp-standard.safetensors", "recipe": {"architecture": "784-256-256-10"}}],
///  "attacks": [{"name": "FGSM", "type": "fgsm", "norm": "linf"},
///              {"name": "PGD-20", "type": "pgd", "norm": "linf", "steps": 20, "relative_step_size": 0.1},
///              {"name": "PGD-L2", "type": "pgd", "norm": "l2", "epsilons": [0.5, 1, 2], "targeted": "random"}]}
/// ```
public struct BenchConfiguration: Equatable, Sendable {
    public static let schema = "bulwark-bench-config/2"
    /// Earlier schemas this Bulwark still reads.
    public static let readableSchemas = ["bulwark-bench-config/1", schema]

    public var schema: String
    public var seed: UInt64
    /// The ε grid of every attack that has no `epsilons` of its own (0 means clean accuracy).
    public var epsilons: [Float]
    public var dataset: DatasetSelection
    public var models: [ModelEntry]
    public var attacks: [AttackEntry]
    /// Examples per batch (split into shards across threads).
    public var batchSize: Int?
    /// Examples used by the large-ε and gradient sanity checks.
    public var checkExamples: Int?
    /// Threat experiments (poisoning, membership inference) run on the same data, beside the attacks.
    public var threats: [ThreatEntry]
    /// Certified accuracy (lower bounds) to report beside the attacks' upper bounds.
    public var certification: [CertificationEntry]

    public init(schema: String = BenchConfiguration.schema, seed: UInt64, epsilons: [Float], dataset: DatasetSelection,
                models: [ModelEntry], attacks: [AttackEntry], batchSize: Int? = nil, checkExamples: Int? = nil, threats: [ThreatEntry] = [],
                certification: [CertificationEntry] = []) {
        self.schema = schema
        self.seed = seed
        self.epsilons = epsilons
        self.dataset = dataset
        self.models = models
        self.attacks = attacks
        self.batchSize = batchSize
        self.checkExamples = checkExamples
        self.threats = threats
        self.certification = certification
    }

    /// A certificate to compute for every model (`"certification"`): a method, a norm and
    /// optionally its own ε grid (default: the configuration's, without 0).
    ///
    /// ```json
    /// {"method": "crown", "norm": "linf", "epsilons": [0.05, 0.1]}
    /// ```
    public struct CertificationEntry: Equatable, Sendable {
        public var method: CertificationMethod
        public var norm: Norm
        public var epsilons: [Float]?

        public init(method: CertificationMethod, norm: Norm = .linf, epsilons: [Float]? = nil) {
            self.method = method
            self.norm = norm
            self.epsilons = epsilons
        }

        /// The ε grid of this certificate in `configuration` (ε > 0 only).
        public func grid(in configuration: BenchConfiguration) -> [Float] { (epsilons ?? configuration.epsilons).filter { $0 > 0 } }
    }

    /// A named threat experiment of the benchmark (`"threats"`): its results appear in the report
    /// under its name, and the gate compares them like the models' metrics.
    public struct ThreatEntry: Equatable, Sendable {
        public var name: String
        public var spec: ThreatExperimentSpec

        public init(name: String, spec: ThreatExperimentSpec) {
            self.name = name
            self.spec = spec
        }
    }

    /// The test data: a name for the report, the split (only `test`), how many examples, and where
    /// they come from (an MNIST-format directory, by default located as for every command, or a CSV
    /// file).
    public struct DatasetSelection: Equatable, Sendable {
        public var name: String
        public var split: String
        /// Test examples to use (the first n); fewer are used if the data has fewer.
        public var n: Int
        public var dataDir: String?
        public var testCSV: String?
        /// Training examples for models that `--train-missing` makes (CSV data only).
        public var trainCSV: String?
        public var labelColumn: Int?
        public var featureScale: Float?

        public init(name: String, split: String = "test", n: Int, dataDir: String? = nil, testCSV: String? = nil,
                    trainCSV: String? = nil, labelColumn: Int? = nil, featureScale: Float? = nil) {
            self.name = name
            self.split = split
            self.n = n
            self.dataDir = dataDir
            self.testCSV = testCSV
            self.trainCSV = trainCSV
            self.labelColumn = labelColumn
            self.featureScale = featureScale
        }

        /// Where the data comes from, with relative paths resolved against `baseDirectory`.
        public func dataSpec(baseDirectory: String) -> DataSpec {
            let resolve = { (path: String) in path.hasPrefix("/") ? path : (baseDirectory as NSString).appendingPathComponent(path) }
            if let testCSV {
                return DataSpec(source: .csv(train: trainCSV.map(resolve), test: resolve(testCSV), labelColumn: labelColumn ?? 0,
                                             featureScale: featureScale ?? 1), limit: n)
            }
            return DataSpec(source: .mnistFormat(directory: dataDir.map(resolve)), limit: n)
        }

        /// Why data described by `self` and `other` is not the same data (nil if it is, as far as
        /// the configuration says: the same name, split, kind of source and CSV reading options).
        public func difference(from other: DatasetSelection) -> String? {
            if name != other.name || split != other.split { return "\(name)/\(split) vs \(other.name)/\(other.split)" }
            if (testCSV == nil) != (other.testCSV == nil) { return "\(testCSV == nil ? "MNIST-format" : "CSV") vs \(other.testCSV == nil ? "MNIST-format" : "CSV") data" }
            if testCSV != nil && (labelColumn ?? 0, featureScale ?? 1) != (other.labelColumn ?? 0, other.featureScale ?? 1) {
                return "CSV label column / feature scale \(labelColumn ?? 0) / \(featureScale ?? 1) vs \(other.labelColumn ?? 0) / \(other.featureScale ?? 1)"
            }
            return nil
        }
    }

    public struct ModelEntry: Equatable, Sendable {
        public var name: String
        /// Relative paths are relative to the configuration file's directory (or the working
        /// directory for the built-in configuration).
        public var path: String
        /// How to make the model when the file is missing (`bench --train-missing`).
        public var recipe: TrainingRecipe?
        /// Hidden activations of a model file written by PyTorch (no Bulwark metadata).
        public var activations: [Activation]?
        /// A version-1 configuration's `train` argument list (kept so old reports still read; it
        /// cannot train: write a `recipe`).
        public var legacyTrainArguments: [String]?

        public init(name: String, path: String, recipe: TrainingRecipe? = nil, activations: [Activation]? = nil) {
            self.name = name
            self.path = path
            self.recipe = recipe
            self.activations = activations
        }
    }

    /// One attack of the benchmark: a name, the attack (`AttackSpec`, flat), what it aims at, and
    /// optionally its own ε grid.
    public struct AttackEntry: Equatable, Sendable {
        public var name: String
        public var spec: AttackSpec
        public var goal: AttackGoal
        public var epsilons: [Float]?

        public init(name: String, spec: AttackSpec, goal: AttackGoal = .untargeted, epsilons: [Float]? = nil) {
            self.name = name
            self.spec = spec
            self.goal = goal
            self.epsilons = epsilons
        }

        public var isIterative: Bool { spec.isIterative }

        /// The ε grid of this attack in `configuration`.
        public func grid(in configuration: BenchConfiguration) -> [Float] { epsilons ?? configuration.epsilons }

        /// The attack at budget ε.
        public func makeAttack(epsilon: Float) throws -> any Attack { try spec.makeAttack(epsilon: epsilon) }
    }

    /// The main job's configuration: the shipped standard, PGD-trained and CROWN-IBP-trained 784-256-256-10 MLPs on
    /// Fashion-MNIST, FGSM, PGD-20 (α = ε/10, random start), APGD-CE (100 steps) and APGD-T (100
    /// steps, the 3 most likely wrong classes as targets; AutoAttack's standard suite tries 9) at
    /// ε ∈ {0, 0.05, 0.1, 0.2}, with IBP and CROWN certified accuracy beside them, all 10,000 test
    /// images, seed 0.
    public static let standard = BenchConfiguration(
        seed: 0, epsilons: [0, 0.05, 0.1, 0.2],
        dataset: DatasetSelection(name: "fashion-mnist", n: 10_000),
        models: [
            ModelEntry(name: "standard", path: "models/mlp-standard.safetensors", recipe: .standardMLP),
            ModelEntry(name: "pgd-trained", path: "models/mlp-pgd.safetensors", recipe: .pgdMLP),
            ModelEntry(name: "crown-ibp-trained", path: "models/mlp-crown-ibp.safetensors", recipe: .crownIBPMLP),
        ],
        attacks: [
            AttackEntry(name: "FGSM", spec: .fgsm(FGSM.Parameters())),
            AttackEntry(name: "PGD-20", spec: .pgd(try! PGD.Parameters(steps: 20, stepSize: .relative(0.1)))),
            AttackEntry(name: "APGD-CE", spec: .apgd(try! APGD.Parameters())),
            AttackEntry(name: "APGD-T", spec: .apgdTargeted(try! APGDT.Parameters(targetClasses: 3))),
        ],
        batchSize: 500, checkExamples: 500,
        certification: [CertificationEntry(method: .ibp), CertificationEntry(method: .crown)])

    /// Parses and validates a configuration.
    /// - Throws: `BenchError.invalidConfiguration` naming the problem (and the key, for unknown keys).
    public static func decode(_ data: Data, source: String) throws -> BenchConfiguration {
        let configuration: BenchConfiguration
        do {
            configuration = try StrictJSON.decode(BenchConfiguration.self, from: data)
        } catch let error as BenchError {
            throw error
        } catch {
            throw BenchError.invalidConfiguration("\(source) does not parse (\(decodingErrorText(error)))")
        }
        try configuration.validate()
        return configuration
    }

    /// - Throws: `BenchError.invalidConfiguration` for the first problem found.
    public func validate() throws {
        func fail(_ problem: String) -> BenchError { .invalidConfiguration(problem) }
        guard Self.readableSchemas.contains(schema) else {
            throw fail("schema is '\(schema)', this Bulwark reads \(Self.readableSchemas.joined(separator: " and "))")
        }
        try Self.validateGrid(epsilons, "\"epsilons\"")
        guard !dataset.name.isEmpty else { throw fail("dataset name is empty") }
        guard dataset.split == "test" else { throw fail("dataset split must be \"test\", got '\(dataset.split)'") }
        guard dataset.n >= 1 else { throw fail("dataset n must be at least 1, got \(dataset.n)") }
        if dataset.testCSV != nil && dataset.dataDir != nil { throw fail("dataset has both data_dir and test_csv; keep one") }
        if dataset.testCSV == nil && (dataset.labelColumn != nil || dataset.featureScale != nil || dataset.trainCSV != nil) {
            throw fail("dataset train_csv, label_column and feature_scale apply to test_csv data only")
        }
        if let scale = dataset.featureScale, !(scale.isFinite && scale > 0) { throw fail("dataset feature_scale must be positive, got \(scale)") }
        guard !models.isEmpty else { throw fail("\"models\" is empty") }
        guard Set(models.map(\.name)).count == models.count else { throw fail("model names must be unique") }
        guard !attacks.isEmpty else { throw fail("\"attacks\" is empty") }
        guard Set(attacks.map(\.name)).count == attacks.count else { throw fail("attack names must be unique") }
        if let reserved = attacks.first(where: { $0.name == "clean" || $0.name.hasPrefix("worst case") || $0.name.hasPrefix("certified") }) {
            throw fail("attack name '\(reserved.name)' is reserved for the report's own metrics (clean, worst case, certified); rename it")
        }
        for entry in certification {
            if let grid = entry.epsilons { try Self.validateGrid(grid, "the \"epsilons\" of the \(entry.method.rawValue) certificate") }
            guard !entry.grid(in: self).isEmpty else {
                throw fail("the \(entry.method.rawValue) certificate has no ε > 0 to certify at; give it \"epsilons\"")
            }
        }
        let certificates = certification.map { "\($0.method.rawValue) \($0.norm.rawValue)" }
        guard Set(certificates).count == certificates.count else {
            throw fail("\"certification\" lists a method and norm twice; give each once, with all its ε in \"epsilons\"")
        }
        if let batchSize, !(1...100_000).contains(batchSize) { throw fail("batch_size must be between 1 and 100000, got \(batchSize)") }
        if let checkExamples, checkExamples < 0 { throw fail("check_examples must be ≥ 0, got \(checkExamples)") }
        guard Set(threats.map(\.name)).count == threats.count else { throw fail("threat names must be unique") }
        for threat in threats {
            guard !threat.name.isEmpty else { throw fail("a threat experiment has an empty name") }
            do { try threat.spec.validate() } catch { throw fail("threat '\(threat.name)': \(error)") }
            if !threats.isEmpty && dataset.testCSV != nil && dataset.trainCSV == nil {
                throw fail("threat '\(threat.name)' trains models: CSV data needs a \"train_csv\" in the dataset")
            }
        }
        for attack in attacks {
            if let grid = attack.epsilons { try Self.validateGrid(grid, "the \"epsilons\" of attack '\(attack.name)'") }
            for epsilon in attack.grid(in: self) where epsilon > 0 {
                do { _ = try attack.makeAttack(epsilon: epsilon) } catch {
                    throw fail("attack '\(attack.name)' at ε = \(epsilon): \(error)")
                }
            }
            if ["apgd-t", "fab-t", "autoattack"].contains(attack.spec.type), attack.goal.isTargeted {
                throw fail("attack '\(attack.name)' is \(attack.spec.type), which picks its own target classes; remove \"targeted\" or use apgd")
            }
            if attack.goal.isTargeted && attack.goal.labels == .predictions {
                throw fail("attack '\(attack.name)' is targeted; \"labels\" applies to untargeted attacks")
            }
        }
    }

    static func validateGrid(_ grid: [Float], _ what: String) throws {
        func fail(_ problem: String) -> BenchError { .invalidConfiguration(problem) }
        guard !grid.isEmpty else { throw fail("\(what) is empty; give at least one ε, e.g. [0, 0.1]") }
        guard grid.allSatisfy({ $0 >= 0 && $0.isFinite }) else { throw fail("every ε must be a finite number ≥ 0, got \(grid) in \(what)") }
        guard grid == grid.sorted(), Set(grid).count == grid.count else {
            throw fail("\(what) must be increasing without repeats, got \(grid)")
        }
    }

    /// Canonical JSON (sorted keys), as stored in reports.
    public func encoded(pretty: Bool = true) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

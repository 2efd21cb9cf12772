import Attacks
import Foundation
import NeuralNet
import Security
import TensorCore

/// Runs a benchmark configuration: for each model, clean accuracy, accuracy under every attack at
/// every ε, the per-example worst case over attacks, timing and the sanity checks.
public final class BenchRunner {
    public let configuration: BenchConfiguration
    /// Directory that relative model paths are resolved against.
    public let baseDirectory: String
    /// Reads (and verifies) model files, and remembers their SHA-256 for the report. The default
    /// accepts files no manifest vouches for, as the library's plain loaders do.
    public var loader = VerifyingFileLoader(allowUnverified: true)
    /// The `__metadata__` of each evaluated model, by model name (for model cards).
    public private(set) var metadata: [String: [String: String]] = [:]
    /// Makes a missing model from its entry's `train` arguments, writing it to the given path.
    public var trainModel: ((BenchConfiguration.ModelEntry, String) throws -> Void)?
    /// Progress messages.
    public var log: (String) -> Void = { _ in }

    public init(configuration: BenchConfiguration, baseDirectory: String = ".") {
        self.configuration = configuration
        self.baseDirectory = baseDirectory
    }

    public func resolvedPath(_ entry: BenchConfiguration.ModelEntry) -> String {
        entry.path.hasPrefix("/") ? entry.path : (baseDirectory as NSString).appendingPathComponent(entry.path)
    }

    /// - Parameters:
    ///   - test: the test examples (already limited to the configured n).
    ///   - dataDescription: where they came from, for the report.
    /// - Throws: `BenchError` for a missing or unusable model, `AttackError` from attacks.
    public func run(test: LabeledData, dataDescription: String, threads: Int) throws -> BenchReport {
        var models: [BenchReport.ModelResult] = []
        for entry in configuration.models {
            let path = resolvedPath(entry)
            if !FileManager.default.fileExists(atPath: path) {
                guard let trainModel, entry.train != nil else {
                    throw BenchError.missingModel(name: entry.name, path: path)
                }
                log("\(entry.name): \(path) is missing; training it with bulwark train \(entry.train!.joined(separator: " "))")
                try trainModel(entry, path)
            }
            models.append(try evaluate(entry, path: path, test: test))
        }
        let formatter = ISO8601DateFormatter()
        return BenchReport(schema: BenchReport.schema, bulwarkVersion: BulwarkVersion.current, created: formatter.string(from: Date()),
                           machine: .current(threads: threads), configuration: configuration, data: dataDescription,
                           n: test.count, models: models)
    }

    func evaluate(_ entry: BenchConfiguration.ModelEntry, path: String, test: LabeledData) throws -> BenchReport.ModelResult {
        let loaded = try ModelFile.load(contentsOf: path, loader: loader)
        metadata[entry.name] = loaded.metadata
        let network = loaded.network
        guard network.inputWidth == test.featureCount else {
            throw BenchError.invalidConfiguration("model '\(entry.name)' expects \(network.inputWidth) features, the data has \(test.featureCount)")
        }
        let runner = AttackRunner(classifier: network, batchSize: configuration.batchSize ?? 500)
        let cleanPredictions = runner.predictions(test.features)
        let cleanCorrect = zip(cleanPredictions, test.labels).map { $0 == $1 }
        let clean = Proportion(successes: cleanCorrect.filter { $0 }.count, trials: test.count)
        log("\(entry.name): clean accuracy \(clean.value) (n = \(test.count))")

        var results: [BenchReport.AttackResult] = []
        var worstCase: [BenchReport.WorstCase] = []
        for epsilon in configuration.epsilons where epsilon > 0 {
            var robust = cleanCorrect
            for attackEntry in configuration.attacks {
                let attack = try attackEntry.makeAttack(epsilon: epsilon)
                let outcome = try runner.run(attack, on: test, seed: configuration.seed, cleanPredictions: cleanPredictions)
                for i in 0..<test.count where outcome.adversarialPredictions[i] != test.labels[i] { robust[i] = false }
                results.append(BenchReport.AttackResult(
                    attack: attackEntry.name, description: attack.description, epsilon: epsilon,
                    accuracy: .init(outcome.adversarialAccuracy), successRate: outcome.successRate.value,
                    meanPerturbation: outcome.meanPerturbation, maxPerturbation: outcome.maxPerturbation,
                    seconds: outcome.seconds, imagesPerSecond: outcome.imagesPerSecond))
                log("\(entry.name): \(attackEntry.name) ε = \(format(epsilon)): accuracy \(outcome.adversarialAccuracy.value) "
                    + "(\(Int(outcome.imagesPerSecond)) images/s)")
            }
            worstCase.append(.init(epsilon: epsilon, accuracy: .init(Proportion(successes: robust.filter { $0 }.count, trials: test.count))))
        }

        let checker = SanityChecker(n: test.count)
        let checkSlice = test.prefix(configuration.checkExamples ?? 500)
        var checks = [
            checker.monotonicity(clean: clean.value, results: results, worstCase: worstCase, attacks: configuration.attacks.map(\.name)),
            checker.iterativeVersusSingleStep(results: results, attacks: configuration.attacks),
        ]
        if checkSlice.count > 0 {
            checks.append(try checker.largeEpsilon(classifier: network, data: checkSlice,
                                                   attack: configuration.attacks.first { $0.isIterative },
                                                   seed: configuration.seed, batchSize: configuration.batchSize ?? 500))
            checks.append(checker.gradients(classifier: network, data: checkSlice))
        }
        return BenchReport.ModelResult(
            name: entry.name, path: entry.path, sha256: try loader.digests[path] ?? FileDigest.sha256(path: path), architecture: network.spec.shorthand,
            parameters: network.parameterCount, clean: .init(clean), attacks: results, worstCase: worstCase, checks: checks)
    }
}

/// The version of Bulwark recorded in reports and model files.
public enum BulwarkVersion {
    public static let current = "0.1.0"
}

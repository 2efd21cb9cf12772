import Attacks
import Datasets
import Foundation
import NeuralNet
import BulwarkSecurity
import TensorCore
import Threats
import Training

/// `bulwark bench` as a library job: locate and load the test data, train the missing models when
/// asked (with their typed recipes), evaluate every model (`BenchRunner`) and assemble the report.
public struct BenchJob {
    public var configuration: BenchConfiguration
    /// Directory that relative model and data paths are resolved against.
    public var baseDirectory: String
    /// Where the test data comes from (by default, the configuration's dataset).
    public var data: DataSpec
    /// Train models whose files are missing (consent: training can take many minutes).
    public var trainMissing = false

    public init(configuration: BenchConfiguration, baseDirectory: String, data: DataSpec? = nil) {
        self.configuration = configuration
        self.baseDirectory = baseDirectory
        self.data = data ?? configuration.dataset.dataSpec(baseDirectory: baseDirectory)
    }

    public func resolvedPath(_ entry: BenchConfiguration.ModelEntry) -> String {
        entry.path.hasPrefix("/") ? entry.path : (baseDirectory as NSString).appendingPathComponent(entry.path)
    }

    /// A model file that does not exist yet.
    public struct MissingModel: Sendable {
        public let entry: BenchConfiguration.ModelEntry
        public let path: String
        /// Rough training time for Fashion-MNIST's 54,000 training images (nil without a recipe).
        public let estimatedSeconds: Double?

        public var summary: String {
            guard let recipe = entry.recipe else {
                return "'\(entry.name)' (\(path)) has no \"recipe\" in the configuration to make it; add one or fix the path"
            }
            let minutes = (estimatedSeconds ?? 0) / 60
            let time = minutes < 1 ? "under a minute" : "about \(Int(minutes.rounded())) min"
            return "'\(entry.name)' (\(path)): \(recipe.epochs) epochs of \(recipe.objective.summary), \(time) on 2 cores"
        }
    }

    public func missingModels() -> [MissingModel] {
        configuration.models.compactMap { entry in
            let path = resolvedPath(entry)
            guard !FileManager.default.fileExists(atPath: path) else { return nil }
            return MissingModel(entry: entry, path: path, estimatedSeconds: entry.recipe?.estimatedSeconds(trainingExamples: 54_000))
        }
    }

    public struct Events {
        public var log: (String) -> Void = { _ in }
        public var warning: (String) -> Void = { _ in }
        /// A cell is starting (for progress displays).
        public var cellStarted: (BenchProgress) -> Void = { _ in }
        /// Events of the training jobs of missing models.
        public var training = TrainingJob.Events()
        public init() {}
    }

    public struct Outcome {
        public let report: BenchReport
        /// The `__metadata__` of each evaluated model, by model name (for model cards).
        public let metadata: [String: [String: String]]
        /// The test examples evaluated.
        public let test: LabeledData
    }

    /// Runs the whole bench.
    /// - Throws: `BenchError.missingModels` when models are missing and `trainMissing` is off (or
    ///   they have no recipe); errors of data, models, training and attacks.
    public func run(loader: VerifyingFileLoader, threads: Int, events: Events = Events()) throws -> Outcome {
        let ran = try runCells(configuration.cells(), loader: loader, threads: threads, events: events)
        let runner = BenchRunner(configuration: configuration)
        let results = ran.models.map { model in runner.assemble(model, cells: ran.cells.filter { $0.cell.model == model.name }, n: ran.n) }
        let threats = ran.cells.compactMap(\.threat)
        var report = BenchReport(created: ISO8601DateFormatter().string(from: Date()), machine: .current(threads: threads),
                                 configuration: configuration, data: ran.data, dataSHA256: ran.dataSHA256,
                                 n: ran.n, models: results, threats: configuration.threats.isEmpty ? nil : threats)
        report.labels = ran.labels
        return Outcome(report: report, metadata: ran.metadata, test: ran.test)
    }

    /// Runs one shard's cells (`BenchShard`); `BenchPartialReport.merge` of all shards' parts gives
    /// the report `run` gives. Missing models are refused (train them before sharding: shards would
    /// race to write them).
    /// - Throws: as `run`.
    public func run(shard: BenchShard, loader: VerifyingFileLoader, threads: Int, events: Events = Events()) throws -> BenchPartialReport {
        if trainMissing {
            throw BenchError.invalidConfiguration("--train-missing does not apply to a shard: train the missing models first "
                                                  + "(bulwark bench --train-missing, or bulwark train), then run the shards")
        }
        let missing = missingModels()
        if !missing.isEmpty {
            throw BenchError.missingModels(missing.map(\.summary)
                + ["train them first, unsharded (bulwark bench --config CONFIG --train-missing, or bulwark train), then run the shards"])
        }
        let cells = shard.cells(of: configuration)
        events.log("shard \(shard): \(cells.count) of \(configuration.cells().count) cells")
        let ran = try runCells(cells, loader: loader, threads: threads, events: events)
        return BenchPartialReport(created: ISO8601DateFormatter().string(from: Date()), machine: .current(threads: threads),
                                  configuration: configuration, data: ran.data, dataSHA256: ran.dataSHA256, n: ran.n, labels: ran.labels, shard: shard,
                                  models: ran.models, cells: ran.cells)
    }

    private struct RanCells {
        var models: [BenchRunner.ModelInfo] = []
        var cells: [BenchCellResult] = []
        var metadata: [String: [String: String]] = [:]
        var data = "", dataSHA256 = "", n = 0
        var labels: [Int] = []
        var test = LabeledData(features: Tensor(zeros: [0, 0]), labels: [], classCount: 1)
    }

    /// Loads the data and every model (each model's identity and clean outcomes go into every
    /// part), then runs `cells` model by model, then the threat experiments among them.
    private func runCells(_ cells: [BenchCell], loader: VerifyingFileLoader, threads: Int, events: Events) throws -> RanCells {
        let missing = missingModels()
        if missing.contains(where: { $0.entry.recipe == nil }) || (!missing.isEmpty && !trainMissing) {
            throw BenchError.missingModels(missing.map(\.summary)
                + (trainMissing ? [] : ["run again with --train-missing to train them with their recipes"]))
        }
        if !missing.isEmpty, case .csv(nil, _, _, _) = data.source {
            throw BenchError.missingModels(missing.map(\.summary)
                + ["the data is CSV without a training file: give \"train_csv\" in the configuration's dataset (or --train-csv)"])
        }
        var testData = data
        testData.limit = configuration.dataset.n
        let (test, description) = try testData.load(.test, loader: loader)
        if test.count < configuration.dataset.n {
            events.warning("the data has \(test.count) test examples, fewer than the \(configuration.dataset.n) configured; using \(test.count)")
        }
        for model in missing {
            events.log("\(model.entry.name): \(model.path) is missing; training it (\(model.summary))")
            var trainingData = data
            trainingData.limit = nil
            var recipe = model.entry.recipe!
            // Like the model paths, an initial model is relative to the configuration's directory.
            if let initial = recipe.initialModel, !initial.hasPrefix("/") {
                recipe.initialModel = (baseDirectory as NSString).appendingPathComponent(initial)
            }
            let job = TrainingJob(recipe: recipe, data: trainingData, output: model.path)
            let result = try job.run(loader: loader, events: events.training)
            events.log("\(model.entry.name): trained, test accuracy \(result.testAccuracy.value), saved \(model.path)")
        }

        let threatCells = Set(cells.compactMap { if case let .threat(name) = $0 { name } else { nil } })
        let threatTraining = threatCells.isEmpty ? nil : try threatTrainingData(test: test, loader: loader, events: events)
        var runner = BenchRunner(configuration: configuration)
        runner.log = events.log
        var ran = RanCells(data: description, dataSHA256: test.contentDigest, n: test.count, labels: test.labels, test: test)
        let costs = cells.map { configuration.cost(of: $0, classes: test.classCount) }
        let totalCost = max(costs.reduce(0, +), 1)
        var doneCost = 0.0
        let started = Date()
        func starting(_ cell: BenchCell) {
            let elapsed = Date().timeIntervalSince(started)
            events.cellStarted(BenchProgress(cell: cell, done: ran.cells.count, total: cells.count, fractionDone: doneCost / totalCost,
                                             secondsElapsed: elapsed,
                                             secondsRemaining: doneCost > 0 ? elapsed * (totalCost - doneCost) / doneCost : nil))
        }
        func finished(_ cell: BenchCell) { doneCost += costs[cells.firstIndex(of: cell)!] }
        for entry in configuration.models {
            let path = resolvedPath(entry)
            let loaded = try ModelFile.load(contentsOf: path, loader: loader, hiddenActivations: entry.activations)
            if loaded.inferredArchitecture {
                events.log("\(entry.name): architecture \(loaded.network.spec.shorthand) inferred from a PyTorch file")
            } else if entry.activations != nil {
                events.warning("\(entry.name): \"activation\" is ignored: \(path) records its architecture")
            }
            ran.metadata[entry.name] = loaded.metadata
            let sha256 = try loader.digests[path] ?? FileDigest.sha256(path: path)
            let model = try runner.prepare(loaded.network, name: entry.name, path: entry.path, sha256: sha256, test: test)
            ran.models.append(model.info)
            for cell in cells where cell.model == entry.name {
                starting(cell)
                ran.cells.append(try runner.run(cell, on: model, test: test))
                finished(cell)
            }
        }
        if let train = threatTraining {
            for threat in configuration.threats where threatCells.contains(threat.name) {
                starting(.threat(name: threat.name))
                ran.cells.append(BenchCellResult(cell: .threat(name: threat.name),
                                                 threat: try runThreat(threat, train: train, test: test, threads: threads, events: events)))
                finished(.threat(name: threat.name))
            }
        }
        return ran
    }

    /// The training split the threat experiments use, checked against every experiment before any
    /// model is attacked (nil when there are none).
    private func threatTrainingData(test: LabeledData, loader: VerifyingFileLoader, events: Events) throws -> LabeledData? {
        guard !configuration.threats.isEmpty else { return nil }
        var trainingData = data
        trainingData.limit = nil
        let (train, description) = try trainingData.load(.train, loader: loader)
        events.log("threat experiments: training data \(description)")
        for threat in configuration.threats {
            do { try threat.spec.check(train: train, test: test) } catch {
                throw BenchError.invalidConfiguration("threat '\(threat.name)' does not fit the data: \(error)")
            }
        }
        return train
    }

    /// One threat experiment on the training split and the bench's test examples, with the bench's seed.
    private func runThreat(_ threat: BenchConfiguration.ThreatEntry, train: LabeledData, test: LabeledData, threads: Int,
                           events: Events) throws -> BenchReport.ThreatResult {
        let log = events.log
        let started = Date()
        events.log("\(threat.name): \(threat.spec.type) experiment")
        let groups = try threat.spec.run(train: train, test: test, seed: configuration.seed, threads: threads,
                                         log: { message in log("\(threat.name): \(message)") })
        return BenchReport.ThreatResult(name: threat.name, type: threat.spec.type,
                                        subjects: groups.map { ThreatReport.Subject(name: $0.name, metrics: $0.metrics) },
                                        seconds: Date().timeIntervalSince(started))
    }
}

import ArgumentParser
import Attacks
import Datasets
import Foundation
import HTMLReport
import NeuralNet
import Robustness
import TensorCore
import Training
import _FileSystem

/// `bulwark bench`: maps its flags onto a `BenchJob`, writes the report and prints it. With no
/// arguments it is the main job: clean vs. adversarial accuracy of the shipped standard and
/// PGD-trained models.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Clean vs. adversarial accuracy of models under attacks across an ε grid, with sanity checks and a JSON report.",
        discussion: """
        Without --config, the built-in configuration (print it with --print-default-config) evaluates \
        models/mlp-standard.safetensors and models/mlp-pgd.safetensors under FGSM and PGD-20 at \
        ε ∈ {0, 0.05, 0.1, 0.2} on the 10,000 Fashion-MNIST test images. A missing model is trained from \
        its recipe only with --train-missing (the message says how long that takes). The configuration \
        schema is in docs/bench-config.md; unknown keys are errors.

        Examples:
          bulwark bench
          bulwark bench --config my-bench.json --report reports/run.json --strict
          bulwark bench --config my-bench.json --validate-config
          bulwark bench --limit 1000 --report - | jq '.models[].metrics'
          bulwark bench --config my-bench.json --shard 0/4 --report part-0.json   (then: bulwark report merge part-*.json --out report.json)

        Sharded runs: --shard I/N (0 ≤ I < N) runs every N-th cell of the bench, a cell being one attack at one ε \
        on one model, one certificate at one ε, one model's sanity checks or one threat experiment, and writes a \
        partial report. `bulwark report merge` checks that the N parts belong together and assembles the report an \
        unsharded run gives, number for number (every random stream is derived from the seed, the attack and ε). \
        All shards must use the same Bulwark version, data and models (any --threads). deploy/slurm and deploy/k8s run \
        the shards as a Slurm job array or a Kubernetes Indexed Job.
        """
    )

    @Option(help: ArgumentHelp("Benchmark configuration (JSON); model and data paths are relative to its directory.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Where to write the JSON report ('-' for stdout, which then carries only the report).", valueName: "path"))
    var report: String?

    @Option(help: ArgumentHelp("Also write the report as one self-contained HTML page (plots, tables, sanity checks).", valueName: "path"))
    var html: String?

    @Option(help: ArgumentHelp("Run only shard I of N (0 ≤ I < N) and write a partial report for `bulwark report merge`.", valueName: "I/N"))
    var shard: String?

    @Flag(help: "Replace an existing output file of another kind (never one of the command's inputs).")
    var force = false

    @Flag(help: "Exit with status 1 when a sanity check fails (they are warnings otherwise).")
    var strict = false

    @Flag(help: "Train the configuration's missing models from their recipes (can take many minutes).")
    var trainMissing = false

    @Flag(help: "Write a model card (JSON: SHA-256, recipe and train command, seed, clean and robust accuracy) next to each model.")
    var cards = false

    @Option(help: "Replace the configuration's attacks by a suite at the same ε grids: autoattack (AutoAttack's standard suite, per norm).")
    var suite: String?

    @Flag(help: "Check the configuration (schema, keys, values) and exit.")
    var validateConfig = false

    @Flag(help: "Print the built-in configuration and exit.")
    var printDefaultConfig = false

    @OptionGroup(title: "Data (replaces the configuration's dataset; --limit replaces its n)") var data: DataOptions
    @OptionGroup(title: "Security") var security: SecurityOptions
    @OptionGroup(title: "Engine") var engine: EngineOptions

    func validate() throws {
        if security.expectSHA256 != nil { throw ValidationError("--expect-sha256 does not apply to bench; model digests come from manifests") }
        if let report, report != "-" && !report.hasSuffix(".json") { throw ValidationError("--report must name a .json file or be '-', got '\(report)'") }
        if let shard {
            do { _ = try BenchShard(parsing: shard) } catch { throw ValidationError("--shard: \(error)") }
            if html != nil { throw ValidationError("--html needs the whole bench: render the merged report with bulwark report MERGED.json --html PATH") }
            if cards { throw ValidationError("--cards needs the whole bench: write cards from the merged report's run, not from a shard") }
            if strict { throw ValidationError("--strict applies to the merged report (the sanity checks need every shard): gate it after bulwark report merge") }
            if trainMissing { throw ValidationError("--train-missing does not apply to a shard: train missing models first, then run the shards") }
        }
        if let html, !(html.hasSuffix(".html") || html.hasSuffix(".htm")) { throw ValidationError("--html must name an .html file, got '\(html)'") }
        if let suite, suite != "autoattack" { throw ValidationError("--suite: unknown suite '\(suite)' (known: autoattack)") }
        if data.trainCSV != nil && !trainMissing {
            throw ValidationError("--train-csv applies to bench only with --train-missing (it trains missing models)")
        }
    }

    /// One AutoAttack entry per norm of the configuration's attacks, at the union of their ε grids.
    static func autoAttackEntries(replacing configuration: BenchConfiguration) throws -> [BenchConfiguration.AttackEntry] {
        let norms = configuration.attacks.map(\.spec.norm).reduce(into: [Norm]()) { if !$0.contains($1) { $0.append($1) } }
        return try norms.map { norm in
            let grid = Set(configuration.attacks.filter { $0.spec.norm == norm }.flatMap { $0.grid(in: configuration) }).sorted()
            return BenchConfiguration.AttackEntry(name: norms.count > 1 ? "AutoAttack-\(norm.rawValue)" : "AutoAttack",
                                                  spec: .autoattack(try AutoAttackSuite.Parameters(norm: norm)),
                                                  epsilons: grid == configuration.epsilons ? nil : grid)
        }
    }

    func loadConfiguration() throws -> (BenchConfiguration, baseDirectory: String) {
        guard let config else { return (.standard, FileManager.default.currentDirectoryPath) }
        let bytes = try FileReader.readAll(config, limit: 16 << 20)
        let configuration = try BenchConfiguration.decode(Data(bytes), source: config)
        return (configuration, PathText.directory(of: config))
    }

    func run() throws {
        if printDefaultConfig {
            print(String(decoding: try BenchConfiguration.standard.encoded(), as: UTF8.self))
            return
        }
        var (configuration, baseDirectory) = try loadConfiguration()
        if validateConfig {
            print("\(config ?? "the built-in configuration"): valid (\(configuration.models.count) models, \(configuration.attacks.count) attacks, schema \(configuration.schema))")
            return
        }
        let report = reportPath
        engine.apply()
        if suite != nil { configuration.attacks = try Self.autoAttackEntries(replacing: configuration) }
        configuration.dataset = try effectiveDataset(configuration.dataset)
        try configuration.validate()
        if report != "-" {
            let models = configuration.models.map { ($0.path as NSString).isAbsolutePath ? $0.path : baseDirectory + "/" + $0.path }
            try OutputPath.prepare(report, for: "--report", replacing: [shard == nil ? .report : .partialReport],
                                   inputs: (config.map { [$0] } ?? []) + models, force: force)
        }
        if let html {
            let models = configuration.models.map { ($0.path as NSString).isAbsolutePath ? $0.path : baseDirectory + "/" + $0.path }
            try OutputPath.prepare(html, for: "--html", replacing: [.htmlReport], inputs: (config.map { [$0] } ?? []) + models + [report], force: force)
        }
        var job = BenchJob(configuration: configuration, baseDirectory: baseDirectory)
        job.trainMissing = trainMissing
        let missing = job.missingModels()
        if !missing.isEmpty && trainMissing {
            log.info("\("bench will first train \(missing.count) missing model(s):\n" + missing.map { "  - \($0.summary)" }.joined(separator: "\n"))")
        }
        log.info("bench: \(configuration.models.count) models × \(configuration.attacks.count) attacks on \(configuration.dataset.n) examples")

        if let shard {
            try runShard(try BenchShard(parsing: shard), job: job, report: report)
            return
        }
        let display = ProgressDisplay()
        defer { display.endStatus() }  // also when the run fails: the error starts a clean line
        let outcome = try job.run(loader: try security.loader(), threads: WorkerPool.shared.threadCount, events: Self.events(display))
        display.endStatus()
        let result = outcome.report
        if report == "-" {
            print(String(decoding: try result.encoded(), as: UTF8.self))
        } else {
            try AtomicFile.write(result.encoded(), to: report)
        }
        if cards { try writeCards(result, job: job, metadata: outcome.metadata) }
        if let html {
            try ReportCommand.Html.write(result, to: html, grids: try exampleGrids(result, job: job, test: outcome.test),
                                         documentation: "", modelDirectory: baseDirectory)
            log.info("wrote \(html)")
        }
        let output: (String) -> Void = report == "-" ? { Console.note($0) } : { print($0) }
        output(MarkdownReport.render(result))
        if report != "-" { output("\nreport: \(report)") }
        for (model, check) in result.failedChecks {
            log.warning("\(check.id) \(model): \(check.message) (\(check.documentation))")
        }
        if strict && !result.failedChecks.isEmpty {
            throw CLIError.checkFailed("\(result.failedChecks.count) sanity check(s) failed and --strict is set")
        }
    }

    /// `--report`, or by default bulwark-report.json (bulwark-part-I-of-N.json for a shard).
    var reportPath: String {
        if let report { return report }
        guard let shard, let parsed = try? BenchShard(parsing: shard) else { return "bulwark-report.json" }
        return "bulwark-part-\(parsed.index)-of-\(parsed.count).json"
    }

    /// Each model's example grid for the HTML page: two test images per class under the attack that
    /// left the lowest accuracy at the middle ε of the grid.
    func exampleGrids(_ report: BenchReport, job: BenchJob, test: LabeledData) throws -> [String: ExampleGrid] {
        var grids: [String: ExampleGrid] = [:]
        let loader = try security.loader()
        for (entry, model) in zip(job.configuration.models, report.models) {
            guard let (attack, epsilon) = ExampleGrid.choice(for: model, in: job.configuration) else { continue }
            let network = try ModelFile.load(contentsOf: job.resolvedPath(entry), loader: loader, hiddenActivations: entry.activations).network
            grids[model.name] = try ExampleGrid.make(model: model.name, network: network, test: test, entry: attack, epsilon: epsilon,
                                                     seed: job.configuration.seed, batchSize: job.configuration.batchSize ?? 500)
        }
        return grids
    }

    /// Log lines, warnings and progress of a bench run (and of training missing models).
    static func events(_ display: ProgressDisplay) -> BenchJob.Events {
        var events = BenchJob.Events()
        events.log = { message in display.aboveStatus { log.info("\(message)") } }
        events.warning = { message in display.aboveStatus { log.warning("\(message)") } }
        events.cellStarted = { display.update($0) }
        events.training.log = { log.info("\($0)") }
        events.training.warning = { log.warning("\($0)") }
        events.training.progress = { display.update($0) }
        events.training.epochFinished = { display.finishLine(); log.info("\(TrainCommand.describe($0, epochs: nil))") }
        return events
    }

    func runShard(_ shard: BenchShard, job: BenchJob, report: String) throws {
        let display = ProgressDisplay()
        defer { display.endStatus() }
        let part = try job.run(shard: shard, loader: try security.loader(), threads: WorkerPool.shared.threadCount, events: Self.events(display))
        display.endStatus()
        if report == "-" {
            print(String(decoding: try part.encoded(), as: UTF8.self))
        } else {
            try AtomicFile.write(part.encoded(), to: report)
            print("shard \(shard): \(part.cells.count) cells; partial report: \(report)\n"
                  + "merge all \(shard.count) parts with: bulwark report merge PART... --out REPORT.json")
        }
    }

    /// The configuration's dataset with the data options applied, so the report records the data
    /// actually used (and the gate can tell different data apart).
    func effectiveDataset(_ configured: BenchConfiguration.DatasetSelection) throws -> BenchConfiguration.DatasetSelection {
        var dataset = configured
        if let limit = data.limit { dataset.n = limit }
        let absolute = { (path: String) in
            path.hasPrefix("/") ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        }
        if data.isSet {
            dataset.dataDir = data.dataDir.map(absolute)
            dataset.testCSV = data.testCSV.map(absolute)
            dataset.trainCSV = data.trainCSV.map(absolute)
            dataset.labelColumn = nil
            dataset.featureScale = nil
            if data.usesCSV && data.testCSV == nil { throw ValidationError("bench evaluates test data: give --test-csv with --train-csv") }
        }
        if data.labelColumn != nil || data.featureScale != nil {
            guard dataset.testCSV != nil else {
                throw ValidationError("--label-column and --feature-scale apply to CSV data (--test-csv, or test_csv in the configuration)")
            }
            dataset.labelColumn = data.labelColumn ?? dataset.labelColumn
            dataset.featureScale = data.featureScale?.value ?? dataset.featureScale
        }
        return dataset
    }

    func writeCards(_ result: BenchReport, job: BenchJob, metadata: [String: [String: String]]) throws {
        for (entry, model) in zip(job.configuration.models, result.models) {
            let path = ModelCard.path(forModel: job.resolvedPath(entry))
            let card = ModelCard(result: model, entry: entry, metadata: metadata[entry.name] ?? [:], report: result)
            try AtomicFile.write(card.encoded(), to: path)
            try ModelLoading.record(path, recipe: "bulwark bench --cards")
            log.info("wrote \(path)")
        }
    }
}

import ArgumentParser
import Datasets
import Foundation
import NeuralNet
import Robustness
import TensorCore
import _FileSystem

/// `bulwark bench`: the benchmark harness. With no arguments it is the main job: clean vs.
/// adversarial accuracy of the default standard and PGD-trained models (trained first if missing).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Clean vs. adversarial accuracy of models under attacks across an ε grid, with sanity checks and a JSON report.",
        discussion: """
        Without --config, the built-in configuration (print it with --print-default-config) evaluates \
        models/mlp-standard.safetensors and models/mlp-pgd.safetensors (training them when missing) \
        under FGSM and PGD-20 at ε ∈ {0, 0.05, 0.1, 0.2} on the 10,000 Fashion-MNIST test images.
        """
    )

    @Option(help: ArgumentHelp("Benchmark configuration (JSON); model paths are relative to its directory.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Where to write the JSON report.", valueName: "path"))
    var report: String = "bulwark-report.json"

    @Flag(help: "Exit with an error when a sanity check fails (they are warnings otherwise).")
    var strict = false

    @Option(help: "Use at most this many test examples (overrides the configuration's n).")
    var n: Int?

    @Option(help: ArgumentHelp("MNIST-format data directory (overrides the configuration).", valueName: "dir"))
    var dataDir: String?

    @Flag(help: "Write a model card (JSON: SHA-256, recipe, seed, clean and robust accuracy) next to each model.")
    var cards = false

    @Flag(help: "Print the built-in configuration and exit.")
    var printDefaultConfig = false

    @OptionGroup var security: SecurityOptions
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        if let n, n < 1 { throw ValidationError("--n must be at least 1, got \(n)") }
        if security.expectSHA256 != nil { throw ValidationError("--expect-sha256 does not apply to bench; model digests come from manifests") }
        if !report.hasSuffix(".json") { throw ValidationError("--report must name a .json file, got '\(report)'") }
    }

    func loadConfiguration() throws -> (BenchConfiguration, baseDirectory: String) {
        guard let config else { return (.standard, FileManager.default.currentDirectoryPath) }
        let data = try FileReader.readAll(config, limit: 16 << 20)
        let configuration = try BenchConfiguration.decode(Data(data), source: config)
        return (configuration, (config as NSString).deletingLastPathComponent.isEmpty ? "." : (config as NSString).deletingLastPathComponent)
    }

    func run() throws {
        if printDefaultConfig {
            print(String(decoding: try BenchConfiguration.standard.encoded(), as: UTF8.self))
            return
        }
        engine.apply()
        var (configuration, baseDirectory) = try loadConfiguration()
        if let n { configuration.dataset.n = n }
        let dataDirectory = dataDir ?? configuration.dataset.dataDir
        let source = try DataSource.locate(dataDirectory: dataDirectory)
        let loader = try security.loader()
        let test = try MNISTFormat.load(directory: source.directory, split: .test, limit: configuration.dataset.n, loader: loader)
        if test.count < configuration.dataset.n {
            log.warning("the data has \(test.count) test examples, fewer than the \(configuration.dataset.n) configured; using \(test.count)")
        }
        log.info("bench: \(configuration.models.count) models × \(configuration.attacks.count) attacks × ε \(configuration.epsilons.map { String(format: "%g", Double($0)) }.joined(separator: ", ")) on \(test.count) examples from \(source.description)")

        let runner = BenchRunner(configuration: configuration, baseDirectory: baseDirectory)
        runner.log = { log.info("\($0)") }
        runner.loader = loader
        runner.trainModel = { entry, path in
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            var arguments = (entry.train ?? []) + ["--out", path, "--results-on-stderr"]
            if let dataDirectory { arguments += ["--data-dir", dataDirectory] }
            if let threads = engine.threads { arguments += ["--threads", String(threads)] }
            if security.allowUnverified { arguments.append("--allow-unverified") }
            if let keyFile = security.keyFile { arguments += ["--key-file", keyFile] }
            if let publicKey = security.publicKey { arguments += ["--public-key", publicKey] }
            let command = try TrainCommand.parse(arguments)
            try command.validate()
            try command.run()
        }
        let result = try runner.run(test: test, dataDescription: source.description, threads: WorkerPool.shared.threadCount)
        try AtomicFile.write(result.encoded(), to: report)
        if cards {
            for (entry, model) in zip(configuration.models, result.models) {
                let path = runner.resolvedPath(entry)
                let card = ModelCard(result: model, entry: entry, metadata: runner.metadata[entry.name] ?? [:], report: result)
                try AtomicFile.write(card.encoded(), to: ModelCard.path(forModel: path))
                try ModelLoading.record(ModelCard.path(forModel: path), recipe: "bulwark bench --cards")
                log.info("wrote \(ModelCard.path(forModel: path))")
            }
        }
        print(result.markdown)
        print("\nreport: \(report)")
        for (model, check) in result.failedChecks {
            log.warning("\(check.id) \(model): \(check.message) (\(check.documentation))")
        }
        if strict && !result.failedChecks.isEmpty {
            throw ValidationError("\(result.failedChecks.count) sanity check(s) failed and --strict is set")
        }
    }
}

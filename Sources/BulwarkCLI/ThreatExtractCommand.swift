import ArgumentParser
import BulwarkSecurity
import Datasets
import Foundation
import NeuralNet
import ServingCore
import TensorCore
import Threats
import Training
import _FileSystem

/// `bulwark threat extract`: model extraction through a prediction API (`ExtractionOracle`),
/// against a local model file queried in-process, or a live `bulwark serve` over HTTPS.
struct ThreatExtractCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Model extraction: steal a surrogate from a victim's answers (knockoff, Jacobian augmentation, equation solving), locally or from a live service, with fidelity, transfer and detection.",
        discussion: """
        The victim (--target) is a model file, queried in-process with its answers shaped by --output (the policies \\
        of bulwark serve's keys), or the predict URL of a live bulwark serve, queried over HTTPS with a predictor key \\
        (--api-key-file; 429 and Retry-After obeyed; the key's own policy applies; --victim names the served model's \\
        file, to measure fidelity). Every input counts against --budget. Strategies:
          knockoff  Knockoff Nets (Orekondy et al. 2019): query inputs from the attacker's pool (--pool train: the \\
                    training split's images, their labels unused; heldout: the test split's first half; noise: \\
                    uniform; csv: --pool-csv), train a surrogate on the labels or, with --soft-labels, the probabilities (--surrogate, \\
                    --epochs), at each --checkpoints budget and at the whole budget.
          jacobian  Jacobian-based dataset augmentation (Papernot et al. 2017): from --seed-size inputs of the pool, \
                    train a substitute, add each point's step x + λ·sign(∇ of the substitute's logit for the victim's \
                    label) (--lambda), label the new points by the victim, repeat until the budget is spent.
          equation  Equation solving (Tramèr et al. 2016) for victims that return every probability: a softmax \\
                    regression (one dense layer) by least squares, d + 1 queries recovering it exactly (up to Float32 \\
                    rounding); a victim with one hidden layer (its architecture known) by minimising the cross-entropy \\
                    to the answers (full-batch Adam, --epochs steps).
        Measured on the test split: fidelity (agreement with the victim), the surrogate's accuracy, and transfer: \\
        the success rate on the victim of PGD examples (L∞, --transfer-eps) crafted on the surrogate.

        Examples:
          bulwark threat extract --target models/mlp-standard.safetensors --strategy knockoff --budget 5000 --output label
          bulwark threat extract --target softmax.safetensors --strategy equation --budget 785 --save-surrogate stolen.safetensors
          bulwark threat extract --target models/mlp-standard.safetensors --strategy jacobian --budget 5000 --detectors std.detectors.json
          bulwark threat extract --target https://localhost:8443/v1/models/std/predict --api-key-file thief.key --ca-cert tls/cert.pem \\
              --victim models/mlp-standard.safetensors --strategy knockoff --pool heldout --budget 5000
        """
    )

    @Option(help: ArgumentHelp("The victim: a model file, or the predict URL of a running bulwark serve (https://HOST:PORT/v1/models/NAME/predict).", valueName: "model-or-url"))
    var target: String

    @Option(help: ArgumentHelp("URL target: a file holding a predictor API key (as bulwark serve keys add printed it).", valueName: "file"))
    var apiKeyFile: String?

    @Option(help: ArgumentHelp("URL target: a PEM certificate to trust besides the system's (the service's dev certificate).", valueName: "file"))
    var caCert: String?

    @Option(help: ArgumentHelp("URL target: the served model's file, to measure fidelity and transfer (its SHA-256 must match the service's).", valueName: "model"))
    var victim: String?

    @Option(help: "URL target: inputs per predict request (default 100).")
    var rowsPerRequest: Int?

    @Option(help: ArgumentHelp("Model-file target: watch the query stream with the PRADA detector of this detectors file (bulwark serve fit-detectors), as the service would; reports when it fires.", valueName: "file"))
    var detectors: String?

    @Option(help: "Queries the thief may send (each input is one).")
    var budget: Int

    @Option(help: "knockoff, jacobian or equation.")
    var strategy: String

    @Option(help: "jacobian: inputs of the first substitute's training set (from the pool; default 150).")
    var seedSize: Int?

    @Option(help: "jacobian: the augmentation step λ (its sign alternates every 3 rounds; default 0.1).")
    var lambda: Float?

    @Option(help: ArgumentHelp("What the victim returns, as bulwark serve's key policies: full (or probabilities), label, top-k:K, rounded:D, reverse-sigmoid:BETA:GAMMA, noise:SIGMA.", valueName: "policy"))
    var output: String = "full"

    @Option(help: "knockoff, jacobian: the surrogate's architecture (default 784-256-256-10).")
    var surrogate: String?

    @Option(help: "Training epochs of each surrogate (default 20); equation solving of a one-hidden-layer victim: full-batch steps of the solver (default 600).")
    var epochs: Int?

    @Flag(help: "knockoff: train on the released probability vectors (soft labels) instead of the labels.")
    var softLabels = false

    @Option(help: "knockoff, jacobian: the attacker's inputs: train (the training split's images, labels unused), heldout (the test split's first half, disjoint from the victim's training data; measured on the second half), noise, or csv (--pool-csv).")
    var pool: String = "train"

    @Option(help: ArgumentHelp("--pool csv: a CSV file of the attacker's own inputs (a label column, unused, then the features; --label-column and --feature-scale apply), e.g. another dataset.", valueName: "file"))
    var poolCsv: String?

    @Option(help: ArgumentHelp("knockoff: also train and measure surrogates at these budgets (comma-separated), for the curve.", valueName: "budgets"))
    var checkpoints: String?

    @Option(help: "L∞ ε of the PGD transfer test.")
    var transferEps: Float = 0.1

    @Option(help: "Seed of the queries and the surrogate's training.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Write the stolen model here (Bulwark safetensors).", valueName: "path"))
    var saveSurrogate: String?

    @Flag(help: "Replace an existing file of another kind at --save-surrogate.")
    var force = false

    @Flag(help: "Print one JSON object per budget point on stdout.")
    var json = false

    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Security") var security: SecurityOptions
    @OptionGroup(title: "Engine") var engine: EngineOptions

    /// Opens a client of a remote predict URL (the ServingClient target; set by the executable when
    /// it is built with the Serve trait): the API and the served model's SHA-256.
    package nonisolated(unsafe) static var remoteAPI: ((_ url: String, _ apiKey: String, _ caCertificatePEM: [UInt8]?, _ rowsPerRequest: Int) throws
        -> (api: any PredictionAPI, modelSHA256: String))?

    var surrogateSpec: String { surrogate ?? "784-256-256-10" }

    var isURL: Bool { target.hasPrefix("https://") || target.hasPrefix("http://") }

    func validate() throws {
        if pool != "csv" { try data.checkCSVOptions() }  // --label-column and --feature-scale also describe --pool-csv
        guard (pool == "csv") == (poolCsv != nil) else { throw ValidationError("--pool csv and --pool-csv FILE go together") }
        if isURL {
            guard apiKeyFile != nil, victim != nil else { throw ValidationError("a URL --target needs --api-key-file and --victim (the served model's file, to measure fidelity)") }
            guard detectors == nil else { throw ValidationError("--detectors applies to a model-file --target (a live service runs its own)") }
            guard output == "full" else { throw ValidationError("--output applies to a model-file --target: a live service applies the key's own policy") }
            guard (1...65536).contains(rowsPerRequest ?? 100) else { throw ValidationError("--rows-per-request must be 1 to 65536") }
        } else if apiKeyFile != nil || caCert != nil || victim != nil || rowsPerRequest != nil {
            throw ValidationError("--api-key-file, --ca-cert, --victim and --rows-per-request apply to a URL --target")
        }
        if strategy == "equation" && surrogate != nil {
            throw ValidationError("--surrogate applies to knockoff and jacobian: equation solving recovers the victim's own architecture")
        }
        guard budget >= 1 else { throw ValidationError("--budget must be at least 1, got \(budget)") }
        guard ["knockoff", "jacobian", "equation"].contains(strategy) else {
            throw ValidationError("--strategy: unknown '\(strategy)' (knockoff, jacobian, equation)")
        }
        if strategy == "jacobian" {
            guard (1...budget).contains(seedSize ?? 150) else { throw ValidationError("--seed-size must be between 1 and --budget, got \(seedSize ?? 150)") }
            let step = lambda ?? 0.1
            guard step > 0, step <= 1 else { throw ValidationError("--lambda must be in (0, 1], got \(step)") }
        } else if seedSize != nil || lambda != nil {
            throw ValidationError("--seed-size and --lambda apply to --strategy jacobian")
        }
        if strategy != "knockoff" && softLabels { throw ValidationError("--soft-labels applies to --strategy knockoff") }
        if strategy != "knockoff" && checkpoints != nil { throw ValidationError("--checkpoints applies to --strategy knockoff (jacobian's curve has a point per round)") }
        _ = try policy()
        guard ["train", "heldout", "noise", "csv"].contains(pool) else { throw ValidationError("--pool: unknown '\(pool)' (train, heldout, noise, csv)") }
        if let epochs, epochs < 1 { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
        guard transferEps > 0, transferEps.isFinite else { throw ValidationError("--transfer-eps must be positive, got \(transferEps)") }
        _ = try checkpointList()
        do { _ = try ModelSpec.parse(surrogateSpec) } catch { throw ValidationError("--surrogate: \(error)") }
        if strategy == "equation" && pool != "train" { throw ValidationError("--pool applies to --strategy knockoff and jacobian") }
        if strategy == "equation" && isURL { throw ValidationError("--strategy equation needs a model-file --target (it checks the victim is a softmax regression)") }
        if let saveSurrogate, !saveSurrogate.hasSuffix(".safetensors") {
            throw ValidationError("--save-surrogate must name a .safetensors file, got '\(saveSurrogate)'")
        }
    }

    func policy() throws -> OutputPolicy {
        do { return try OutputPolicy(parsing: output == "probabilities" ? "full" : output) } catch { throw ValidationError("--output: \(error)") }
    }

    func checkpointList() throws -> [Int] {
        guard let checkpoints else { return [] }
        let values = checkpoints.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0.map { $0 >= 1 && $0 < budget } ?? false }) else {
            throw ValidationError("--checkpoints: give comma-separated budgets between 1 and --budget − 1, got '\(checkpoints)'")
        }
        return values.map { $0! }.sorted()
    }

    func run() throws {
        engine.apply()
        let victimPath = victim ?? target
        if let saveSurrogate {
            try OutputPath.prepare(saveSurrogate, for: "--save-surrogate", replacing: [.model],
                                   inputs: [victimPath] + [detectors, apiKeyFile, poolCsv].compactMap { $0 } + data.spec.namedFiles, force: force)
        }
        let loader = try security.loader(model: victimPath)
        let victimNetwork = try ModelFile.load(contentsOf: victimPath, loader: loader).network
        let (testAll, description) = try data.spec.load(.test, loader: loader)
        guard testAll.featureCount == victimNetwork.inputWidth else {
            throw CLIError.unusableInput("\(victimPath) expects \(victimNetwork.inputWidth) features, the data has \(testAll.featureCount)")
        }
        // heldout: the attacker queries the test split's first half and is measured on the second.
        let half = testAll.count / 2
        let test = pool == "heldout" ? testAll.subset(Array(half..<testAll.count)) : testAll
        let model = victimNetwork.inferenceModel()
        let api = try predictionAPI(victim: model, victimPath: victimPath, loader: loader)
        let oracle = try ExtractionOracle(api, budget: budget)
        let watch = try localDetector(loader: loader, victimPath: victimPath, classes: model.classCount)
        if let watch { oracle.monitor = { inputs, labels in inputs.withReadOnlyMatrix { matrix in watch.withLock { _ = $0.observe(matrix, predicted: labels) } } } }
        let victimPredictions = victimNetwork.predictions(on: test.features)
        log.info("extracting \(target) (\(victimNetwork.spec.shorthand)) by \(strategy) with \(budget) queries, answers: \(oracle.policy); measured on \(description)\(pool == "heldout" ? " (second half)" : "")")
        var points: [KnockoffExtraction.Point] = []
        let stolen: Sequential
        switch strategy {
        case "equation":
            let dense = victimNetwork.spec.layers.filter { if case .dense = $0 { true } else { false } }.count
            switch dense {
            case 1:
                guard epochs == nil else { throw ValidationError("--epochs does not apply: a softmax-regression victim is solved by least squares, without training") }
                stolen = try EquationSolvingExtraction.extract(from: oracle, queries: budget, seed: seed)
            case 2:  // the architecture is known to the thief, as in Tramèr et al.
                // Full-batch Adam with a cosine schedule, to solve the equations rather than sample them.
                var recipe = TrainingRecipe(architecture: victimNetwork.spec, seed: seed, epochs: epochs ?? 600)
                recipe.batchSize = budget
                recipe.schedule = .cosine(minimum: 0)
                recipe.optimizer = .adam(learningRate: 0.01, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false)
                stolen = try EquationSolvingExtraction.extract(from: oracle, architecture: victimNetwork.spec, queries: budget, recipe: recipe, seed: seed)
            default:
                throw CLIError.unusableInput("equation solving steals victims with at most one hidden layer; \(target) is \(victimNetwork.spec.shorthand): use --strategy knockoff")
            }
            points = [.measuring(stolen, queries: oracle.queriesUsed, victimPredictions: victimPredictions, test: test)]
        default:
            let inputs: Tensor
            switch pool {
            case "noise":
                var generator = RandomGenerator(seed: seed, stream: .extractionQueries, index: 1)
                inputs = Tensor.uniform(rows: budget, columns: victimNetwork.inputWidth, using: &generator)
            case "heldout":
                inputs = testAll.subset(Array(0..<half)).features
            case "csv":
                let spec = DataSpec(source: .csv(train: poolCsv, test: nil, labelColumn: data.labelColumn ?? 0, featureScale: data.featureScale?.value ?? 1), limit: nil)
                inputs = try spec.load(.train, loader: loader).0.features
                guard inputs.shape[1] == victimNetwork.inputWidth else {
                    throw CLIError.unusableInput("--pool-csv \(poolCsv ?? ""): its rows have \(inputs.shape[1]) features; the victim takes \(victimNetwork.inputWidth)")
                }
            default:
                inputs = try data.spec.load(.train, loader: loader).0.features
            }
            var recipe = TrainingRecipe(architecture: try ModelSpec.parse(surrogateSpec), seed: seed, epochs: epochs ?? 20)
            recipe.validationFraction = 0
            let result: KnockoffExtraction.Result
            if strategy == "jacobian" {
                var order = Array(0..<inputs.shape[0])
                var generator = RandomGenerator(seed: seed, stream: .extractionQueries)
                generator.shuffle(&order)
                result = try JacobianAugmentation.extract(from: oracle, seed: inputs.gatherRows(Array(order.prefix(seedSize ?? 150))), recipe: recipe,
                                                          lambda: lambda ?? 0.1, victimPredictions: victimPredictions, test: test, seed: seed,
                                                          log: { log.info("\($0)") })
            } else {
                result = try KnockoffExtraction.extract(from: oracle, pool: inputs, recipe: recipe, checkpoints: try checkpointList(), softLabels: softLabels,
                                                        victimPredictions: victimPredictions, test: test, seed: seed, log: { log.info("\($0)") })
            }
            stolen = result.surrogate
            points = result.curve
        }
        let transfer = try KnockoffExtraction.transferSuccess(surrogate: stolen, victim: model, test: test, epsilon: transferEps, seed: seed)
        let cost = try benignCost(of: api, on: test)
        let detectedAfter = api.detectedAfterQueries ?? watch?.withLock { $0.flaggedAfter }
        let watched = isURL || watch != nil
        if let saveSurrogate {
            try ModelFile.save(stolen, metadata: ["extracted_from_sha256": (try? FileDigest.sha256(path: victimPath)) ?? "", "extraction_strategy": strategy,
                                                  "extraction_queries": String(oracle.queriesUsed), "extraction_output": oracle.policy.description],
                               to: saveSurrogate)
            _ = try ModelLoading.record(saveSurrogate, recipe: "bulwark threat extract --target \(target) --strategy \(strategy)")
        }
        if json {
            for (index, point) in points.enumerated() {
                let last = index == points.count - 1
                try JSONOutput.line(JSONLine(strategy: strategy, output: oracle.policy.description, pool: strategy == "equation" ? nil : pool,
                                             queriesUsed: point.queries, fidelity: point.fidelity.value, surrogateAccuracy: point.accuracy.value, n: test.count,
                                             transferSuccessRate: last ? transfer.value : nil, transferN: last ? transfer.trials : nil,
                                             detected: watched && last ? detectedAfter.map { $0 <= point.queries } ?? false : nil,
                                             detectedAfterQueries: last ? detectedAfter : nil,
                                             benignTop1Changed: last ? cost?.top1Changed : nil, benignL1: last ? cost?.l1 : nil))
            }
        } else {
            print("queries   fidelity   surrogate accuracy   (\(strategy), answers: \(oracle.policy))")
            for point in points { print(String(format: "%7d   %8.4f   %18.4f", point.queries, point.fidelity.value, point.accuracy.value)) }
            print(String(format: "transfer: PGD (L∞ ε = %g) examples crafted on the surrogate fool the victim on %.4f of %d inputs it classifies correctly",
                         transferEps, transfer.value, transfer.trials))
            if let cost {
                print(String(format: "what the policy costs benign clients (test set): the released vector's top class differs from the prediction on %.4f of inputs; mean L1 distortion %.4f",
                             cost.top1Changed, cost.l1))
            }
            if watched {
                print(detectedAfter.map { "detected: the \(isURL ? "service" : "PRADA detector") flagged the stream after \($0) queries" }
                      ?? "detected: no\(isURL ? " (as far as the client can see: a service that only logs does not tell)" : "")")
            }
            if let saveSurrogate { print("surrogate written to \(saveSurrogate)") }
        }
    }

    /// The victim's API: the local model behind --output, or the live service's client.
    private func predictionAPI(victim: any InferenceModel, victimPath: String, loader: VerifyingFileLoader) throws -> any PredictionAPI {
        guard isURL, let apiKeyFile else { return try LocalPredictionAPI(victim, policy: try policy(), seed: seed) }
        guard let open = Self.remoteAPI else {
            throw CLIError.unusableInput("this bulwark was built without the Serve trait, so it has no HTTPS client; give a model file as --target")
        }
        let keyText = String(decoding: try FileReader.readAll(apiKeyFile, limit: 4096), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let ca = try caCert.map { try FileReader.readAll($0, limit: 1 << 20) }
        let (api, served) = try open(target, keyText, ca, rowsPerRequest ?? 100)
        let local = try FileDigest.sha256(path: victimPath)
        guard served == local, api.inputWidth == victim.inputWidth, api.classCount == victim.classCount else {
            throw CLIError.unusableInput("--victim \(victimPath) (SHA-256 \(local)) is not the model the service serves (\(served)): fidelity would be measured against another model")
        }
        return api
    }

    /// What a local policy costs a benign client on the test set (not counted as queries): how
    /// often the released vector's top class differs from the model's prediction, and the mean
    /// L1 distance between the released vector and the model's probabilities. Nil for label-only
    /// answers and for a remote API.
    private func benignCost(of api: any PredictionAPI, on test: LabeledData) throws -> (top1Changed: Double, l1: Double)? {
        guard let local = api as? LocalPredictionAPI, local.policy.releasesProbabilities else { return nil }
        let released = try LocalPredictionAPI(local.model, policy: local.policy, seed: seed &+ 1).answers(test.features)
        let exact = try LocalPredictionAPI(local.model, policy: .full).answers(test.features)
        var changed = 0, l1 = 0.0
        for (answer, truth) in zip(released, exact) {
            let q = answer.probabilities!, p = truth.probabilities!
            if q.indices.max(by: { q[$0] < q[$1] }) != answer.predicted { changed += 1 }
            l1 += zip(q, p).reduce(0) { $0 + abs($1.0 - $1.1) }
        }
        return (Double(changed) / Double(test.count), l1 / Double(test.count))
    }

    /// PRADA from --detectors, watching the oracle's stream as the service would.
    private func localDetector(loader: VerifyingFileLoader, victimPath: String, classes: Int) throws -> Locked<PRADAStream>? {
        guard let detectors else { return nil }
        let victimModel = try ModelFile.load(contentsOf: victimPath, loader: loader).network.inferenceModel()
        let file: AnomalyDetectors
        do {
            file = try AnomalyDetectors.decode(try loader.load(detectors, limit: 64 << 20), source: detectors, model: victimModel,
                                               modelSHA256: try FileDigest.sha256(path: victimPath))
        } catch let error as AnomalyDetectors.Invalid {
            throw CLIError.unusableInput(error.description)
        }
        guard let settings = file.extraction else {
            throw CLIError.unusableInput("\(detectors) has no extraction (PRADA) detector; fit one with bulwark serve fit-detectors --extraction-streams N")
        }
        return Locked(PRADAStream(settings: settings, width: victimModel.inputWidth, classes: classes))
    }

    /// One `--json` line per budget point; the last carries the transfer measurement.
    struct JSONLine: Encodable {
        let strategy: String
        let output: String
        let pool: String?
        let queriesUsed: Int
        let fidelity: Double
        let surrogateAccuracy: Double
        let n: Int
        let transferSuccessRate: Double?
        let transferN: Int?
        /// With a live service or --detectors: whether the stream was flagged by this point.
        let detected: Bool?
        let detectedAfterQueries: Int?
        /// Local policies: what they cost benign clients on the test set.
        let benignTop1Changed: Double?
        let benignL1: Double?

        enum CodingKeys: String, CodingKey {
            case strategy, output, pool, fidelity, n, detected
            case detectedAfterQueries = "detected_after_queries", benignTop1Changed = "benign_top1_changed", benignL1 = "benign_l1"
            case queriesUsed = "queries_used", surrogateAccuracy = "surrogate_accuracy"
            case transferSuccessRate = "transfer_success_rate", transferN = "transfer_n"
        }
    }
}

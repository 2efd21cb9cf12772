import ArgumentParser
import BulwarkSecurity
import Foundation
import NeuralNet
import TensorCore
import Threats
import Training
import _FileSystem

/// `bulwark threat extract`: model extraction through a prediction API (`ExtractionOracle`),
/// against a local model file queried in-process with a query counter.
struct ThreatExtractCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "extract",
        abstract: "Model extraction: steal a surrogate from a victim's answers (knockoff, equation solving), with fidelity and transfer.",
        discussion: """
        The victim (--target, a model file) is queried in-process through its inference interface, every input \\
        counted against --budget, its answers shaped by --output (what a deployed API would return). Strategies:
          knockoff  Knockoff Nets (Orekondy et al. 2019): query inputs from the attacker's pool (--pool train: the \\
                    training split's images, their labels unused; noise: uniform), train a surrogate (--surrogate, \\
                    --epochs) on the answers' labels, at each --checkpoints budget and at the whole budget.
          jacobian  Jacobian-based dataset augmentation (Papernot et al. 2017): from --seed-size inputs of the pool, \
                    train a substitute, add each point's step x + λ·sign(∇ of the substitute's logit for the victim's \
                    label) (--lambda), label the new points by the victim, repeat until the budget is spent.
          equation  Equation solving (Tramèr et al. 2016) for softmax-regression victims (one dense layer) that \\
                    return probabilities: d + 1 queries recover the victim exactly (up to Float32 rounding).
        Measured on the test split: fidelity (agreement with the victim), the surrogate's accuracy, and transfer: \\
        the success rate on the victim of PGD examples (L∞, --transfer-eps) crafted on the surrogate.

        Examples:
          bulwark threat extract --target models/mlp-standard.safetensors --strategy knockoff --budget 5000 --output label
          bulwark threat extract --target softmax.safetensors --strategy equation --budget 785 --save-surrogate stolen.safetensors
        """
    )

    @Option(help: ArgumentHelp("The victim: a model file.", valueName: "model"))
    var target: String

    @Option(help: "Queries the thief may send (each input is one).")
    var budget: Int

    @Option(help: "knockoff, jacobian or equation.")
    var strategy: String

    @Option(help: "jacobian: inputs of the first substitute's training set (from the pool; default 150).")
    var seedSize: Int?

    @Option(help: "jacobian: the augmentation step λ (its sign alternates every 3 rounds; default 0.1).")
    var lambda: Float?

    @Option(help: ArgumentHelp("What the victim returns: probabilities, label, top-K (e.g. top-3), round-D (D decimals, e.g. round-2).", valueName: "policy"))
    var output: String = "probabilities"

    @Option(help: "knockoff: the surrogate's architecture.")
    var surrogate: String = "784-256-256-10"

    @Option(help: "knockoff: training epochs of each surrogate.")
    var epochs: Int = 20

    @Option(help: "knockoff: the attacker's inputs: train (the training split's images, labels unused) or noise.")
    var pool: String = "train"

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

    func validate() throws {
        try data.checkCSVOptions()
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
        if strategy != "knockoff" && checkpoints != nil { throw ValidationError("--checkpoints applies to --strategy knockoff (jacobian's curve has a point per round)") }
        _ = try policy()
        guard ["train", "noise"].contains(pool) else { throw ValidationError("--pool: unknown '\(pool)' (train, noise)") }
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
        guard transferEps > 0, transferEps.isFinite else { throw ValidationError("--transfer-eps must be positive, got \(transferEps)") }
        _ = try checkpointList()
        do { _ = try ModelSpec.parse(surrogate) } catch { throw ValidationError("--surrogate: \(error)") }
        if strategy == "equation" && pool != "train" { throw ValidationError("--pool applies to --strategy knockoff and jacobian") }
        if let saveSurrogate, !saveSurrogate.hasSuffix(".safetensors") {
            throw ValidationError("--save-surrogate must name a .safetensors file, got '\(saveSurrogate)'")
        }
    }

    func policy() throws -> ExtractionOracle.OutputPolicy {
        switch output {
        case "probabilities": return .probabilities
        case "label": return .label
        default:
            if output.hasPrefix("top-"), let k = Int(output.dropFirst(4)), k >= 1 { return .topK(k) }
            if output.hasPrefix("round-"), let d = Int(output.dropFirst(6)), (0...8).contains(d) { return .rounded(decimals: d) }
            throw ValidationError("--output: unknown policy '\(output)' (probabilities, label, top-K, round-D with D in 0…8)")
        }
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
        if let saveSurrogate {
            try OutputPath.prepare(saveSurrogate, for: "--save-surrogate", replacing: [.model], inputs: [target] + data.spec.namedFiles, force: force)
        }
        let loader = try security.loader(model: target)
        let victim = try ModelFile.load(contentsOf: target, loader: loader).network
        let (test, description) = try data.spec.load(.test, loader: loader)
        guard test.featureCount == victim.inputWidth else {
            throw CLIError.unusableInput("\(target) expects \(victim.inputWidth) features, the data has \(test.featureCount)")
        }
        let model = victim.inferenceModel()
        let oracle = try ExtractionOracle(model, policy: try policy(), budget: budget)
        let victimPredictions = victim.predictions(on: test.features)
        log.info("extracting \(target) (\(victim.spec.shorthand)) by \(strategy) with \(budget) queries, answers: \(oracle.policy); measured on \(description)")
        var points: [KnockoffExtraction.Point] = []
        let stolen: Sequential
        switch strategy {
        case "equation":
            guard victim.layers.count == 1 else {
                throw CLIError.unusableInput("equation solving steals softmax regressions (one dense layer); \(target) is \(victim.spec.shorthand): use --strategy knockoff")
            }
            stolen = try EquationSolvingExtraction.extract(from: oracle, queries: budget, seed: seed)
            points = [.measuring(stolen, queries: oracle.queriesUsed, victimPredictions: victimPredictions, test: test)]
        default:
            let inputs: Tensor
            if pool == "noise" {
                var generator = RandomGenerator(seed: seed, stream: .extractionQueries, index: 1)
                inputs = Tensor(shape: [budget, victim.inputWidth], scalars: (0..<(budget * victim.inputWidth)).map { _ in generator.nextUnitFloat() })
            } else {
                inputs = try data.spec.load(.train, loader: loader).0.features
            }
            var recipe = TrainingRecipe(architecture: try ModelSpec.parse(surrogate), seed: seed, epochs: epochs)
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
                result = try KnockoffExtraction.extract(from: oracle, pool: inputs, recipe: recipe, checkpoints: try checkpointList(),
                                                        victimPredictions: victimPredictions, test: test, seed: seed, log: { log.info("\($0)") })
            }
            stolen = result.surrogate
            points = result.curve
        }
        let transfer = try KnockoffExtraction.transferSuccess(surrogate: stolen, victim: model, test: test, epsilon: transferEps, seed: seed)
        if let saveSurrogate {
            try ModelFile.save(stolen, metadata: ["extracted_from_sha256": (try? FileDigest.sha256(path: target)) ?? "", "extraction_strategy": strategy,
                                                  "extraction_queries": String(oracle.queriesUsed), "extraction_output": oracle.policy.description],
                               to: saveSurrogate)
            _ = try ModelLoading.record(saveSurrogate, recipe: "bulwark threat extract --target \(target) --strategy \(strategy)")
        }
        if json {
            for (index, point) in points.enumerated() {
                let last = index == points.count - 1
                try JSONOutput.line(JSONLine(strategy: strategy, output: oracle.policy.description, queriesUsed: point.queries,
                                             fidelity: point.fidelity.value, surrogateAccuracy: point.accuracy.value, n: test.count,
                                             transferSuccessRate: last ? transfer.value : nil, transferN: last ? transfer.trials : nil))
            }
        } else {
            print("queries   fidelity   surrogate accuracy   (\(strategy), answers: \(oracle.policy))")
            for point in points { print(String(format: "%7d   %8.4f   %18.4f", point.queries, point.fidelity.value, point.accuracy.value)) }
            print(String(format: "transfer: PGD (L∞ ε = %g) examples crafted on the surrogate fool the victim on %.4f of %d inputs it classifies correctly",
                         transferEps, transfer.value, transfer.trials))
            if let saveSurrogate { print("surrogate written to \(saveSurrogate)") }
        }
    }

    /// One `--json` line per budget point; the last carries the transfer measurement.
    struct JSONLine: Encodable {
        let strategy: String
        let output: String
        let queriesUsed: Int
        let fidelity: Double
        let surrogateAccuracy: Double
        let n: Int
        let transferSuccessRate: Double?
        let transferN: Int?

        enum CodingKeys: String, CodingKey {
            case strategy, output, fidelity, n
            case queriesUsed = "queries_used", surrogateAccuracy = "surrogate_accuracy"
            case transferSuccessRate = "transfer_success_rate", transferN = "transfer_n"
        }
    }
}

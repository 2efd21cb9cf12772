import ArgumentParser
import Attacks
import Datasets
import Foundation
import NeuralNet
import Security
import _FileSystem
import TensorCore

extension Norm: ExpressibleByArgument {}
extension AttackLoss: ExpressibleByArgument {}

enum AttackName: String, ExpressibleByArgument, CaseIterable {
    case fgsm, pgd
}

extension TargetSelection: ExpressibleByArgument {
    public init?(argument: String) {
        if argument == "random" {
            self = .random
        } else if let target = Int(argument), target >= 0 {
            self = .fixed(target)
        } else {
            return nil
        }
    }
}

/// Options that describe one attack, shared by `attack` and adversarial training.
struct AttackOptions: ParsableArguments {
    @Option(help: "Attack: fgsm or pgd.")
    var attack: AttackName = .pgd

    @Option(help: "Norm of the perturbation budget: linf or l2.")
    var norm: Norm = .linf

    @Option(help: "Perturbation budget ε.")
    var eps: Float = 0.1

    @Option(help: "PGD iterations per restart.")
    var steps: Int = 10

    @Option(help: "PGD step size α (default 2.5·ε/steps).")
    var stepSize: Float?

    @Option(help: "PGD restarts (later restarts attack only inputs not yet fooled).")
    var restarts: Int = 1

    @Flag(help: "Start PGD at the clean input instead of a random point of the ε-ball.")
    var noRandomStart = false

    @Option(help: "Attack loss: ce (cross-entropy), margin (C&W) or dlr.")
    var loss: AttackLoss = .crossEntropy

    func makeAttack() throws -> any Attack {
        do {
            switch attack {
            case .fgsm:
                return try FGSM(norm: norm, epsilon: eps, loss: loss)
            case .pgd:
                return try PGD(norm: norm, epsilon: eps, stepSize: stepSize, steps: steps, restarts: restarts,
                               randomStart: !noRandomStart, loss: loss)
            }
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func validate() throws { _ = try makeAttack() }
}

/// `bulwark attack MODEL`: clean vs. adversarial accuracy under one attack.
struct AttackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attack",
        abstract: "Attack a model on the test set: clean and adversarial accuracy, success rate, perturbation sizes, speed."
    )

    @Argument(help: "Model file (.safetensors).")
    var model: String

    @OptionGroup var attackOptions: AttackOptions

    @Option(help: ArgumentHelp("Targeted attack: a class index, or 'random' (a random class other than the true one).", valueName: "class|random"))
    var targeted: TargetSelection?

    @Flag(help: "Attack the model's clean predictions instead of the true labels (avoids label leaking).")
    var usePredictions = false

    @Option(help: "Seed of random starts and random targets.")
    var seed: UInt64 = 0

    @Option(help: "Attack only the first N test examples.")
    var n: Int?

    @Option(help: "Examples per batch (each batch is split into shards across threads).")
    var batch: Int = 500

    @Flag(help: "Print one JSON object on stdout.")
    var json = false

    @Option(help: ArgumentHelp("Write the adversarial inputs, true labels and predictions as safetensors.", valueName: "path"))
    var saveAdv: String?

    @Option(help: ArgumentHelp("Also measure how the adversarial inputs transfer to this model.", valueName: "model"))
    var evalOn: String?

    @Option(help: ArgumentHelp("MNIST-format data directory (default: $BULWARK_DATA_DIR, the Debian package, then the sample).", valueName: "dir"))
    var dataDir: String?

    @OptionGroup var security: SecurityOptions
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        if let n, n < 1 { throw ValidationError("--n must be at least 1, got \(n)") }
        if !(1...100_000).contains(batch) { throw ValidationError("--batch must be between 1 and 100000, got \(batch)") }
        if attackOptions.attack == .fgsm && (attackOptions.restarts != 1 || attackOptions.stepSize != nil) {
            throw ValidationError("--restarts and --step-size apply to pgd only")
        }
        if targeted != nil && usePredictions {
            throw ValidationError("--use-predictions applies to untargeted attacks; a targeted attack pushes toward --targeted")
        }
        if let saveAdv, !saveAdv.hasSuffix(".safetensors") {
            throw ValidationError("--save-adv must name a .safetensors file, got '\(saveAdv)'")
        }
    }

    struct Report: Encodable {
        let model: String
        let attack: String
        let norm: String
        let epsilon: Float
        let n: Int
        let cleanAccuracy: Double
        let adversarialAccuracy: Double
        let adversarialCI95: [Double]
        let successRate: Double
        let meanPerturbation: Double
        let maxPerturbation: Float
        let seconds: Double
        let imagesPerSecond: Double
        let transfer: Transfer?
        let data: String

        struct Transfer: Encodable {
            let model: String
            let cleanAccuracy: Double
            let adversarialAccuracy: Double
            enum CodingKeys: String, CodingKey {
                case model
                case cleanAccuracy = "clean_accuracy", adversarialAccuracy = "adversarial_accuracy"
            }
        }

        enum CodingKeys: String, CodingKey {
            case model, attack, norm, epsilon, n, seconds, transfer, data
            case cleanAccuracy = "clean_accuracy", adversarialAccuracy = "adversarial_accuracy"
            case adversarialCI95 = "adversarial_accuracy_ci95", successRate = "success_rate"
            case meanPerturbation = "mean_perturbation", maxPerturbation = "max_perturbation"
            case imagesPerSecond = "images_per_second"
        }
    }

    func run() throws {
        engine.apply()
        let attack = try attackOptions.makeAttack()
        let loader = try security.loader(model: model)
        let loaded = try ModelLoading.load(model, loader: loader)
        let network = loaded.network
        let source = try DataSource.locate(dataDirectory: dataDir)
        let test = try MNISTFormat.load(directory: source.directory, split: .test, limit: n, loader: loader)
        guard test.featureCount == network.inputWidth else {
            throw ValidationError("\(model) expects \(network.inputWidth) features, the data has \(test.featureCount)")
        }
        if case .fixed(let target)? = targeted, target >= network.classCount {
            throw ValidationError("--targeted \(target) is not a class of this model (0…\(network.classCount - 1))")
        }
        log.info("attacking \(model) with \(attack) on \(test.count) test examples from \(source.description)")
        let outcome = try AttackRunner(classifier: network, batchSize: batch)
            .run(attack, on: test, labelSource: usePredictions ? .predictions : .trueLabels, targets: targeted, seed: seed)

        var transfer: Report.Transfer?
        if let evalOn {
            let other = try ModelLoading.load(evalOn, loader: loader).network
            guard other.inputWidth == test.featureCount else {
                throw ValidationError("--eval-on \(evalOn) expects \(other.inputWidth) features, the data has \(test.featureCount)")
            }
            let runner = AttackRunner(classifier: other, batchSize: batch)
            let clean = zip(runner.predictions(test.features), test.labels).filter { $0 == $1 }.count
            let adversarial = zip(runner.predictions(outcome.adversarial), test.labels).filter { $0 == $1 }.count
            transfer = .init(model: evalOn, cleanAccuracy: Double(clean) / Double(test.count),
                             adversarialAccuracy: Double(adversarial) / Double(test.count))
        }
        if let saveAdv { try save(outcome, to: saveAdv) }

        let (lower, upper) = outcome.adversarialAccuracy.wilsonInterval()
        let report = Report(
            model: model, attack: attack.description, norm: attack.norm.rawValue, epsilon: attack.epsilon, n: outcome.n,
            cleanAccuracy: outcome.cleanAccuracy.value, adversarialAccuracy: outcome.adversarialAccuracy.value,
            adversarialCI95: [lower, upper], successRate: outcome.successRate.value,
            meanPerturbation: outcome.meanPerturbation, maxPerturbation: outcome.maxPerturbation,
            seconds: outcome.seconds, imagesPerSecond: outcome.imagesPerSecond, transfer: transfer, data: source.description)
        if json {
            try JSONOutput.line(report)
            return
        }
        let normSymbol = attack.norm == .linf ? "‖δ‖∞" : "‖δ‖₂"
        let (cleanLower, cleanUpper) = outcome.cleanAccuracy.wilsonInterval()
        print("""
        attack                 \(attack.description)\(targeted.map { " targeted \($0)" } ?? "")
        n                      \(outcome.n)
        clean accuracy         \(outcome.cleanAccuracy.value.formatted(4))  (95% CI \(cleanLower.formatted(4))–\(cleanUpper.formatted(4)))
        adversarial accuracy   \(outcome.adversarialAccuracy.value.formatted(4))  (95% CI \(lower.formatted(4))–\(upper.formatted(4)))
        attack success rate    \(outcome.successRate.value.formatted(4))  (of \(outcome.successRate.trials) \(targeted == nil ? "correctly classified" : "attacked") inputs)
        \(normSymbol) mean / max        \(outcome.meanPerturbation.formatted(4)) / \(Double(outcome.maxPerturbation).formatted(4))
        time                   \(outcome.seconds.formatted(2)) s (\(Int(outcome.imagesPerSecond)) images/s)
        """)
        if let transfer {
            print("transfer to \(transfer.model): clean \(transfer.cleanAccuracy.formatted(4)), adversarial \(transfer.adversarialAccuracy.formatted(4))")
        }
        if let saveAdv { print("saved adversarial inputs to \(saveAdv)") }
    }

    /// Adversarial inputs (F32, n × d), true labels, clean and adversarial predictions (I64) and
    /// targets if any, with the attack and the model's SHA-256 in the metadata.
    func save(_ outcome: AttackOutcome, to path: String) throws {
        var tensors: [(name: String, value: SafeTensors.Value)] = [
            ("adversarial", .float32(shape: outcome.adversarial.shape, values: outcome.adversarial.scalars)),
            ("labels", .int64(shape: [outcome.n], values: outcome.labels.map(Int64.init))),
            ("clean_predictions", .int64(shape: [outcome.n], values: outcome.cleanPredictions.map(Int64.init))),
            ("predictions", .int64(shape: [outcome.n], values: outcome.adversarialPredictions.map(Int64.init))),
        ]
        if let targets = outcome.targets { tensors.append(("targets", .int64(shape: [outcome.n], values: targets.map(Int64.init)))) }
        let metadata = [
            "format": "bulwark-adversarial/1", "attack": outcome.attack, "norm": outcome.norm.rawValue,
            "epsilon": String(outcome.epsilon), "seed": String(seed), "model": model,
            "model_sha256": try FileDigest.sha256(path: model),
        ]
        try AtomicFile.write(SafeTensors.serialize(tensors, metadata: metadata), to: path)
        try ModelLoading.record(path, recipe: "bulwark attack \(model) (\(outcome.attack))")
    }
}

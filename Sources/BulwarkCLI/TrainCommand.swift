import ArgumentParser
import Attacks
import Datasets
import Foundation
import NeuralNet
import Robustness
import Security
import TensorCore

extension Activation: ExpressibleByArgument {}
extension InitializationScheme: ExpressibleByArgument {}

enum OptimizerName: String, ExpressibleByArgument, CaseIterable {
    case sgd, adam, adamw
}

enum ScheduleName: String, ExpressibleByArgument, CaseIterable {
    case constant, step, cosine, onecycle, cyclic
}

/// Adversarial training options of `bulwark train`.
struct AdversarialTrainingOptions: ParsableArguments {
    @Option(help: "Adversarial training: fgsm (Goodfellow et al., mixed with clean examples) or pgd (Madry et al.).")
    var adversarial: AttackName?

    @Option(help: "ε of the training attack.")
    var trainEps: Float = 0.1

    @Option(help: "Norm of the training attack: linf or l2.")
    var trainNorm: Norm = .linf

    @Option(help: "PGD steps of the training attack.")
    var trainSteps: Int = 7

    @Option(help: "PGD step size of the training attack (default 2.5·ε/steps).")
    var trainStepSize: Float?

    @Option(help: "Fraction of each batch replaced by adversarial examples (default: 0.5 for fgsm, 1 for pgd).")
    var adversarialMix: Float?

    @Option(help: "Held-out validation examples on which robust accuracy (PGD-10 at the training ε) is measured each epoch.")
    var robustEvalN: Int = 1000

    func validate() throws {
        guard adversarial != nil else { return }
        _ = try makeAugmentation()
        if robustEvalN < 0 { throw ValidationError("--robust-eval-n must be ≥ 0, got \(robustEvalN)") }
    }

    func makeAugmentation() throws -> AdversarialTraining? {
        guard let adversarial else { return nil }
        do {
            switch adversarial {
            case .fgsm:
                return try AdversarialTraining(attack: FGSM(norm: trainNorm, epsilon: trainEps), mix: adversarialMix ?? 0.5)
            case .pgd:
                let attack = try PGD(norm: trainNorm, epsilon: trainEps, stepSize: trainStepSize, steps: trainSteps,
                                     randomStart: true, stopAtFirstSuccess: false)
                return try AdversarialTraining(attack: attack, mix: adversarialMix ?? 1)
            }
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// PGD-10 at the training ε on a held-out slice, after every epoch.
    func makeMonitor(validation: LabeledData, seed: UInt64) throws -> RobustnessMonitor? {
        guard adversarial != nil, robustEvalN > 0, validation.count > 0 else { return nil }
        let attack = try PGD(norm: trainNorm, epsilon: trainEps, steps: 10)
        return RobustnessMonitor(attack: attack, slice: validation.prefix(robustEvalN), seed: seed)
    }
}

/// `bulwark train`: trains a network and saves it as a PyTorch-compatible safetensors file.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a dense network and save it as safetensors (loads into torch.nn.Sequential).",
        discussion: """
        A checkpoint is written atomically after every epoch (default: OUT with .checkpoint.safetensors); \
        --resume CHECKPOINT continues to exactly the weights an uninterrupted run reaches.
        """
    )

    @Option(help: "Architecture: widths such as 784-256-256-10, or a JSON layer list (inline or a .json file).")
    var model: String = "784-256-256-10"

    @Option(help: "Hidden activation for the width shorthand: \(Activation.allCases.map(\.rawValue).joined(separator: ", ")).")
    var activation: Activation = .relu

    @Option(help: ArgumentHelp("Dropout probability after each hidden activation (shorthand only).", valueName: "p"))
    var dropout: Float?

    @Option(name: .customLong("init"), help: "Weight initialisation: he or xavier (default: suits the activation).")
    var initialization: InitializationScheme?

    @Option(help: "Number of epochs.")
    var epochs: Int = 5

    @Option(help: "Mini-batch size.")
    var batch: Int = 128

    @Option(help: "Optimizer: sgd, adam or adamw.")
    var optimizer: OptimizerName = .adam

    @Option(help: "Learning rate.")
    var lr: Float = 1e-3

    @Option(help: "SGD momentum.")
    var momentum: Float = 0

    @Flag(help: "Use Nesterov momentum with SGD.")
    var nesterov = false

    @Option(help: "Weight decay (L2 for sgd/adam, decoupled for adamw; adamw default 0.01).")
    var weightDecay: Float?

    @Option(help: "Adam β₁.")
    var beta1: Float = 0.9

    @Option(help: "Adam β₂.")
    var beta2: Float = 0.999

    @Option(help: "Learning-rate schedule: constant, step, cosine, onecycle or cyclic.")
    var schedule: ScheduleName = .constant

    @Option(help: "Epochs between decays (step) or per cycle (cyclic).")
    var scheduleEvery: Int = 1

    @Option(help: "Decay factor of the step schedule.")
    var gamma: Float = 0.5

    @Option(help: "Clip the global gradient norm to this value.")
    var clipNorm: Float?

    @Option(help: "Label smoothing ε for the cross-entropy loss.")
    var labelSmoothing: Float = 0

    @Option(help: "Fraction of the training set held out for validation.")
    var valSplit: Double = 0.1

    @Option(help: "Seed for initialisation, shuffling, the validation split and dropout.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Where to write the trained model (.safetensors).", valueName: "path"))
    var out: String

    @Option(help: ArgumentHelp("Checkpoint path (default: OUT with .checkpoint.safetensors).", valueName: "path"))
    var checkpoint: String?

    @Option(help: ArgumentHelp("Continue from this checkpoint (same options as the original run).", valueName: "checkpoint"))
    var resume: String?

    @Flag(help: "JSON Lines on stdout: one object per epoch, then a summary.")
    var json = false

    /// Set when another command (bench) trains a missing model: results go to stderr so its own
    /// stdout stays clean.
    @Flag(help: .hidden)
    var resultsOnStderr = false

    @OptionGroup var adversarialTraining: AdversarialTrainingOptions
    @OptionGroup var data: DataOptions
    @OptionGroup var security: SecurityOptions
    @OptionGroup var engine: EngineOptions

    func validate() throws {
        _ = try makeRecipe(dataset: "")
        if !out.hasSuffix(".safetensors") {
            throw ValidationError("--out must name a .safetensors file, got '\(out)'")
        }
    }

    /// The model spec from --model (inline shorthand, inline JSON, or a JSON file).
    func modelSpec() throws -> ModelSpec {
        var text = model
        if model.hasSuffix(".json") {
            guard let contents = try? String(contentsOfFile: model, encoding: .utf8) else {
                throw ValidationError("cannot read the model file '\(model)'")
            }
            text = contents
        }
        if let dropout, !(dropout >= 0 && dropout < 1) {
            throw ValidationError("--dropout must be in [0, 1), got \(dropout)")
        }
        do {
            return try ModelSpec.parse(text, activation: activation, dropout: dropout)
        } catch {
            throw ValidationError("--model: \(error)")
        }
    }

    func makeRecipe(dataset: String) throws -> TrainingRecipe {
        let optimizerConfiguration: OptimizerConfiguration = switch optimizer {
        case .sgd: .sgd(learningRate: lr, momentum: momentum, nesterov: nesterov, weightDecay: weightDecay ?? 0)
        case .adam: .adam(learningRate: lr, beta1: beta1, beta2: beta2, epsilon: 1e-8, weightDecay: weightDecay ?? 0, decoupled: false)
        case .adamw: .adam(learningRate: lr, beta1: beta1, beta2: beta2, epsilon: 1e-8, weightDecay: weightDecay ?? 0.01, decoupled: true)
        }
        let scheduleConfiguration: LearningRateSchedule = switch schedule {
        case .constant: .constant
        case .step: .step(every: scheduleEvery, gamma: gamma)
        case .cosine: .cosine(minimum: 0)
        case .onecycle: .oneCycle
        case .cyclic: .cyclic(epochsPerCycle: scheduleEvery)
        }
        let recipe = TrainingRecipe(
            architecture: try modelSpec(), initialization: initialization, seed: seed, epochs: epochs, batchSize: batch,
            validationFraction: valSplit, optimizer: optimizerConfiguration, schedule: scheduleConfiguration,
            clipNorm: clipNorm, labelSmoothing: labelSmoothing, dataset: dataset,
            augmentation: try adversarialTraining.makeAugmentation()?.description)
        do {
            try recipe.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        return recipe
    }

    func run() throws {
        engine.apply()
        let loader = try security.loader(model: resume)
        let (trainSet, trainDescription) = try data.load(.train, loader: loader)
        let (testSet, testDescription) = try data.load(.test, loader: loader)
        log.info("training data: \(trainDescription)")
        let recipe = try makeRecipe(dataset: trainDescription)
        let spec = try recipe.spec
        guard trainSet.featureCount == spec.inputWidth else {
            throw ValidationError("the model expects \(spec.inputWidth) input features but the data has \(trainSet.featureCount); change --model")
        }
        guard testSet.featureCount == spec.inputWidth else {
            throw ValidationError("the test data has \(testSet.featureCount) features but the model expects \(spec.inputWidth)")
        }
        guard trainSet.classCount <= spec.classCount else {
            throw ValidationError("the data has \(trainSet.classCount) classes but the model outputs \(spec.classCount); change --model")
        }
        let (train, validation) = trainSet.split(validationFraction: valSplit, seed: seed)

        let trainer = try Trainer(recipe: recipe)
        trainer.augmentation = try adversarialTraining.makeAugmentation()
        let monitor = try adversarialTraining.makeMonitor(validation: validation, seed: seed)
        if adversarialTraining.adversarial != nil && monitor == nil {
            log.warning("robust accuracy is not monitored: it needs held-out examples (--val-split > 0, --robust-eval-n > 0)")
        }
        trainer.checkpointPath = checkpoint ?? Self.defaultCheckpointPath(for: out)
        trainer.checkpointWritten = { try ModelLoading.record($0, recipe: recipe.json) }
        if let resume {
            try trainer.resume(from: resume, loader: loader)
            log.info("resumed from \(resume) after epoch \(trainer.completedEpochs)")
        }
        let display = ProgressDisplay()
        trainer.progress = { display.update($0) }
        let output: (String) -> Void = resultsOnStderr ? { Console.note($0) } : { print($0); Console.flushStandardOutput() }
        trainer.epochObserver = { metrics, network in
            display.finishLine()
            monitor?.observe(&metrics, network: network)
            output(json ? JSONOutput.text(EpochLine(metrics)) : Self.describe(metrics, epochs: recipe.epochs))
        }
        log.info("model \(spec.shorthand) (\(trainer.network.parameterCount) parameters), \(train.count) training / \(validation.count) validation examples, \(trainer.network.pool.threadCount) threads")

        let started = Date()
        try trainer.train(on: train, validation: validation)
        let testCorrect = trainer.network.correctPredictions(on: testSet)
        let testAccuracy = Proportion(successes: testCorrect, trials: testSet.count)
        var metadata: [String: String] = [
            "seed": String(seed),
            "recipe": recipe.json,
            "test_accuracy": String(testAccuracy.value),
            "test_n": String(testSet.count),
            "test_data": testDescription,
            "history": Self.deterministicHistory(trainer.history),
            "bulwark_version": Bulwark.version,
        ]
        if let last = trainer.history.last { metadata["epochs_trained"] = String(last.epoch) }
        try ModelFile.save(trainer.network, metadata: metadata, to: out)
        let digest = try ModelLoading.record(out, recipe: recipe.json)
        let seconds = Date().timeIntervalSince(started)

        if json {
            output(JSONOutput.text(TrainSummary(
                testAccuracy: testAccuracy.value, n: testSet.count, model: out, sha256: digest, seconds: seconds,
                epochs: trainer.completedEpochs, checkpoint: trainer.checkpointPath)))
        } else {
            let (lower, upper) = testAccuracy.wilsonInterval()
            output("test accuracy \(testAccuracy.value.formatted(4)) (n = \(testSet.count), 95% CI \(lower.formatted(4))–\(upper.formatted(4)))")
            output("saved \(out) (SHA-256 \(digest))")
        }
    }

    /// Per-epoch metrics without wall-clock figures, so the same command writes the same file.
    static func deterministicHistory(_ history: [EpochMetrics]) -> String {
        let entries = history.map { m -> [String: Double] in
            var entry = m.extra
            entry["epoch"] = Double(m.epoch)
            entry["loss"] = m.loss
            entry["train_accuracy"] = m.trainAccuracy
            if let v = m.validationAccuracy { entry["val_accuracy"] = v }
            return entry
        }
        return JSONOutput.text(entries)
    }

    static func defaultCheckpointPath(for out: String) -> String {
        (out.hasSuffix(".safetensors") ? String(out.dropLast(".safetensors".count)) : out) + ".checkpoint.safetensors"
    }

    static func describe(_ m: EpochMetrics, epochs: Int) -> String {
        var text = "epoch \(m.epoch)/\(epochs)  loss \(m.loss.formatted(4))  train \(m.trainAccuracy.formatted(4))"
        if let v = m.validationAccuracy { text += "  val \(v.formatted(4))" }
        text += "  \(m.seconds.formatted(2)) s  \(Int(m.samplesPerSecond)) samples/s"
        for (key, value) in m.extra.sorted(by: { $0.key < $1.key }) { text += "  \(key) \(value.formatted(4))" }
        for warning in m.warnings { text += "\n  warning: \(warning)" }
        return text
    }
}

/// One `--json` line per epoch.
struct EpochLine: Encodable {
    let metrics: EpochMetrics
    init(_ metrics: EpochMetrics) { self.metrics = metrics }

    enum CodingKeys: String, CodingKey {
        case type, epoch, loss, seconds, extra, warnings
        case trainAccuracy = "train_accuracy", validationAccuracy = "val_accuracy"
        case samplesPerSecond = "samples_per_second", learningRate = "learning_rate"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("epoch", forKey: .type)
        try c.encode(metrics.epoch, forKey: .epoch)
        try c.encode(metrics.loss, forKey: .loss)
        try c.encode(metrics.trainAccuracy, forKey: .trainAccuracy)
        try c.encode(metrics.validationAccuracy, forKey: .validationAccuracy)  // null without validation
        try c.encode(metrics.seconds, forKey: .seconds)
        try c.encode(metrics.samplesPerSecond, forKey: .samplesPerSecond)
        try c.encode(metrics.learningRate, forKey: .learningRate)
        if !metrics.extra.isEmpty { try c.encode(metrics.extra, forKey: .extra) }
        if !metrics.warnings.isEmpty { try c.encode(metrics.warnings, forKey: .warnings) }
    }
}

/// The final `--json` line of `bulwark train`.
struct TrainSummary: Encodable {
    let type = "summary"
    let testAccuracy: Double
    let n: Int
    let model: String
    let sha256: String
    let seconds: Double
    let epochs: Int
    let checkpoint: String?

    enum CodingKeys: String, CodingKey {
        case type, n, model, sha256, seconds, epochs, checkpoint
        case testAccuracy = "test_accuracy"
    }
}

import ArgumentParser
import Attacks
import Datasets
import Foundation
import HTMLReport
import NeuralNet
import BulwarkSecurity
import TensorCore
import _FileSystem

/// `bulwark attack MODEL`: clean vs. adversarial accuracy under one attack, described by flags that
/// map onto an `AttackSpec` and an `AttackGoal`.
struct AttackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attack",
        abstract: "Attack a model on the test set: clean and adversarial accuracy, success rate, perturbation sizes, speed.",
        discussion: """
        The bench's PGD-20 at ε = 0.1 is --attack pgd --steps 20 --relative-step-size 0.1 --eps 0.1.
        Robust accuracy counts inputs classified correctly both clean and attacked (as RobustBench
        and AutoAttack do). The reported accuracy is that of the returned examples: an input's first
        fooling iterate, or with --save-adv or --eval-on its highest-loss iterate (what transfers).

        Examples:
          bulwark attack models/mlp-standard.safetensors --attack fgsm --eps 8/255
          bulwark attack models/mlp-pgd.safetensors --attack pgd --eps 0.1 --steps 50 --restarts 5 --loss dlr --json
          bulwark attack models/mlp-pgd.safetensors --attack apgd-t --eps 0.1 --limit 1000
          bulwark attack models/mlp-pgd.safetensors --targeted random --save-adv adv/pgd.safetensors --eval-on models/mlp-standard.safetensors
        """
    )

    @Argument(help: "Model file (.safetensors).")
    var model: String

    @OptionGroup(title: "Attack") var attackOptions: AttackOptions

    @Option(help: "Seed of random starts and random targets.")
    var seed: UInt64 = 0

    @Option(help: "Examples per batch (each batch is split into shards across threads).")
    var batch: Int = 500

    @Flag(help: "Print one JSON object on stdout.")
    var json = false

    @Flag(help: "Replace an existing output file of another kind (never one of the command's inputs).")
    var force = false

    @Option(help: ArgumentHelp("pgd, mi-fgsm with --save-adv or --eval-on: return each input's first iterate whose margin past its goal is at least κ (else its highest-loss one).", valueName: "κ"))
    var returnMargin: Real?

    @Flag(help: "square: query the model as a black box, through its inference interface alone (logits of whole batches, each row counted as a query), as a deployed or remote model would answer.")
    var blackBox = false

    @Option(help: ArgumentHelp("Write the adversarial inputs, true labels and predictions as safetensors (directory created if needed).", valueName: "path"))
    var saveAdv: String?

    @Option(help: ArgumentHelp("With --save-adv: also write DIR/examples.png (the first 16 examples: clean, adversarial, amplified perturbation per row) and DIR/examples.csv (their labels and predictions).", valueName: "dir"))
    var png: String?

    @Option(help: ArgumentHelp("Also measure how the adversarial inputs transfer to this model.", valueName: "model"))
    var evalOn: String?

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Security") var security: SecurityOptions
    @OptionGroup(title: "Engine") var engine: EngineOptions

    func validate() throws {
        try data.checkCSVOptions()
        if !(1...100_000).contains(batch) { throw ValidationError("--batch must be between 1 and 100000, got \(batch)") }
        if returnMargin != nil && saveAdv == nil && evalOn == nil {
            throw ValidationError("--return-margin chooses the examples saved (--save-adv) or transferred (--eval-on); give one of them")
        }
        if let returnMargin {
            do { _ = try attackOptions.spec().makeAttack(epsilon: attackOptions.eps.value, purpose: .examples, returnMargin: returnMargin.value) } catch {
                throw ValidationError("--return-margin: \(error)")
            }
        }
        if blackBox && attackOptions.attack != "square" {
            throw ValidationError("--black-box applies to square (a score-based attack); gradient attacks need the model's weights")
        }
        if let saveAdv, !saveAdv.hasSuffix(".safetensors") {
            throw ValidationError("--save-adv must name a .safetensors file, got '\(saveAdv)'")
        }
        if png != nil && saveAdv == nil {
            throw ValidationError("--png draws the saved adversarial examples: give --save-adv FILE.safetensors too")
        }
    }

    func run() throws {
        engine.apply()
        let spec = try attackOptions.spec()
        let purpose: AttackSpec.Purpose = saveAdv != nil || evalOn != nil ? .examples : .evaluation
        let attack = try spec.makeAttack(epsilon: attackOptions.eps.value, purpose: purpose, returnMargin: returnMargin?.value)
        let goal = attackOptions.goal
        if let saveAdv {
            try OutputPath.prepare(saveAdv, for: "--save-adv", replacing: [.adversarialExamples],
                                   inputs: [model] + (evalOn.map { [$0] } ?? []) + data.spec.namedFiles, force: force)
        }
        if let png {
            for (name, kind) in [("examples.png", FileKind.image), ("examples.csv", .exampleLabels)] {
                try OutputPath.prepare(png + "/" + name, for: "--png", replacing: [kind], inputs: [model] + data.spec.namedFiles, force: force)
            }
        }
        let loader = try security.loader(model: model)
        let network = try modelOptions.load(model, loader: loader).network
        let (test, description) = try data.spec.load(.test, loader: loader)
        guard test.featureCount == network.inputWidth else {
            throw CLIError.unusableInput("\(model) expects \(network.inputWidth) features, the data has \(test.featureCount)")
        }
        if png != nil, Square.ImageShape.inferred(features: test.featureCount) == nil {
            throw CLIError.unusableInput("--png draws square grey images; these \(test.featureCount)-feature inputs are not; leave out --png")
        }
        log.info("attacking \(model) with \(attack)\(goal.targets.map { ", targeted (\($0))" } ?? "") on \(test.count) test examples from \(description)")
        let queryOnly = blackBox ? QueryOnlyClassifier(network.inferenceModel()) : nil
        let outcome = try AttackRunner(classifier: queryOnly ?? network, batchSize: batch).run(attack, on: test, goal: goal, seed: seed)
        let transfer = try evalOn.map { try measureTransfer(of: outcome, to: $0, test: test, loader: loader) }
        if let saveAdv { try save(outcome, spec: spec, to: saveAdv) }
        if let png { try drawExamples(outcome, clean: test.features, into: png) }

        let report = AttackReport(model: model, spec: spec, attack: attack, goal: goal, seed: seed, outcome: outcome,
                                  examples: returnMargin.map { "first iterate with margin ≥ \($0.value), else highest-loss" } ?? spec.returnedExamples(purpose: purpose),
                                  transfer: transfer, data: description,
                                  modelQueries: queryOnly?.queries)
        if json {
            try JSONOutput.line(report)
        } else {
            print(report.text)
            if let saveAdv { print("saved adversarial inputs to \(saveAdv)") }
        }
    }

    func measureTransfer(of outcome: AttackOutcome, to other: String, test: LabeledData, loader: any FileLoading) throws -> AttackReport.Transfer {
        let network = try modelOptions.load(other, loader: loader).network
        guard network.inputWidth == test.featureCount else {
            throw CLIError.unusableInput("--eval-on \(other) expects \(network.inputWidth) features, the data has \(test.featureCount)")
        }
        let runner = AttackRunner(classifier: network, batchSize: batch)
        let clean = zip(runner.predictions(test.features), test.labels).map { $0 == $1 }
        let adversarial = zip(runner.predictions(outcome.adversarial), test.labels).map { $0 == $1 }
        let robust = zip(clean, adversarial).filter { $0 && $1 }.count
        return .init(model: other, cleanAccuracy: Double(clean.filter { $0 }.count) / Double(test.count),
                     adversarialAccuracy: Double(adversarial.filter { $0 }.count) / Double(test.count),
                     robustAccuracy: Double(robust) / Double(test.count))
    }

    /// DIR/examples.png and DIR/examples.csv for `--png`.
    func drawExamples(_ outcome: AttackOutcome, clean: Tensor, into directory: String) throws {
        guard let image = ExampleGrid.composite(clean: clean, adversarial: outcome.adversarial, epsilon: outcome.epsilon) else {
            throw CLIError.unusableInput("--png draws square grey images; these \(clean.shape.last ?? 0)-feature inputs are not")
        }
        let rows = min(16, outcome.n)
        var csv = "row,label,clean_prediction,adversarial_prediction,fooled\n"
        for i in 0..<rows {
            let fooled = outcome.cleanPredictions[i] == outcome.labels[i] && outcome.adversarialPredictions[i] != outcome.labels[i]
            csv += "\(i),\(outcome.labels[i]),\(outcome.cleanPredictions[i]),\(outcome.adversarialPredictions[i]),\(fooled)\n"
        }
        try AtomicFile.write(image.encoded(), to: directory + "/examples.png")
        try AtomicFile.write(Data(csv.utf8), to: directory + "/examples.csv")
        if !json { print("drew the first \(rows) examples in \(directory)/examples.png (labels in examples.csv)") }
    }

    /// Adversarial inputs (F32, n × d), true labels, clean and adversarial predictions (I64) and
    /// targets if any, with the attack, its goal, the seed and the model's SHA-256 in the metadata.

    func save(_ outcome: AttackOutcome, spec: AttackSpec, to path: String) throws {
        var tensors: [(name: String, value: SafeTensors.Value)] = [
            ("adversarial", .float32(shape: outcome.adversarial.shape, values: outcome.adversarial.scalars)),
            ("labels", .int64(shape: [outcome.n], values: outcome.labels.map(Int64.init))),
            ("clean_predictions", .int64(shape: [outcome.n], values: outcome.cleanPredictions.map(Int64.init))),
            ("predictions", .int64(shape: [outcome.n], values: outcome.adversarialPredictions.map(Int64.init))),
        ]
        if let targets = outcome.targets { tensors.append(("targets", .int64(shape: [outcome.n], values: targets.map(Int64.init)))) }
        let metadata = [
            "format": "bulwark-adversarial/1", "attack": outcome.attack, "attack_spec": JSONOutput.text(spec),
            "norm": outcome.norm.rawValue, "epsilon": String(outcome.epsilon), "seed": String(seed), "model": model,
            "model_sha256": try FileDigest.sha256(path: model),
            "targeted": outcome.goal.targets.map { JSONOutput.text($0) } ?? "false", "labels": outcome.goal.labels.rawValue,
        ]
        try AtomicFile.write(SafeTensors.serialize(tensors, metadata: metadata), to: path)
        try ModelLoading.record(path, recipe: "bulwark attack \(model) (\(outcome.attack))")
    }
}

/// What `bulwark attack` prints: with `--json`, one object with every attack parameter as a field
/// (`spec` holds the whole `AttackSpec`; `steps`, `step_size`, `restarts`, `random_start` are
/// null where the attack has no such parameter).
struct AttackReport: Encodable {
    let model: String
    let attack: String
    let type: String
    let spec: AttackSpec
    let norm: String
    let epsilon: Float
    let loss: String
    let steps: Int?
    let stepSize: Float?
    let restarts: Int?
    let randomStart: Bool?
    let targeted: TargetSelection?
    let labels: String
    let seed: UInt64
    let n: Int
    /// Which example an input returns: "first-success" (evaluation), "highest-loss" (saved or
    /// transferred, for gradient-ascent attacks), or what a minimum-norm, black-box or suite attack returns.
    let examples: String
    let cleanAccuracy: Double
    let cleanCorrect: Int
    let robustAccuracy: Double
    let robustCorrect: Int
    let robustCI95: [Double]
    let adversarialAccuracy: Double
    let adversarialCorrect: Int
    let adversarialCI95: [Double]
    let successRate: Double
    let successes: Int
    /// The success rate's denominator: correctly classified inputs (untargeted) or attacked inputs (targeted).
    let successTrials: Int
    let meanPerturbation: Double
    let maxPerturbation: Float
    let seconds: Double
    let imagesPerSecond: Double
    /// Query-based attacks: mean model evaluations per attacked input, median per fooled input.
    let meanQueries: Double?
    let medianQueriesFooled: Double?
    /// The AutoAttack suite: robust accuracy after each of its attacks (each run on the inputs still robust).
    let stages: [Stage]?
    /// Minimum-norm attacks: the median minimal ‖δ‖ over correctly classified inputs (nil when more
    /// than half were not fooled at all), and robust accuracy at 0.25, 0.5, 1, 2 and 4 times ε.
    let minimalNorm: MinimalNorm?

    struct MinimalNorm: Encodable {
        let median: Double?
        let curve: [Point]
        /// Each input's minimal ‖δ‖ (null where none was found, 0 where misclassified clean).
        let norms: [Float?]

        struct Point: Encodable {
            let epsilon: Float
            let robustAccuracy: Double
            enum CodingKeys: String, CodingKey {
                case epsilon
                case robustAccuracy = "robust_accuracy"
            }
        }
    }

    struct Stage: Encodable {
        let attack: String
        let robustAccuracy: Double
        enum CodingKeys: String, CodingKey {
            case attack
            case robustAccuracy = "robust_accuracy"
        }
    }
    let transfer: Transfer?
    let data: String
    /// With --black-box: every row sent to the model, the clean and final classification included.
    let modelQueries: Int?

    struct Transfer: Encodable {
        let model: String
        let cleanAccuracy: Double
        let adversarialAccuracy: Double
        let robustAccuracy: Double
        enum CodingKeys: String, CodingKey {
            case model
            case cleanAccuracy = "clean_accuracy", adversarialAccuracy = "adversarial_accuracy", robustAccuracy = "robust_accuracy"
        }
    }

    enum CodingKeys: String, CodingKey {
        case model, attack, type, spec, norm, epsilon, loss, steps, restarts, targeted, labels, seed, n, examples, successes, seconds, transfer, data
        case stepSize = "step_size", randomStart = "random_start"
        case cleanAccuracy = "clean_accuracy", cleanCorrect = "clean_correct"
        case robustAccuracy = "robust_accuracy", robustCorrect = "robust_correct", robustCI95 = "robust_accuracy_ci95"
        case adversarialAccuracy = "adversarial_accuracy", adversarialCorrect = "adversarial_correct"
        case adversarialCI95 = "adversarial_accuracy_ci95"
        case successRate = "success_rate", successTrials = "success_n"
        case meanPerturbation = "mean_perturbation", maxPerturbation = "max_perturbation"
        case imagesPerSecond = "images_per_second"
        case meanQueries = "mean_queries", medianQueriesFooled = "median_queries_fooled"
        case stages
        case minimalNorm = "minimal_norm"
        case modelQueries = "model_queries"
    }

    init(model: String, spec: AttackSpec, attack: any Attack, goal: AttackGoal, seed: UInt64, outcome: AttackOutcome,
         examples: String, transfer: Transfer?, data: String, modelQueries: Int? = nil) {
        self.modelQueries = modelQueries
        self.model = model
        self.attack = attack.description
        type = spec.type
        self.spec = spec
        norm = spec.norm.rawValue
        epsilon = attack.epsilon
        loss = spec.loss.rawValue
        switch spec {
        case .fgsm:
            (steps, stepSize, restarts, randomStart) = (nil, nil, nil, nil)
        case .pgd:
            let pgd = attack as? PGD
            (steps, stepSize, restarts, randomStart) = (pgd?.steps, pgd?.stepSize, pgd?.restarts, pgd?.randomStart)
        case .apgd(let p):
            (steps, stepSize, restarts, randomStart) = (p.steps, nil, p.restarts, true)
        case .apgdTargeted(let p):
            (steps, stepSize, restarts, randomStart) = (p.steps, nil, p.restarts, true)
        case .square(let p):
            (steps, stepSize, restarts, randomStart) = (nil, nil, p.restarts, true)
        case .fabTargeted(let p):
            (steps, stepSize, restarts, randomStart) = (p.steps, nil, 1, false)
        case .autoattack:
            (steps, stepSize, restarts, randomStart) = (nil, nil, nil, nil)
        case .deepFool(let p):
            (steps, stepSize, restarts, randomStart) = (p.steps, nil, 1, false)
        case .carliniWagner(let p):
            (steps, stepSize, restarts, randomStart) = (p.steps, nil, nil, false)  // binary-search steps are in `spec`
        case .ddn(let p):
            (steps, stepSize, restarts, randomStart) = (p.steps, nil, 1, false)
        case .miFGSM:
            let attack = attack as? MIFGSM
            (steps, stepSize, restarts, randomStart) = (attack?.steps, attack?.stepSize, 1, false)
        }
        stages = outcome.suiteStages.map { fooledBy in
            AutoAttackSuite.stageNames.indices.map { k in
                let robust = (0..<outcome.n).filter { fooledBy[$0] == -1 || fooledBy[$0] > k + 1 }.count
                return Stage(attack: AutoAttackSuite.stageNames[k], robustAccuracy: Double(robust) / Double(max(outcome.n, 1)))
            }
        }
        let grid = [0.25, 0.5, 1, 2, 4].map { Float($0) * attack.epsilon }
        minimalNorm = outcome.minimalNormSummary(epsilons: grid).map { summary in
            MinimalNorm(median: summary.median.isFinite ? Double(summary.median) : nil,
                        curve: summary.curve.map { .init(epsilon: $0.epsilon, robustAccuracy: $0.accuracy.value) },
                        norms: (outcome.minimalNorms ?? []).map { $0.isFinite ? $0 : nil })
        }
        let queries = outcome.queryStatistics
        meanQueries = queries?.mean
        medianQueriesFooled = queries?.medianFooled
        targeted = goal.targets
        labels = goal.labels.rawValue
        self.seed = seed
        n = outcome.n
        self.examples = examples
        cleanAccuracy = outcome.cleanAccuracy.value
        cleanCorrect = outcome.cleanCorrect
        robustAccuracy = outcome.robustAccuracy.value
        robustCorrect = outcome.robustCorrect
        let (lower, upper) = outcome.robustAccuracy.wilsonInterval()
        robustCI95 = [lower, upper]
        adversarialAccuracy = outcome.adversarialAccuracy.value
        adversarialCorrect = outcome.adversarialCorrect
        let adversarialInterval = outcome.adversarialAccuracy.wilsonInterval()
        adversarialCI95 = [adversarialInterval.lower, adversarialInterval.upper]
        successRate = outcome.successRate.value
        successes = outcome.successRate.successes
        successTrials = outcome.successRate.trials
        meanPerturbation = outcome.meanPerturbation
        maxPerturbation = outcome.maxPerturbation
        seconds = outcome.seconds
        imagesPerSecond = outcome.imagesPerSecond
        self.transfer = transfer
        self.data = data
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model)
        try c.encode(attack, forKey: .attack)
        try c.encode(type, forKey: .type)
        try c.encode(spec, forKey: .spec)
        try c.encode(norm, forKey: .norm)
        try c.encode(epsilon, forKey: .epsilon)
        try c.encode(loss, forKey: .loss)
        try c.encode(steps, forKey: .steps)  // null for single-step attacks
        try c.encode(stepSize, forKey: .stepSize)
        try c.encode(restarts, forKey: .restarts)
        try c.encode(randomStart, forKey: .randomStart)
        try c.encode(targeted, forKey: .targeted)  // null when untargeted
        try c.encode(labels, forKey: .labels)
        try c.encode(seed, forKey: .seed)
        try c.encode(n, forKey: .n)
        try c.encode(examples, forKey: .examples)
        try c.encode(cleanAccuracy, forKey: .cleanAccuracy)
        try c.encode(cleanCorrect, forKey: .cleanCorrect)
        try c.encode(robustAccuracy, forKey: .robustAccuracy)
        try c.encode(robustCorrect, forKey: .robustCorrect)
        try c.encode(robustCI95, forKey: .robustCI95)
        try c.encode(adversarialAccuracy, forKey: .adversarialAccuracy)
        try c.encode(adversarialCorrect, forKey: .adversarialCorrect)
        try c.encode(adversarialCI95, forKey: .adversarialCI95)
        try c.encode(successRate, forKey: .successRate)
        try c.encode(successes, forKey: .successes)
        try c.encode(successTrials, forKey: .successTrials)
        try c.encode(meanPerturbation, forKey: .meanPerturbation)
        try c.encode(maxPerturbation, forKey: .maxPerturbation)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(imagesPerSecond, forKey: .imagesPerSecond)
        try c.encodeIfPresent(meanQueries, forKey: .meanQueries)
        try c.encodeIfPresent(medianQueriesFooled, forKey: .medianQueriesFooled)
        try c.encodeIfPresent(stages, forKey: .stages)
        try c.encodeIfPresent(minimalNorm, forKey: .minimalNorm)
        try c.encodeIfPresent(modelQueries, forKey: .modelQueries)
        try c.encode(transfer, forKey: .transfer)
        try c.encode(data, forKey: .data)
    }

    var text: String {
        let normSymbol = norm == "linf" ? "‖δ‖∞" : "‖δ‖₂"
        let cleanInterval = Proportion(successes: cleanCorrect, trials: n).wilsonInterval()
        var lines = """
        attack                 \(attack)\(targeted.map { " targeted \($0)" } ?? "")\(labels == "predictions" ? " (against the model's predictions)" : "")
        n                      \(n)
        clean accuracy         \(cleanAccuracy.formatted(4))  (95% CI \(cleanInterval.lower.formatted(4))–\(cleanInterval.upper.formatted(4)))
        robust accuracy        \(robustAccuracy.formatted(4))  (95% CI \(robustCI95[0].formatted(4))–\(robustCI95[1].formatted(4)); correct both clean and attacked)
        adversarial accuracy   \(adversarialAccuracy.formatted(4))  (attacked inputs classified correctly, whatever the clean prediction)
        attack success rate    \(successRate.formatted(4))  (\(successes) of \(successTrials) \(targeted == nil ? "correctly classified" : "attacked") inputs)
        \(normSymbol) mean / max        \(meanPerturbation.formatted(4)) / \(Double(maxPerturbation).formatted(4))
        examples               \(examples)
        time                   \(seconds.formatted(2)) s (\(Int(imagesPerSecond)) images/s)
        """
        if let minimalNorm {
            lines += "\nminimal ‖δ‖           median " + (minimalNorm.median.map { $0.formatted(4) } ?? "not reached (fewer than half fooled)")
                + "; robust accuracy " + minimalNorm.curve.map { "\($0.robustAccuracy.formatted(4)) at ε = \($0.epsilon)" }.joined(separator: ", ")
        }
        if let stages {
            lines += "\nafter each attack     " + stages.map { "\($0.attack) \($0.robustAccuracy.formatted(4))" }.joined(separator: " → ")
        }
        if let meanQueries {
            lines += "\nqueries                mean \(meanQueries.formatted(1)) per attacked input"
                + (medianQueriesFooled.map { ", median \($0.formatted(1)) per fooled input" } ?? "")
                + (modelQueries.map { "; \($0) rows sent to the black-box model in all" } ?? "")
        }
        if let transfer {
            lines += "\ntransfer to \(transfer.model): clean \(transfer.cleanAccuracy.formatted(4)), robust \(transfer.robustAccuracy.formatted(4)), "
                + "adversarial \(transfer.adversarialAccuracy.formatted(4))"
        }
        return lines
    }
}

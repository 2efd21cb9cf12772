import ArgumentParser
import Foundation
import NeuralNet
import TensorCore
import Threats
import Training
import BulwarkSecurity
import _FileSystem

extension PoisonDefenceSpec: ExpressibleByArgument {}

/// `bulwark threat poison`: a poisoning attack at one or more rates, with defences
/// (`PoisoningExperiment`).
struct ThreatPoisonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "poison",
        abstract: "Poison the training set (label flipping or a BadNets backdoor), train, measure, defend, retrain.",
        discussion: """
        Trains an unpoisoned baseline and one model per poison rate with the same recipe (the standard \
        model's unless --recipe), then, for each defence, flags examples, scores the flags against the \
        truth (precision, recall) and retrains without them. Every example of the training split is \
        used (no validation split). ASR: triggered test inputs whose class is not the target that \
        the model assigns to the target (backdoor), or source-class test inputs assigned to the \
        target (targeted flipping).

        Examples:
          bulwark threat poison --attack backdoor --rate 0.1 --defence spectral --defence clustering --defence loss --json
          bulwark threat poison --attack label-flip --source-class 0 --target-class 6 --rate 0.05 --defence loss
          bulwark threat poison --attack backdoor --rate 0.01 --rate 0.05 --rate 0.1 --json    (one JSON line per rate)
        """
    )

    /// The attacks `--attack` names.
    enum AttackName: String, ExpressibleByArgument, CaseIterable {
        case backdoor
        case labelFlip = "label-flip"
    }

    @Option(help: "The attack: backdoor (BadNets) or label-flip.")
    var attack: AttackName

    @Option(help: ArgumentHelp("Fraction of the training set to poison; repeat for a curve over rates.", valueName: "r"))
    var rate: [Double] = []

    @Option(help: ArgumentHelp("A defence: spectral, clustering or loss; repeat for several.", valueName: "name"))
    var defence: [PoisonDefenceSpec] = []

    @Option(help: ArgumentHelp("The defender's bound on the poisoned fraction: spectral signatures remove 1.5× it from each class, loss filtering from the whole set (default 0.1).", valueName: "ε"))
    var expectedRate: Double?

    @Option(help: "The class the attack steers inputs to (default 0; label-flip: with --source-class only).")
    var targetClass: Int?

    @Option(help: "label-flip: relabel only this class's examples as --target-class (targeted flipping); without it, flipping is random.")
    var sourceClass: Int?

    @Option(help: "backdoor: side of the square trigger in pixels (default 3).")
    var triggerSize: Int?

    @Option(help: "backdoor: the trigger's top row (default: one pixel above the bottom edge).")
    var triggerRow: Int?

    @Option(help: "backdoor: the trigger's left column (default: one pixel left of the right edge).")
    var triggerColumn: Int?

    @Option(help: "backdoor: the trigger's pixel value (default 1).")
    var triggerValue: Float?

    @Option(help: "backdoor: image width in pixels, to place the trigger in the flattened input (default 28).")
    var imageWidth: Int?

    @Option(help: ArgumentHelp("A training recipe (JSON, as in bench configurations) for every model (default: the standard model's).", valueName: "file"))
    var recipe: String?

    @Option(help: "Seed of the poison selection and of every model's training.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Keep the poisoned model (of the first rate) here (.safetensors).", valueName: "path"))
    var saveModel: String?

    @Option(help: ArgumentHelp("Write the results as a threat report (JSON) that bulwark gate compares.", valueName: "file"))
    var report: String?

    @Flag(help: "Print one JSON object per poison rate on stdout.")
    var json = false

    @Flag(help: "Replace an existing file of another kind at --save-model or --report.")
    var force = false

    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Security") var security: SecurityOptions
    @OptionGroup(title: "Engine") var engine: EngineOptions

    func validate() throws {
        try data.checkCSVOptions()
        guard !rate.isEmpty else { throw ValidationError("give the poison rate with --rate, e.g. --rate 0.1") }
        for r in rate where !(r >= 0 && r <= 1) { throw ValidationError("--rate must be in [0, 1], got \(r)") }
        if Set(rate).count != rate.count { throw ValidationError("--rate: a rate is given twice (\(rate)); give each rate once") }
        if let expectedRate {
            guard !defence.isEmpty else { throw ValidationError("--expected-rate applies to the defences (--defence spectral|loss)") }
            guard expectedRate > 0 && expectedRate < 2.0 / 3 else {
                throw ValidationError("--expected-rate must be in (0, 2/3) (1.5× it is removed), got \(expectedRate)")
            }
        }
        if attack == .labelFlip && sourceClass == nil && targetClass != nil {
            throw ValidationError("--target-class applies to targeted flipping: give --source-class too (random flipping has no target)")
        }
        do { try poisonAttack().validate() } catch { throw ValidationError("\(error)") }
        if Set(defence).count != defence.count { throw ValidationError("--defence: a defence is given twice; give each once") }
        let triggerFlags = [("--trigger-size", triggerSize != nil), ("--trigger-row", triggerRow != nil), ("--trigger-column", triggerColumn != nil),
                            ("--trigger-value", triggerValue != nil), ("--image-width", imageWidth != nil)].filter(\.1).map(\.0)
        if attack != .backdoor && !triggerFlags.isEmpty {
            throw ValidationError("\(triggerFlags.joined(separator: ", ")) apply to --attack backdoor only")
        }
        if attack != .labelFlip && sourceClass != nil { throw ValidationError("--source-class applies to --attack label-flip only") }
        if let saveModel, !saveModel.hasSuffix(".safetensors") {
            throw ValidationError("--save-model must name a .safetensors file, got '\(saveModel)'")
        }
    }

    func poisonAttack() -> PoisonAttack {
        switch attack {
        case .backdoor:
            return .backdoor(BackdoorTrigger(size: triggerSize ?? 3, row: triggerRow, column: triggerColumn, value: triggerValue ?? 1,
                                             imageWidth: imageWidth ?? 28), target: targetClass ?? 0)
        case .labelFlip:
            return sourceClass.map { .targetedLabelFlip(source: $0, target: targetClass ?? 0) } ?? .randomLabelFlip
        }
    }

    func run() throws {
        engine.apply()
        let loader = try security.loader()
        var trainingRecipe = PoisoningExperiment.defaultRecipe
        if let recipe {
            let bytes: [UInt8]
            do { bytes = try FileReader.readAll(recipe, limit: 1 << 20) } catch { throw CLIError.unusableInput("--recipe: \(error)") }
            do { trainingRecipe = try StrictJSON.decode(TrainingRecipe.self, from: bytes) } catch {
                throw CLIError.unusableInput("--recipe \(displayable(recipe)): \(decodingErrorText(error))")
            }
        }
        var experiment = PoisoningExperiment(
            attack: poisonAttack(), rates: rate, defences: defence,
            expectedRate: expectedRate ?? 0.1, recipe: trainingRecipe, seed: seed, threads: WorkerPool.shared.threadCount)
        let progress = ModelTrainingProgress("poisoning")
        experiment.progress = { progress.update(done: $0, total: $1) }
        try experiment.validate()
        if let saveModel {
            try OutputPath.prepare(saveModel, for: "--save-model", replacing: [.model], inputs: data.spec.namedFiles + (recipe.map { [$0] } ?? []),
                                   force: force)
        }
        if let report {
            try ThreatReportFile.prepare(report, inputs: data.spec.namedFiles + (recipe.map { [$0] } ?? []) + (saveModel.map { [$0] } ?? []), force: force)
        }
        let (train, trainDescription) = try data.spec.load(.train, loader: loader)
        let (test, testDescription) = try data.spec.load(.test, loader: loader)
        log.info("training data: \(trainDescription)")
        let result = try experiment.run(train: train, test: test, log: { log.info("\($0)") }, keepFirstPoisonedModel: saveModel != nil)
        if let report {
            try ThreatReportFile.write(report, experiment: "poison", settings: Settings(experiment), seed: seed,
                                       data: "\(trainDescription); \(testDescription)", train: train, test: test,
                                       groups: result.metricGroups)
        }
        if let saveModel, let model = result.firstPoisonedModel {
            // The recipe as it ran: the experiment's seed, every example of the poisoned set.
            var effective = trainingRecipe
            effective.seed = seed
            effective.validationFraction = 0
            try ModelFile.save(model, metadata: ["recipe": effective.json, "poisoning": experiment.attack.description,
                                                 "poison_rate": String(rate[0]), "poisoned_examples": String(result.rates[0].poisoned),
                                                 "seed": String(seed), "bulwark_version": BulwarkVersion.current,
                                                 "made_by": "bulwark threat poison (the training set was poisoned on purpose)"],
                               to: saveModel)
            if try Manifest.record(saveModel, recipe: effective.json).removedSignature {
                log.warning("the manifest beside \(saveModel) was signed; its signature was removed because \(saveModel) changed. Sign it again with bulwark manifest sign")
            }
            log.info("poisoned model written to \(saveModel) (recorded in the manifest beside it)")
        }
        if json {
            for row in result.rates { try JSONOutput.line(JSONLine(result: result, row: row)) }
        } else {
            print(Self.table(result))
        }
    }

    /// What a threat report records of the experiment (all but the seed: reports with other seeds
    /// still compare).
    struct Settings: Encodable {
        let attack: String
        let rates: [Double]
        let defences: [String]
        let expectedRate: Double
        let recipe: TrainingRecipe

        init(_ experiment: PoisoningExperiment) {
            attack = experiment.attack.description
            rates = experiment.rates
            defences = experiment.defences.map(\.rawValue)
            expectedRate = experiment.expectedRate
            recipe = experiment.recipe.asRunByThreatExperiments
        }

        enum CodingKeys: String, CodingKey {
            case attack, rates, defences, recipe
            case expectedRate = "expected_rate"
        }
    }

    /// The `--json` object of one rate: the issue's fields at the top level.
    struct JSONLine: Encodable {
        let result: PoisoningExperiment.Result
        let row: PoisoningExperiment.RateResult

        enum CodingKeys: String, CodingKey {
            case attack, description, seed, defences, poisoned, seconds
            case poisonRate = "poison_rate", cleanAccuracy = "clean_accuracy", attackSuccessRate = "attack_success_rate"
            case baselineCleanAccuracy = "baseline_clean_accuracy", baselineAttackSuccessRate = "baseline_attack_success_rate"
            case trainingExamples = "training_examples", cleanN = "clean_n", successN = "attack_success_n"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(result.attack, forKey: .attack)
            try c.encode(result.description, forKey: .description)
            try c.encode(result.seed, forKey: .seed)
            try c.encode(row.poisonRate, forKey: .poisonRate)
            try c.encode(row.poisoned, forKey: .poisoned)
            try c.encode(result.trainingExamples, forKey: .trainingExamples)
            try c.encode(row.cleanAccuracy, forKey: .cleanAccuracy)
            try c.encode(row.cleanAccuracy.n, forKey: .cleanN)
            try c.encode(row.attackSuccessRate, forKey: .attackSuccessRate)
            try c.encodeIfPresent(row.attackSuccessRate?.n, forKey: .successN)
            try c.encode(result.baselineCleanAccuracy, forKey: .baselineCleanAccuracy)
            try c.encode(result.baselineAttackSuccessRate, forKey: .baselineAttackSuccessRate)
            try c.encode(row.defences, forKey: .defences)
            try c.encode(result.seconds, forKey: .seconds)
        }
    }

    static func table(_ result: PoisoningExperiment.Result) -> String {
        func percent(_ p: ThreatProportion?) -> String { p.map { ($0.value * 100).formatted(2) + "%" } ?? "—" }
        func ratio(_ x: Double?) -> String { x.map { $0.formatted(3) } ?? "—" }
        var lines = ["\(result.description); \(result.trainingExamples) training examples, seed \(result.seed)",
                     "unpoisoned baseline: clean accuracy \(percent(result.baselineCleanAccuracy)), ASR \(percent(result.baselineAttackSuccessRate))",
                     "rate    defence     flagged  precision  recall  clean acc.  ASR"]
        for row in result.rates {
            lines.append("\(String(format: "%-7g", row.poisonRate)) none        —        —          —       "
                         + "\(percent(row.cleanAccuracy).padding(10))  \(percent(row.attackSuccessRate))   (\(row.poisoned) poisoned)")
            for d in row.defences {
                lines.append("        \(d.defence.padding(10))  \(String(d.flagged).padding(7))  \(ratio(d.precision).padding(9))  "
                             + "\(ratio(d.recall).padding(6))  \(percent(d.cleanAccuracy).padding(10))  \(percent(d.attackSuccessRate))")
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    /// Left-aligned in `width` columns.
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}

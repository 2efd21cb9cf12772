import ArgumentParser
import Attacks
import Foundation
import NeuralNet
import Training
import _FileSystem

extension InitializationScheme: ExpressibleByArgument {}

enum OptimizerName: String, ExpressibleByArgument, CaseIterable {
    case sgd, adam, adamw
}

enum ScheduleName: String, ExpressibleByArgument, CaseIterable {
    case constant, step, cosine, onecycle, cyclic
}

/// The flags of `bulwark train` that make up the recipe; they map one-to-one onto a typed
/// `TrainingRecipe` (which renders them back as a model card's `train_command`). A flag that does
/// not apply (`--momentum` with Adam, `--train-steps` without `--adversarial pgd`) is an error.
struct TrainingOptions: ParsableArguments {
    @Option(name: .customLong("recipe"), help: ArgumentHelp("A shipped recipe as the starting point: \(TrainingRecipe.shipped.keys.sorted().joined(separator: ", ")) (the shipped models' recipes; --model, --epochs, --seed and --from may change it, other recipe flags may not).", valueName: "name"))
    var recipeName: String?

    @Option(help: ArgumentHelp("Start from this model's weights instead of the seeded initialisation (fine-tuning, e.g. adversarial fine-tuning of a standard model); its architecture is the default of --model.", valueName: "model.safetensors"))
    var from: String?

    @Option(help: "Architecture: widths such as 784-256-256-10, or a JSON layer list (inline or a .json file) (default: 784-256-256-10, or the --from model's).")
    var model: String?

    @Option(help: "Hidden activation for the width shorthand: \(Activation.allCases.map(\.rawValue).joined(separator: ", ")) (default relu).")
    var activation: Activation?

    @Option(help: ArgumentHelp("Dropout probability after each hidden activation (shorthand only).", valueName: "p"))
    var dropout: Float?

    @Option(name: .customLong("init"), help: "Weight initialisation: he or xavier (default: suits the activation).")
    var initialization: InitializationScheme?

    @Option(help: "Number of epochs (default 5).")
    var epochs: Int?

    @Option(help: "Mini-batch size (default 128).")
    var batch: Int?

    @Option(name: .customLong("optimizer"), help: "Optimizer: sgd, adam or adamw (default adam).")
    var optimizerName: OptimizerName?

    @Option(help: ArgumentHelp("Learning rate (default 0.001).", valueName: "η"))
    var lr: Real?

    @Option(help: "SGD momentum (default 0).")
    var momentum: Float?

    @Flag(help: "Use Nesterov momentum with SGD.")
    var nesterov = false

    @Option(help: "Weight decay (L2 for sgd/adam, decoupled for adamw; default 0, adamw 0.01).")
    var weightDecay: Float?

    @Option(help: "Adam β₁ (default 0.9).")
    var beta1: Float?

    @Option(help: "Adam β₂ (default 0.999).")
    var beta2: Float?

    @Option(help: "Adam ε (default 1e-8).")
    var adamEps: Float?

    @Option(name: .customLong("schedule"), help: "Learning-rate schedule: constant, step, cosine, onecycle or cyclic (default constant).")
    var scheduleName: ScheduleName?

    @Option(help: "Epochs between decays (step) or per cycle (cyclic) (default 1).")
    var scheduleEvery: Int?

    @Option(help: "Decay factor of the step schedule (default 0.5).")
    var gamma: Float?

    @Option(help: "Final learning rate of the cosine schedule (default 0).")
    var minLr: Float?

    @Option(help: "Clip the global gradient norm to this value.")
    var clipNorm: Float?

    @Option(help: "Label smoothing ε of the cross-entropy loss (default 0).")
    var labelSmoothing: Float?

    @Option(help: "Fraction of the training set held out for validation (default 0.1).")
    var valSplit: Double?

    @Option(help: "Seed for initialisation, shuffling, the validation split, dropout and the training attack (default 0).")
    var seed: UInt64?

    @Option(help: "Adversarial training: fgsm (Goodfellow et al., mixed with clean examples), pgd (Madry et al.), fgsm-rs (Wong et al.: random start, α = 1.25ε) or n-fgsm (de Jorge et al.: noise ±2ε, α = ε, no clipping).")
    var adversarial: String?

    @Option(help: ArgumentHelp("fgsm-rs / n-fgsm: half-width of the uniform noise as a multiple of ε (default 1 / 2).", valueName: "k"))
    var trainNoise: Real?

    @Option(help: ArgumentHelp("ε of the training attack, e.g. 0.1 or 8/255 (default 0.1).", valueName: "ε"))
    var trainEps: Real?

    @Option(help: "Norm of the training attack: linf or l2 (default linf).")
    var trainNorm: Norm?

    @Option(help: "Loss of the training attack: ce, margin or dlr (default ce).")
    var trainLoss: AttackLoss?

    @Option(help: "PGD steps of the training attack (default \(PGD.defaultSteps)).")
    var trainSteps: Int?

    @Option(help: ArgumentHelp("PGD step size of the training attack (default 2.5·ε/steps).", valueName: "α"))
    var trainStepSize: Real?

    @Option(help: ArgumentHelp("PGD step size of the training attack as a multiple of ε.", valueName: "r"))
    var trainRelativeStepSize: Real?

    @Option(help: "PGD restarts of the training attack (default 1).")
    var trainRestarts: Int?

    @Flag(help: "Start the training PGD at the clean input.")
    var trainNoRandomStart = false

    @Option(help: "Fraction of each batch replaced by adversarial examples (default: 0.5 for fgsm, 1 for pgd).")
    var adversarialMix: Float?

    @Option(help: "Held-out examples on which PGD-10 robust accuracy (adversarial, single-step and TRADES training) or IBP-certified accuracy (certified training) is measured after each epoch (default 1000).")
    var robustEvalN: Int?

    @Option(help: ArgumentHelp("TRADES (Zhang et al.): weight β of the KL term between clean and adversarial predictions (the paper uses 6); with --train-eps, --train-steps (default 10) and --train-step-size (default ε/4).", valueName: "β"))
    var tradesBeta: Float?

    @Option(help: "Certified training: ibp (interval bound propagation, Gowal et al.) or crown-ibp (Zhang et al.: CROWN-IBP bounds weighted from 1 to 0 during the ramp), at --train-eps after --warmup-epochs of clean training and a --ramp-epochs linear ramp of ε.")
    var certified: String?

    @Option(help: ArgumentHelp("Certified training: epochs of clean training before ε rises (default 1).", valueName: "epochs"))
    var warmupEpochs: Double?

    @Option(help: ArgumentHelp("Certified training: epochs over which ε rises to --train-eps and κ falls to --final-kappa (default 10).", valueName: "epochs"))
    var rampEpochs: Double?

    @Option(help: ArgumentHelp("Certified training: final weight κ of the clean loss against the worst-case bound's (default 0.5).", valueName: "κ"))
    var finalKappa: Float?

    @Option(help: ArgumentHelp("DP-SGD (Abadi et al.): Gaussian noise multiplier σ; clips each example's gradient to --dp-clip and reports ε each epoch.", valueName: "σ"))
    var dpNoise: Real?

    @Option(help: ArgumentHelp("DP-SGD per-example gradient norm bound (default 1).", valueName: "C"))
    var dpClip: Real?

    @Option(help: ArgumentHelp("DP-SGD δ at which ε is reported (default 1e-5).", valueName: "δ"))
    var dpDelta: Double?

    @Flag(help: "DP-SGD: derive the noise from --seed so the run repeats exactly. Not private against anyone who knows the seed (the model file records it); by default the noise comes from the OS's CSPRNG.")
    var dpSeededNoise = false

    func validate() throws {
        // A layer list in a file, and the architecture of a --from model, are read when the command
        // runs (an unreadable file is unusable input, exit 2, not a usage error); every other flag is
        // checked now, the --from model's architecture standing in for a placeholder.
        if !(model?.hasSuffix(".json") ?? false) {
            _ = try recipe(fromArchitecture: model == nil && from != nil ? try ModelSpec.parse("784-16-10") : nil)
        }
    }

    /// The recipe these flags describe.
    /// - Parameter fromArchitecture: the architecture of the `--from` model (the default of `--model`).
    func recipe(fromArchitecture: ModelSpec? = nil) throws -> TrainingRecipe {
        var recipe: TrainingRecipe
        if let recipeName {
            recipe = try shippedRecipe(recipeName)
            if model != nil || fromArchitecture != nil { recipe.architecture = try modelSpec(default: fromArchitecture) }
            if let epochs { recipe.epochs = epochs }
            if let seed { recipe.seed = seed }
        } else {
            try checkApplicability()
            recipe = TrainingRecipe(
                architecture: try modelSpec(default: fromArchitecture), initialization: initialization, seed: seed ?? 0, epochs: epochs ?? 5,
                batchSize: batch ?? 128, validationFraction: valSplit ?? 0.1, optimizer: optimizerConfiguration,
                schedule: scheduleConfiguration, clipNorm: clipNorm, objective: try objective(), robustEvaluationExamples: robustEvalN ?? 1000)
        }
        recipe.initialModel = from
        do { try recipe.validate() } catch let error as TrainingError {
            if case .invalidRecipe(let problem) = error { throw ValidationError(problem) }
            throw ValidationError("\(error)")
        }
        return recipe
    }

    /// The shipped recipe `name`, refusing the flags it does not let change.
    private func shippedRecipe(_ name: String) throws -> TrainingRecipe {
        guard let recipe = TrainingRecipe.shipped[name] else {
            throw ValidationError("--recipe: unknown recipe '\(name)' (known: \(TrainingRecipe.shipped.keys.sorted().joined(separator: ", ")))")
        }
        let flags: [(String, Bool)] = [
            ("--init", initialization != nil), ("--batch", batch != nil), ("--optimizer", optimizerName != nil), ("--lr", lr != nil),
            ("--momentum", momentum != nil), ("--nesterov", nesterov), ("--weight-decay", weightDecay != nil), ("--beta1", beta1 != nil),
            ("--beta2", beta2 != nil), ("--adam-eps", adamEps != nil), ("--schedule", scheduleName != nil),
            ("--schedule-every", scheduleEvery != nil), ("--gamma", gamma != nil), ("--min-lr", minLr != nil), ("--clip-norm", clipNorm != nil),
            ("--label-smoothing", labelSmoothing != nil), ("--val-split", valSplit != nil), ("--adversarial", adversarial != nil),
            ("--train-noise", trainNoise != nil), ("--train-eps", trainEps != nil), ("--train-norm", trainNorm != nil),
            ("--train-loss", trainLoss != nil), ("--train-steps", trainSteps != nil), ("--train-step-size", trainStepSize != nil),
            ("--train-relative-step-size", trainRelativeStepSize != nil), ("--train-restarts", trainRestarts != nil),
            ("--train-no-random-start", trainNoRandomStart), ("--adversarial-mix", adversarialMix != nil), ("--robust-eval-n", robustEvalN != nil),
            ("--trades-beta", tradesBeta != nil), ("--certified", certified != nil), ("--warmup-epochs", warmupEpochs != nil),
            ("--ramp-epochs", rampEpochs != nil), ("--final-kappa", finalKappa != nil), ("--dp-noise", dpNoise != nil),
            ("--dp-clip", dpClip != nil), ("--dp-delta", dpDelta != nil), ("--dp-seeded-noise", dpSeededNoise),
        ]
        let given = flags.filter(\.1).map(\.0)
            + (model == nil || modelIsLayerList ? [("--activation", activation != nil), ("--dropout", dropout != nil)].filter(\.1).map(\.0) : [])
        guard given.isEmpty else {
            throw ValidationError("\(given.joined(separator: ", ")) cannot change --recipe \(name) (only --model, --epochs, --seed and --from can); "
                + "for another recipe give all its flags without --recipe, starting from: bulwark train \(recipe.commandLineArguments.joined(separator: " "))")
        }
        return recipe
    }

    /// Flags given for a setting they do not apply to.
    private func checkApplicability() throws {
        func refuse(_ flags: [(String, Bool)], _ condition: Bool, _ reason: String) throws {
            let given = flags.filter(\.1).map(\.0)
            guard condition || given.isEmpty else {
                throw ValidationError("\(given.joined(separator: ", ")) \(given.count == 1 ? "applies" : "apply") \(reason)")
            }
        }
        let optimizer = optimizerName ?? .adam, schedule = scheduleName ?? .constant
        try refuse([("--momentum", momentum != nil), ("--nesterov", nesterov)], optimizer == .sgd, "to --optimizer sgd only")
        try refuse([("--beta1", beta1 != nil), ("--beta2", beta2 != nil), ("--adam-eps", adamEps != nil)],
                   optimizer != .sgd, "to --optimizer adam or adamw only")
        try refuse([("--schedule-every", scheduleEvery != nil)], schedule == .step || schedule == .cyclic, "to --schedule step or cyclic only")
        try refuse([("--gamma", gamma != nil)], schedule == .step, "to --schedule step only")
        try refuse([("--min-lr", minLr != nil)], schedule == .cosine, "to --schedule cosine only")
        try refuse([("--activation", activation != nil), ("--dropout", dropout != nil)], !modelIsLayerList && (model != nil || from == nil),
                   "to the width shorthand (--model 784-256-10) only")
        try refuse([("--train-eps", trainEps != nil)], adversarial != nil || certified != nil || tradesBeta != nil,
                    "to adversarial, TRADES or certified training (--adversarial fgsm|pgd, --trades-beta, --certified ibp) only")
        if tradesBeta != nil && (adversarial != nil || certified != nil || dpNoise != nil) {
            throw ValidationError("--trades-beta cannot be combined with --adversarial, --certified or --dp-noise; choose one objective")
        }
        let singleStep = adversarial == "fgsm-rs" || adversarial == "n-fgsm"
        try refuse([("--train-norm", trainNorm != nil), ("--train-loss", trainLoss != nil), ("--adversarial-mix", adversarialMix != nil)],
                   adversarial != nil && !singleStep, "to adversarial training with --adversarial fgsm|pgd only")
        try refuse([("--robust-eval-n", robustEvalN != nil)], adversarial != nil || tradesBeta != nil || certified != nil,
                   "to adversarial, TRADES or certified training only (robust or certified accuracy is measured on held-out examples each epoch)")
        try refuse([("--label-smoothing", (labelSmoothing ?? 0) != 0)], (adversarial == nil || !singleStep) && tradesBeta == nil && certified == nil,
                   "to cross-entropy, DP-SGD and --adversarial fgsm|pgd training only (TRADES, fgsm-rs, n-fgsm and certified training use plain cross-entropy)")
        try refuse([("--train-noise", trainNoise != nil)], singleStep, "to --adversarial fgsm-rs|n-fgsm only")
        try refuse([("--warmup-epochs", warmupEpochs != nil), ("--ramp-epochs", rampEpochs != nil), ("--final-kappa", finalKappa != nil)],
                   certified != nil, "to certified training (--certified ibp) only")
        if let certified, certified != "ibp" && certified != "crown-ibp" {
            throw ValidationError("--certified: unknown method '\(certified)' (known: ibp, crown-ibp)")
        }
        if certified != nil && (adversarial != nil || dpNoise != nil) {
            throw ValidationError("--certified cannot be combined with --adversarial or --dp-noise; choose one objective")
        }
        try refuse([("--train-steps", trainSteps != nil), ("--train-step-size", trainStepSize != nil),
                    ("--train-relative-step-size", trainRelativeStepSize != nil), ("--train-restarts", trainRestarts != nil),
                    ("--train-no-random-start", trainNoRandomStart)], adversarial == "pgd"
                        || (tradesBeta != nil && trainRelativeStepSize == nil && trainRestarts == nil && !trainNoRandomStart)
                        || (singleStep && trainSteps == nil && trainRelativeStepSize == nil && trainRestarts == nil && !trainNoRandomStart),
                   "to --adversarial pgd (--train-steps and --train-step-size also to --trades-beta; --train-step-size to fgsm-rs and n-fgsm) only")
        try refuse([("--dp-clip", dpClip != nil), ("--dp-delta", dpDelta != nil), ("--dp-seeded-noise", dpSeededNoise)], dpNoise != nil,
                   "to DP-SGD (--dp-noise σ) only")
        try refuse([("--init", initialization != nil)], from == nil, "to training from a seeded initialisation only (--from sets the initial weights)")
        if from != nil && dpNoise != nil {
            throw ValidationError("--from and --dp-noise cannot be combined: DP-SGD's ε would not cover the initial model's weights, "
                                  + "which may have been trained on the same data without noise; train from the seeded initialisation")
        }
        if dpNoise != nil && adversarial != nil {
            throw ValidationError("--dp-noise and --adversarial cannot be combined (DP-SGD's privacy analysis covers clean training only); choose one")
        }
    }

    /// Whether --model is a JSON layer list (inline or a file) rather than the width shorthand.
    private var modelIsLayerList: Bool {
        model.map { $0.trimmingCharacters(in: .whitespaces).hasPrefix("[") || $0.hasSuffix(".json") } ?? false
    }

    /// The architecture from --model (inline shorthand, inline JSON, or a JSON file), or `fallback`
    /// (the --from model's), or 784-256-256-10.
    func modelSpec(default fallback: ModelSpec? = nil) throws -> ModelSpec {
        if model == nil, let fallback { return fallback }
        let model = model ?? "784-256-256-10"
        var text = model
        if model.hasSuffix(".json") {
            do {
                text = String(decoding: try FileReader.readAll(model, limit: 1 << 20), as: UTF8.self)
            } catch {
                throw CLIError.unusableInput("--model: \(error)")
            }
        }
        if let dropout, !(dropout >= 0 && dropout < 1) {
            throw ValidationError("--dropout must be in [0, 1), got \(dropout)")
        }
        do {
            return try ModelSpec.parse(text, activation: activation ?? .relu, dropout: dropout)
        } catch {
            throw ValidationError("--model: \(error)")
        }
    }

    var optimizerConfiguration: OptimizerConfiguration {
        let lr = lr?.value ?? 1e-3
        return switch optimizerName ?? .adam {
        case .sgd: .sgd(learningRate: lr, momentum: momentum ?? 0, nesterov: nesterov, weightDecay: weightDecay ?? 0)
        case .adam: .adam(learningRate: lr, beta1: beta1 ?? 0.9, beta2: beta2 ?? 0.999, epsilon: adamEps ?? 1e-8,
                          weightDecay: weightDecay ?? 0, decoupled: false)
        case .adamw: .adam(learningRate: lr, beta1: beta1 ?? 0.9, beta2: beta2 ?? 0.999, epsilon: adamEps ?? 1e-8,
                           weightDecay: weightDecay ?? 0.01, decoupled: true)
        }
    }

    var scheduleConfiguration: LearningRateSchedule {
        switch scheduleName ?? .constant {
        case .constant: .constant
        case .step: .step(every: scheduleEvery ?? 1, gamma: gamma ?? 0.5)
        case .cosine: .cosine(minimum: minLr ?? 0)
        case .onecycle: .oneCycle
        case .cyclic: .cyclic(epochsPerCycle: scheduleEvery ?? 1)
        }
    }

    func objective() throws -> ObjectiveSpec {
        if let dpNoise {
            return .dpSGD(DPSGDSpec(noiseMultiplier: dpNoise.value, clip: dpClip?.value ?? 1, delta: dpDelta ?? DPSGDSpec.defaultDelta,
                                    labelSmoothing: labelSmoothing ?? 0, noise: dpSeededNoise ? .seeded : .secure))
        }
        if let tradesBeta {
            return .trades(TRADESSpec(epsilon: trainEps?.value ?? AdversarialTrainingSpec.defaultEpsilon, beta: tradesBeta,
                                      steps: trainSteps ?? 10, stepSize: trainStepSize?.value))
        }
        if certified != nil {
            return .certified(CertifiedTrainingSpec(
                crownIBP: certified == "crown-ibp",
                epsilon: trainEps?.value ?? AdversarialTrainingSpec.defaultEpsilon,
                warmupEpochs: warmupEpochs ?? CertifiedTrainingSpec.defaultWarmupEpochs,
                rampEpochs: rampEpochs ?? CertifiedTrainingSpec.defaultRampEpochs,
                finalKappa: finalKappa ?? CertifiedTrainingSpec.defaultFinalKappa))
        }
        guard let adversarial else { return .crossEntropy(labelSmoothing: labelSmoothing ?? 0) }
        if let method = FastAdversarialSpec.Method(rawValue: adversarial) {
            return .fastAdversarial(FastAdversarialSpec(method: method, epsilon: trainEps?.value ?? AdversarialTrainingSpec.defaultEpsilon,
                                                        stepSize: trainStepSize?.value, noise: trainNoise?.value))
        }
        let attack: AttackSpec
        do {
            switch adversarial {
            case "fgsm":
                attack = .fgsm(FGSM.Parameters(norm: trainNorm ?? .linf, loss: trainLoss ?? .crossEntropy))
            case "pgd":
                attack = .pgd(try AttackOptions.pgdParameters(
                    norm: trainNorm ?? .linf, loss: trainLoss ?? .crossEntropy, steps: trainSteps ?? PGD.defaultSteps, stepSize: trainStepSize,
                    relativeStepSize: trainRelativeStepSize, restarts: trainRestarts, noRandomStart: trainNoRandomStart,
                    flagPrefix: "--train-"))
            default:
                throw ValidationError("--adversarial: unknown method '\(adversarial)' (known: fgsm, pgd, fgsm-rs, n-fgsm)")
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("\(error)")
        }
        return .adversarial(AdversarialTrainingSpec(attack: attack, epsilon: trainEps?.value ?? AdversarialTrainingSpec.defaultEpsilon, mix: adversarialMix,
                                                    labelSmoothing: labelSmoothing ?? 0))
    }
}

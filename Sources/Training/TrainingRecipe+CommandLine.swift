import Attacks
import NeuralNet

extension TrainingRecipe {
    /// The `bulwark train` arguments that reproduce this recipe (without `--out` and data options),
    /// e.g. `--model 784-256-256-10 --epochs 5 --batch 128 --optimizer adam --lr 0.001 --seed 0`.
    /// Settings at their defaults are left out, except the ones a reader wants to see.
    public var commandLineArguments: [String] {
        var arguments = modelArguments
        if let initialization { arguments += ["--init", initialization.rawValue] }
        arguments += ["--epochs", "\(epochs)", "--batch", "\(batchSize)"]
        arguments += optimizerArguments
        arguments += scheduleArguments
        if let clipNorm { arguments += ["--clip-norm", "\(clipNorm)"] }
        if objective.labelSmoothing != 0 { arguments += ["--label-smoothing", "\(objective.labelSmoothing)"] }
        if validationFraction != 0.1 { arguments += ["--val-split", "\(validationFraction)"] }
        arguments += ["--seed", "\(seed)"]
        if let initialModel { arguments += ["--from", initialModel] }
        if case .adversarial(let spec) = objective { arguments += adversarialArguments(spec) }
        if case .dpSGD(let spec) = objective {
            arguments += ["--dp-noise", "\(spec.noiseMultiplier)", "--dp-clip", "\(spec.clip)"]
            if spec.delta != DPSGDSpec.defaultDelta { arguments += ["--dp-delta", "\(spec.delta)"] }
            if spec.noise == .seeded { arguments.append("--dp-seeded-noise") }
        }
        if case .fastAdversarial(let spec) = objective {
            arguments += ["--adversarial", spec.method.rawValue, "--train-eps", "\(spec.epsilon)", "--train-step-size", "\(spec.stepSize)",
                          "--train-noise", "\(spec.noise)"]
            if robustEvaluationExamples != 1000 { arguments += ["--robust-eval-n", "\(robustEvaluationExamples)"] }
        }
        if case .trades(let spec) = objective {
            arguments += ["--trades-beta", "\(spec.beta)", "--train-eps", "\(spec.epsilon)", "--train-steps", "\(spec.steps)",
                          "--train-step-size", "\(spec.stepSize)"]
            if robustEvaluationExamples != 1000 { arguments += ["--robust-eval-n", "\(robustEvaluationExamples)"] }
        }
        if case .certified(let spec) = objective {
            arguments += ["--certified", spec.crownIBP ? "crown-ibp" : "ibp", "--train-eps", "\(spec.schedule.epsilon)", "--warmup-epochs", "\(spec.schedule.warmupEpochs)",
                          "--ramp-epochs", "\(spec.schedule.rampEpochs)", "--final-kappa", "\(spec.schedule.finalKappa)"]
            if robustEvaluationExamples != 1000 { arguments += ["--robust-eval-n", "\(robustEvaluationExamples)"] }
        }
        return arguments
    }

    /// The shortest `--model` form that parses back to the architecture.
    private var modelArguments: [String] {
        let shorthand = architecture.shorthand
        let dropouts: [Float?] = [nil] + architecture.layers.compactMap { if case .dropout(let p) = $0 { p } else { nil } }
        for activation in Activation.allCases {
            for dropout in dropouts where (try? ModelSpec.parse(shorthand, activation: activation, dropout: dropout)) == architecture {
                return ["--model", shorthand] + (activation == .relu ? [] : ["--activation", activation.rawValue])
                    + (dropout.map { ["--dropout", "\($0)"] } ?? [])
            }
        }
        return ["--model", architecture.json]
    }

    private var optimizerArguments: [String] {
        switch optimizer {
        case .sgd(let lr, let momentum, let nesterov, let weightDecay):
            return ["--optimizer", "sgd", "--lr", "\(lr)"] + (momentum != 0 ? ["--momentum", "\(momentum)"] : [])
                + (nesterov ? ["--nesterov"] : []) + (weightDecay != 0 ? ["--weight-decay", "\(weightDecay)"] : [])
        case .adam(let lr, let beta1, let beta2, let epsilon, let weightDecay, let decoupled):
            return ["--optimizer", decoupled ? "adamw" : "adam", "--lr", "\(lr)"]
                + (beta1 != 0.9 ? ["--beta1", "\(beta1)"] : []) + (beta2 != 0.999 ? ["--beta2", "\(beta2)"] : [])
                + (epsilon != 1e-8 ? ["--adam-eps", "\(epsilon)"] : [])
                + (weightDecay != (decoupled ? 0.01 : 0) ? ["--weight-decay", "\(weightDecay)"] : [])
        }
    }

    private var scheduleArguments: [String] {
        switch schedule {
        case .constant: return []
        case .step(let every, let gamma): return ["--schedule", "step", "--schedule-every", "\(every)", "--gamma", "\(gamma)"]
        case .cosine(let minimum): return ["--schedule", "cosine"] + (minimum != 0 ? ["--min-lr", "\(minimum)"] : [])
        case .oneCycle: return ["--schedule", "onecycle"]
        case .cyclic(let every): return ["--schedule", "cyclic", "--schedule-every", "\(every)"]
        }
    }

    private func adversarialArguments(_ spec: AdversarialTrainingSpec) -> [String] {
        var arguments = ["--adversarial", spec.attack.type, "--train-eps", "\(spec.epsilon)"]
        if spec.attack.norm != .linf { arguments += ["--train-norm", spec.attack.norm.rawValue] }
        if spec.attack.loss != .crossEntropy { arguments += ["--train-loss", spec.attack.loss.rawValue] }
        if case .pgd(let p) = spec.attack {
            arguments += ["--train-steps", "\(p.steps)"]
            switch p.stepSize {
            case .absolute(let alpha)?: arguments += ["--train-step-size", "\(alpha)"]
            case .relative(let r)?: arguments += ["--train-relative-step-size", "\(r)"]
            case nil: break
            }
            if p.restarts != 1 { arguments += ["--train-restarts", "\(p.restarts)"] }
            if !p.randomStart { arguments.append("--train-no-random-start") }
        }
        if spec.mix != (spec.attack.isIterative ? 1 : 0.5) { arguments += ["--adversarial-mix", "\(spec.mix)"] }
        if robustEvaluationExamples != 1000 { arguments += ["--robust-eval-n", "\(robustEvaluationExamples)"] }
        return arguments
    }
}

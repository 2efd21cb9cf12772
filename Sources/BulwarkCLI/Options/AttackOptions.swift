import ArgumentParser
import Attacks

extension Norm: ExpressibleByArgument {}
extension AttackLoss: ExpressibleByArgument {}

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

/// The flags of `bulwark attack` that describe the attack: they map onto an `AttackSpec` (the same
/// description bench configurations and adversarial training use) and an `AttackGoal`. A flag that
/// does not apply to the chosen attack is an error, not silently ignored.
struct AttackOptions: ParsableArguments {
    @Option(help: "Attack: \(AttackSpec.types.joined(separator: ", ")) (default pgd).")
    var attack: String?

    @Option(help: "A suite of attacks instead of one: autoattack (AutoAttack's standard suite: APGD-CE, APGD-T, FAB-T, Square, each on the inputs still robust).")
    var suite: String?

    @Option(help: "Norm of the perturbation budget: linf or l2 (default linf; l2 for cw and ddn, which are L2 attacks).")
    var norm: Norm?

    @Option(help: ArgumentHelp("Perturbation budget ε, e.g. 0.1 or 8/255.", valueName: "ε"))
    var eps: Real = Real(0.1)

    @Option(help: "Iterations per restart (default \(PGD.defaultSteps) for pgd, \(APGD.defaultSteps) for apgd and apgd-t).")
    var steps: Int?

    @Option(help: ArgumentHelp("PGD step size α, e.g. 0.01 or 2/255 (default 2.5·ε/steps).", valueName: "α"))
    var stepSize: Real?

    @Option(help: ArgumentHelp("PGD step size as a multiple of ε (α = r·ε).", valueName: "r"))
    var relativeStepSize: Real?

    @Option(help: "Restarts (pgd, apgd, apgd-t); later restarts attack only inputs not yet fooled (default 1).")
    var restarts: Int?

    @Option(help: "apgd-t: how many target classes to try, those with the highest clean logits after the true class (default \(APGDT.defaultTargetClasses)).")
    var targetClasses: Int?

    @Option(help: ArgumentHelp("apgd, apgd-t: ρ of the step-size checkpoints (default 0.75).", valueName: "ρ"))
    var rho: Real?

    @Option(help: ArgumentHelp("mi-fgsm: momentum decay μ (default 1).", valueName: "μ"))
    var decay: Real?

    @Option(help: ArgumentHelp("deepfool: overshoot of each step (default 0.02).", valueName: "η"))
    var overshoot: Real?

    @Option(help: "cw: binary-search steps over the constant c (default 9).")
    var binarySearchSteps: Int?

    @Option(help: ArgumentHelp("cw: Adam's learning rate (default 0.01).", valueName: "rate"))
    var learningRate: Real?

    @Option(help: ArgumentHelp("cw: confidence κ, the logit margin an adversarial example must have (default 0).", valueName: "κ"))
    var confidence: Real?

    @Option(help: ArgumentHelp("cw: initial constant c (default 0.001).", valueName: "c"))
    var initialConst: Real?

    @Flag(help: "cw: run every step of every binary-search step (no abort when the loss stops falling).")
    var noAbortEarly = false

    @Option(help: ArgumentHelp("ddn: factor γ by which the norm budget shrinks or grows each step (default 0.05).", valueName: "γ"))
    var gamma: Real?

    @Option(help: ArgumentHelp("ddn: initial norm budget ε₀ (default 1).", valueName: "ε₀"))
    var initEps: Real?

    @Option(help: "square: model evaluations per input at most (default \(Square.defaultQueries)).")
    var queries: Int?

    @Option(help: ArgumentHelp("square: initial fraction of the image a window covers (default 0.8).", valueName: "p"))
    var pInit: Real?

    @Option(help: ArgumentHelp("square, --suite autoattack: the image shape of the input features, e.g. 28x28 or 32x32x3 (inferred for square images).", valueName: "HxWxC"))
    var image: String?

    @Flag(help: "square: stretch the window schedule to --queries (the Square paper's code and torchattacks) instead of AutoAttack's fixed one.")
    var rescaleSchedule = false

    @Flag(help: "Start PGD at the clean input instead of a random point of the ε-ball.")
    var noRandomStart = false

    @Option(help: "Attack loss: ce (cross-entropy, default), margin (C&W) or dlr; apgd-t always uses the targeted DLR loss.")
    var loss: AttackLoss?

    @Option(help: ArgumentHelp("Targeted attack: a class index, or 'random' (a random class other than the true one).", valueName: "class|random"))
    var targeted: TargetSelection?

    @Flag(help: "Attack the model's clean predictions instead of the true labels (avoids label leaking).")
    var usePredictions = false

    func validate() throws {
        let spec = try spec()
        do { _ = try spec.makeAttack(epsilon: eps.value) } catch { throw ValidationError("--eps: \(error)") }
        if targeted != nil && usePredictions {
            throw ValidationError("--use-predictions applies to untargeted attacks; a targeted attack pushes toward --targeted")
        }
    }

    /// The attack these flags describe.
    func spec() throws -> AttackSpec {
        if let suite {
            guard attack == nil else { throw ValidationError("give --attack or --suite, not both") }
            guard suite == "autoattack" else { throw ValidationError("--suite: unknown suite '\(suite)' (known: autoattack)") }
            let flags = [("--steps", steps != nil), ("--restarts", restarts != nil), ("--step-size", stepSize != nil),
                         ("--relative-step-size", relativeStepSize != nil), ("--no-random-start", noRandomStart),
                         ("--target-classes", targetClasses != nil), ("--rho", rho != nil), ("--loss", loss != nil),
                         ("--p-init", pInit != nil), ("--rescale-schedule", rescaleSchedule), ("--targeted", targeted != nil),
                         ("--decay", decay != nil), ("--overshoot", overshoot != nil),
                         ("--binary-search-steps", binarySearchSteps != nil), ("--learning-rate", learningRate != nil),
                         ("--confidence", confidence != nil), ("--initial-const", initialConst != nil), ("--no-abort-early", noAbortEarly),
                         ("--gamma", gamma != nil), ("--init-eps", initEps != nil)]
            if let misplaced = flags.first(where: \.1) {
                throw ValidationError("\(misplaced.0) does not apply to --suite autoattack (its attacks have AutoAttack's fixed settings; --queries sets Square's budget)")
            }
            do {
                return .autoattack(try AutoAttackSuite.Parameters(norm: norm ?? .linf, squareQueries: queries ?? Square.defaultQueries, image: try imageShape()))
            } catch {
                throw ValidationError("\(error)")
            }
        }
        let attack = self.attack ?? "pgd"
        let norm = self.norm ?? (["cw", "ddn"].contains(attack) ? .l2 : .linf)
        do {
            let given: [(flag: String, given: Bool, attacks: Set<String>)] = [
                ("--steps", steps != nil, ["pgd", "mi-fgsm", "apgd", "apgd-t", "fab-t", "deepfool", "cw", "ddn"]), ("--decay", decay != nil, ["mi-fgsm"]),
                ("--overshoot", overshoot != nil, ["deepfool"]), ("--restarts", restarts != nil, ["pgd", "apgd", "apgd-t", "square"]),
                ("--queries", queries != nil, ["square"]), ("--image", image != nil, ["square"]), ("--p-init", pInit != nil, ["square"]), ("--rescale-schedule", rescaleSchedule, ["square"]),
                ("--step-size", stepSize != nil, ["pgd", "mi-fgsm"]), ("--relative-step-size", relativeStepSize != nil, ["pgd"]),
                ("--no-random-start", noRandomStart, ["pgd"]), ("--target-classes", targetClasses != nil, ["apgd-t", "fab-t"]),
                ("--rho", rho != nil, ["apgd", "apgd-t"]), ("--binary-search-steps", binarySearchSteps != nil, ["cw"]),
                ("--learning-rate", learningRate != nil, ["cw"]), ("--confidence", confidence != nil, ["cw"]),
                ("--initial-const", initialConst != nil, ["cw"]), ("--no-abort-early", noAbortEarly, ["cw"]),
                ("--gamma", gamma != nil, ["ddn"]), ("--init-eps", initEps != nil, ["ddn"]), ("--loss", loss != nil, ["fgsm", "pgd", "mi-fgsm", "apgd"]),
                ("--targeted", targeted != nil, ["fgsm", "pgd", "mi-fgsm", "apgd", "square"]),
            ]
            if AttackSpec.types.contains(attack), let misplaced = given.first(where: { $0.given && !$0.attacks.contains(attack) }) {
                throw ValidationError("\(misplaced.flag) applies to \(misplaced.attacks.sorted().joined(separator: ", ")), not \(attack)")
            }
            let loss = self.loss ?? .crossEntropy
            switch attack {
            case "fgsm":
                return .fgsm(FGSM.Parameters(norm: norm, loss: loss))
            case "pgd":
                return .pgd(try Self.pgdParameters(norm: norm, loss: loss, steps: steps ?? PGD.defaultSteps, stepSize: stepSize,
                                                   relativeStepSize: relativeStepSize, restarts: restarts, noRandomStart: noRandomStart,
                                                   flagPrefix: "--"))
            case "apgd":
                return .apgd(try APGD.Parameters(norm: norm, loss: loss, steps: steps ?? APGD.defaultSteps, restarts: restarts ?? 1,
                                                 rho: rho?.value ?? 0.75))
            case "apgd-t":
                return .apgdTargeted(try APGDT.Parameters(norm: norm, steps: steps ?? APGD.defaultSteps, restarts: restarts ?? 1,
                                                          targetClasses: targetClasses ?? APGDT.defaultTargetClasses, rho: rho?.value ?? 0.75))
            case "mi-fgsm":
                return .miFGSM(try MIFGSM.Parameters(norm: norm, loss: loss, steps: steps ?? MIFGSM.defaultSteps, stepSize: stepSize?.value,
                                                     decay: decay?.value ?? 1))
            case "deepfool":
                return .deepFool(try DeepFool.Parameters(norm: norm, steps: steps ?? 50, overshoot: overshoot?.value ?? 0.02))
            case "cw":
                return .carliniWagner(try CarliniWagner.Parameters(
                    norm: norm, steps: steps ?? CarliniWagner.defaultSteps, binarySearchSteps: binarySearchSteps ?? 9,
                    learningRate: learningRate?.value ?? 0.01, confidence: confidence?.value ?? 0, initialConst: initialConst?.value ?? 1e-3,
                    abortEarly: !noAbortEarly))
            case "ddn":
                return .ddn(try DDN.Parameters(norm: norm, steps: steps ?? DDN.defaultSteps, gamma: gamma?.value ?? 0.05,
                                               initialEpsilon: initEps?.value ?? 1))
            case "fab-t":
                return .fabTargeted(try FAB.Parameters(norm: norm, steps: steps ?? 100, targetClasses: targetClasses ?? APGDT.defaultTargetClasses))
            case "square":
                return .square(try Square.Parameters(norm: norm, queries: queries ?? Square.defaultQueries, pInit: pInit?.value ?? 0.8,
                                                     restarts: restarts ?? 1, image: try imageShape(), rescaleSchedule: rescaleSchedule))
            default:
                throw ValidationError("--attack: unknown attack '\(attack)' (known: \(AttackSpec.types.joined(separator: ", ")))")
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// `--image HxW` or `HxWxC`.
    func imageShape() throws -> Square.ImageShape? {
        guard let image else { return nil }
        let parts = image.lowercased().split(separator: "x").map { Int($0) }
        guard (2...3).contains(parts.count), parts.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--image must be HxW or HxWxC with positive integers (e.g. 28x28, 32x32x3), got '\(image)'")
        }
        return Square.ImageShape(height: parts[0]!, width: parts[1]!, channels: parts.count == 3 ? parts[2]! : 1)
    }

    var goal: AttackGoal { AttackGoal(targets: targeted, labels: usePredictions ? .predictions : .trueLabels) }

    /// PGD's parameters from flags (`attack`'s, or `train`'s with the `--train-` prefix).
    static func pgdParameters(norm: Norm, loss: AttackLoss, steps: Int, stepSize: Real?, relativeStepSize: Real?,
                              restarts: Int?, noRandomStart: Bool, flagPrefix: String) throws -> PGD.Parameters {
        if stepSize != nil && relativeStepSize != nil {
            throw ValidationError("give \(flagPrefix)step-size or \(flagPrefix)relative-step-size, not both")
        }
        let size: PGD.StepSize? = stepSize.map { .absolute($0.value) } ?? relativeStepSize.map { .relative($0.value) }
        return try PGD.Parameters(norm: norm, loss: loss, steps: steps, stepSize: size, restarts: restarts ?? 1, randomStart: !noRandomStart)
    }
}

import Attacks
import NeuralNet
import TensorCore

/// Checks that catch evaluations which look fine but are wrong (a weak or broken attack, gradient
/// masking), after Carlini et al., 2019, "On Evaluating Adversarial Robustness". Each has an ID and
/// a section in docs/sanity-checks.md explaining it and its fix. A failed check is a warning in the
/// report, and an error with `bulwark bench --strict`.
public enum SanityCheck: String, CaseIterable, Sendable {
    case accuracyRisesWithEpsilon = "BW001"
    case iterativeWeakerThanSingleStep = "BW002"
    case largeEpsilonNotBroken = "BW003"
    case degenerateGradients = "BW004"
    case blackBoxBeatsWhiteBox = "BW005"
    case randomizedModel = "BW006"
    case probabilityOutputs = "BW007"
    case notConverged = "BW008"
    case certifiedButBroken = "BW009"

    public var title: String {
        switch self {
        case .accuracyRisesWithEpsilon: return "accuracy must not rise with ε"
        case .iterativeWeakerThanSingleStep: return "the strongest iterative attack must break the examples FGSM breaks"
        case .largeEpsilonNotBroken: return "at a very large ε the attack must fool every input, starting from the clean input"
        case .degenerateGradients: return "input gradients at random starts must be neither zero nor NaN"
        case .blackBoxBeatsWhiteBox: return "a black-box attack must not fool inputs the gradient attacks missed"
        case .randomizedModel: return "two forward passes of the same input must give the same logits"
        case .probabilityOutputs: return "the model must output logits, not probabilities"
        case .notConverged: return "the strongest attack must have converged: its last doubling of iterations fools almost nothing new"
        case .certifiedButBroken: return "no example certified robust may be broken by an attack at the same norm and ε"
        }
    }

    public var documentation: String {
        "docs/sanity-checks.md#\(rawValue.lowercased())"
    }

    func result(passed: Bool, _ message: String) -> BenchReport.CheckResult {
        BenchReport.CheckResult(id: rawValue, title: title, passed: passed, message: message, documentation: documentation)
    }
}

/// Runs the sanity checks of one model's results.
struct SanityChecker {
    /// Accuracy may rise by this much (statistical noise of random starts) before a check fails.
    let tolerance: Double
    /// Largest accuracy accepted at a very large ε.
    static let largeEpsilonLimit = 0.05
    /// Largest fraction of examples with an all-zero input gradient.
    static let zeroGradientLimit = 0.01

    init(n: Int) {
        tolerance = max(0.005, 5 / Double(max(n, 1)))
    }

    /// One certificate's certified examples, for BW009.
    struct CertifiedOutcomes {
        let method: String
        let norm: Norm
        let epsilon: Float
        let certified: [Bool]
    }

    /// BW009: a certificate proves that no input in the ball changes the class, an attack finds
    /// one: an example that is both is a bug in the certifier or in the attack (or the model is not
    /// the one certified). Compared with the per-example worst case over the attacks of the norm.
    func certifiedNotBroken(_ certificates: [CertifiedOutcomes], robust: (Norm, Float) -> [Bool]?) -> BenchReport.CheckResult {
        var problems: [String] = []
        var compared = 0
        for certificate in certificates {
            guard let flags = robust(certificate.norm, certificate.epsilon) else { continue }
            compared += 1
            let broken = certificate.certified.indices.filter { certificate.certified[$0] && !flags[$0] }
            if !broken.isEmpty {
                problems.append("\(certificate.method) \(certificate.norm.rawValue) ε=\(formatEpsilon(certificate.epsilon)) certifies \(broken.count) "
                                + "example(s) an attack broke (indices \(broken.prefix(5).map(String.init).joined(separator: ", "))\(broken.count > 5 ? ", …" : ""))")
            }
        }
        if !problems.isEmpty { return SanityCheck.certifiedButBroken.result(passed: false, problems.joined(separator: "; ")) }
        return SanityCheck.certifiedButBroken.result(passed: true, compared == 0
            ? "no attack ran at a certified norm and ε, nothing to compare"
            : "every certified example resisted every attack (\(compared) certificate(s) compared)")
    }

    /// BW001: for every attack and for the worst case of each norm, accuracy must not increase with ε.
    func monotonicity(clean: Double, results: [BenchReport.AttackResult], worstCase: [BenchReport.WorstCase],
                      attacks: [BenchConfiguration.AttackEntry]) -> BenchReport.CheckResult {
        var problems: [String] = []
        let start: [(Float, Double)] = [(0, clean)]
        var series: [(String, [(Float, Double)])] = attacks.map { attack in
            (attack.name, start + results.filter { $0.attack == attack.name }.map { ($0.epsilon, $0.accuracy.accuracy) })
        }
        let norms = attacks.map(\.spec.norm).reduce(into: [Norm]()) { if !$0.contains($1) { $0.append($1) } }
        for norm in norms {
            let name = norms.count > 1 ? "worst case \(norm.rawValue)" : "worst case"
            series.append((name, start + worstCase.filter { ($0.norm ?? .linf) == norm }.map { ($0.epsilon, $0.accuracy.accuracy) }))
        }
        for (name, points) in series {
            for (a, b) in zip(points, points.dropFirst()) where b.1 > a.1 + tolerance {
                problems.append("\(name): \(a.1) at ε = \(formatEpsilon(a.0)) but \(b.1) at ε = \(formatEpsilon(b.0))")
            }
        }
        return SanityCheck.accuracyRisesWithEpsilon.result(
            passed: problems.isEmpty,
            problems.isEmpty ? "accuracy is non-increasing in ε for every attack" : problems.joined(separator: "; "))
    }

    /// The per-example robustness of one attack at one ε (true: the example resisted).
    struct ExampleOutcomes {
        let attack: BenchConfiguration.AttackEntry
        let epsilon: Float
        let robust: [Bool]
        /// Iterative attacks: the iteration each input was first fooled at (−1 never), and the
        /// iterations of one run (restart or target).
        var fooledAt: [Int]? = nil
        var runLength: Int? = nil

        /// Inputs first fooled in the second half of a run (its last doubling of iterations).
        var lateFooled: Int? {
            guard let fooledAt, let runLength, runLength >= 2 else { return nil }
            return fooledAt.filter { $0 > 0 && ($0 - 1) % runLength + 1 > runLength / 2 }.count
        }
    }

    /// BW008: convergence (Croce & Hein, 2020; Carlini et al., 2019, §5.2). At every norm and ε, the
    /// strongest untargeted iterative attack must fool at most max(0.5%, 5/n) of the examples in the
    /// second half of its runs (a suite, which has no per-iteration record, is skipped) (from steps/2 to steps, in every restart or target run): if its last
    /// doubling of iterations still lowers accuracy by more, more iterations would lower it further.
    /// Other attacks' figures are reported too, for information (the report's `convergence` curves
    /// have every attack's accuracy at 10, 20, 50, 100, … iterations).
    func convergence(_ outcomes: [ExampleOutcomes]) -> BenchReport.CheckResult {
        var problems: [String] = [], findings: [String] = []
        let untargeted = outcomes.filter { !$0.attack.goal.isTargeted && $0.attack.isIterative }
        let cells = untargeted.map { Cell(norm: $0.attack.spec.norm, epsilon: $0.epsilon) }.reduce(into: [Cell]()) { if !$0.contains($1) { $0.append($1) } }
        for cell in cells {
            let here = untargeted.filter { Cell(norm: $0.attack.spec.norm, epsilon: $0.epsilon) == cell }
            guard let strongest = here.min(by: { $0.robust.filter { $0 }.count < $1.robust.filter { $0 }.count }) else { continue }
            let n = max(strongest.robust.count, 1)
            if strongest.lateFooled == nil { findings.append("\(strongest.attack.name) at ε = \(formatEpsilon(cell.epsilon)) (strongest): no per-iteration record") }
            for outcome in here {
                guard let late = outcome.lateFooled else { continue }
                let drop = Double(late) / Double(n)
                let text = "\(outcome.attack.name) at ε = \(formatEpsilon(cell.epsilon)): \(String(format: "%.2f", drop * 100)) pp"
                if outcome.attack.name == strongest.attack.name && drop > tolerance {
                    problems.append(text + " in the last doubling of its \(outcome.runLength!) iterations per run")
                } else {
                    findings.append(text + (outcome.attack.name == strongest.attack.name ? " (strongest)" : ""))
                }
            }
        }
        if cells.isEmpty { return SanityCheck.notConverged.result(passed: true, "no iterative untargeted attack") }
        return SanityCheck.notConverged.result(
            passed: problems.isEmpty,
            problems.isEmpty ? "accuracy lowered by the second half of each run: " + findings.joined(separator: ", ")
                : problems.joined(separator: "; ") + ": run the strongest attack with more steps or restarts (other attacks: "
                    + findings.joined(separator: ", ") + ")")
    }

    /// BW002, per example: at every ε and norm, the strongest untargeted iterative attack (the one
    /// leaving the lowest accuracy) must break the examples a single-step attack (FGSM) breaks.
    /// Examples FGSM breaks but the strongest misses show that it has not converged (Carlini et al.,
    /// 2019, §5.3), even when its aggregate accuracy is lower. (Two strong iterative attacks break
    /// partly different examples, which is why suites combine them; that is not a failure.) Also
    /// fails if an iterative attack's aggregate accuracy exceeds FGSM's.
    func strongestBreaksWhatWeakerBreak(_ outcomes: [ExampleOutcomes]) -> BenchReport.CheckResult {
        var problems: [String] = [], findings: [String] = []
        let untargeted = outcomes.filter { !$0.attack.goal.isTargeted }
        let cells = untargeted.map { Cell(norm: $0.attack.spec.norm, epsilon: $0.epsilon) }.reduce(into: [Cell]()) { if !$0.contains($1) { $0.append($1) } }
        for cell in cells {
            let here = untargeted.filter { Cell(norm: $0.attack.spec.norm, epsilon: $0.epsilon) == cell }
            let count = { (o: ExampleOutcomes) in o.robust.filter { $0 }.count }
            guard let strongest = here.filter(\.attack.isIterative).min(by: { count($0) < count($1) }) else { continue }
            let n = strongest.robust.count
            var missed = 0
            let singleStep = here.filter { !$0.attack.isIterative && $0.robust.count == n }
            guard !singleStep.isEmpty else { continue }
            for i in 0..<n where strongest.robust[i] && singleStep.contains(where: { !$0.robust[i] }) { missed += 1 }
            let label = "\(strongest.attack.name) at ε = \(formatEpsilon(cell.epsilon))\(cells.contains { $0.norm != cell.norm } ? " (\(cell.norm.rawValue))" : "")"
            if Double(missed) > tolerance * Double(n) {
                problems.append("\(label) missed \(missed) examples that \(singleStep.map(\.attack.name).joined(separator: " or ")) broke")
            } else {
                findings.append("\(label): \(missed)")
            }
            for single in here where !single.attack.isIterative {
                for iterative in here where iterative.attack.spec.isGradientAscent && Double(count(iterative) - count(single)) > tolerance * Double(n) {
                    problems.append("\(iterative.attack.name) leaves \(count(iterative)) robust at ε = \(formatEpsilon(cell.epsilon)), \(single.attack.name) only \(count(single))")
                }
            }
        }
        let message: String
        if !problems.isEmpty {
            message = problems.joined(separator: "; ") + ": run the strongest attack with more steps or restarts, or add APGD-T"
        } else if findings.isEmpty {
            message = "no single-step and iterative untargeted attacks to compare"
        } else {
            message = "examples a single-step attack broke but the strongest iterative one missed: " + findings.joined(separator: ", ")
        }
        return SanityCheck.iterativeWeakerThanSingleStep.result(passed: problems.isEmpty, message)
    }

    private struct Cell: Equatable {
        let norm: Norm
        let epsilon: Float
    }

    /// BW003: PGD at an ε that covers the whole input cube must fool every correctly classified
    /// input (with that budget any image can become any other). It starts at the clean input (no
    /// random start), so flat or zero gradients there show. The attack is the first PGD of the
    /// configuration with its default step size (2.5·ε/steps), untargeted against the true labels;
    /// PGD-20 (L∞) if there is none.
    func largeEpsilon(classifier: any DifferentiableClassifier, data: LabeledData, attack entry: BenchConfiguration.AttackEntry?,
                      seed: UInt64, batchSize: Int) throws -> BenchReport.CheckResult {
        var parameters = try PGD.Parameters(steps: 20)
        var name = "PGD-20"
        if let entry, case .pgd(let configured) = entry.spec {
            parameters = configured
            name = entry.name
        }
        parameters.stepSize = nil
        parameters.randomStart = false
        let epsilon: Float = parameters.norm == .linf ? 1 : Float(data.featureCount).squareRoot()
        let outcome = try AttackRunner(classifier: classifier, batchSize: batchSize)
            .run(try AttackSpec.pgd(parameters).makeAttack(epsilon: epsilon), on: data, seed: seed)
        let missed = outcome.robustCorrect
        return SanityCheck.largeEpsilonNotBroken.result(
            passed: missed == 0,
            "\(name) from the clean input at ε = \(formatEpsilon(epsilon)) (\(parameters.norm.rawValue)) fooled \(outcome.successRate.successes) of "
                + "\(outcome.successRate.trials) correctly classified inputs" + (missed == 0 ? "" : "; \(missed) resisted an unlimited budget"))
    }

    /// BW004: the input gradient of the DLR loss (scale-invariant, so saturation of the softmax does
    /// not hide it; cross-entropy for fewer than 3 classes) at random points of the ε-ball around
    /// the inputs must not be all zero (more than 1% of the examples) or contain NaN. Zero gradients
    /// at random starts mean gradient attacks cannot start (shattered gradients, quantised inputs).
    /// Examples where the loss is flat in the logits themselves are left out (DLR is constant, 1,
    /// where the true class ranks third): there a zero input gradient is the loss's, not the model's.
    /// For DLR they are found by rank, not by a zero logit gradient, which rounding makes exact or
    /// not; for the cross-entropy (two classes) by an all-zero logit gradient (saturated softmax).
    func gradients(classifier: any DifferentiableClassifier, data: LabeledData, epsilon: Float, seed: UInt64) -> BenchReport.CheckResult {
        var zeroRows = 0, nonFiniteRows = 0, counted = 0
        let n = max(data.count, 1)
        let objective = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { objective.deallocate() }
        classifier.reserve(rows: n, shards: 1)
        let loss: AttackLoss = classifier.classCount >= 3 ? .dlr : .crossEntropy
        var start = data.features
        var generator = RandomGenerator(seed: seed, stream: .sanityChecks)
        data.features.withReadOnlyMatrix { clean in
            start.withMatrix { x in
                PerturbationBall(norm: .linf, epsilon: epsilon).randomPoint(x, around: clean, generator: &generator)
                data.labels.withUnsafeBufferPointer { labels in
                    let logits = classifier.logits(x, shard: 0)
                    let logitsGradient = classifier.logitsGradient(shard: 0)
                    loss.evaluate(logits: logits, labels: labels.baseAddress!, targets: nil, objective: objective, gradient: logitsGradient)
                    let flatInLogits = (0..<logits.rows).map { r in
                        loss == .dlr ? AttackLoss.dlrIsConstant(logits: logits.row(r), classes: logits.columns, label: labels[r])
                                     : (0..<logitsGradient.columns).allSatisfy { logitsGradient.row(r)[$0] == 0 }
                    }
                    let g = classifier.inputGradient(shard: 0)
                    for r in 0..<g.rows {
                        let row = UnsafeBufferPointer(start: g.row(r), count: g.columns)
                        if !Kernels.allFinite(row) { nonFiniteRows += 1; continue }
                        guard !flatInLogits[r] else { continue }
                        counted += 1
                        if row.allSatisfy({ $0 == 0 }) { zeroRows += 1 }
                    }
                }
            }
        }
        let zeroFraction = Double(zeroRows) / Double(max(counted, 1))
        let passed = nonFiniteRows == 0 && zeroFraction <= Self.zeroGradientLimit
        return SanityCheck.degenerateGradients.result(
            passed: passed,
            "at random starts in the ε = \(formatEpsilon(epsilon)) L∞ ball, \(zeroRows) of \(counted) examples have an all-zero \(loss.rawValue) "
                + "input gradient (\(data.count - counted - nonFiniteRows) where the loss is flat in the logits are left out); "
                + "\(nonFiniteRows) a NaN or infinite one")
    }

    /// The white-box per-example outcomes at one norm and ε (true: the input resisted every gradient attack).
    struct WhiteBoxOutcomes {
        let norm: Norm
        let epsilon: Float
        let robust: [Bool]
    }

    /// Queries per input of BW005's Square attack.
    static let blackBoxQueries = 1000

    /// BW005, gradient masking (Athalye et al., 2018): Square, which uses no gradient, must not fool
    /// inputs that every gradient attack of the configuration missed at the same norm and ε. When it
    /// does, the gradients mislead the attacks and the white-box numbers overstate robustness.
    /// Allows max(0.5%, 5) of the examples (Square is randomised). Skipped for inputs that are not
    /// square images (Square needs the image shape).
    /// BW005's Square runs on the check examples, one per (norm, ε) given; nil when the inputs are
    /// not square images (Square needs the image shape).
    func blackBoxRuns(classifier: any DifferentiableClassifier, data: LabeledData, cells: [(Norm, Float)],
                      seed: UInt64, batchSize: Int) throws -> [BenchCellResult.BlackBoxRun]? {
        guard Square.ImageShape.inferred(features: data.featureCount) != nil else { return nil }
        return try cells.map { norm, epsilon in
            let attack = try Square(norm: norm, epsilon: epsilon, queries: Self.blackBoxQueries)
            let outcome = try AttackRunner(classifier: classifier, batchSize: batchSize).run(attack, on: data, seed: seed)
            return .init(norm: norm, epsilon: epsilon, robust: .accuracy("Square ε=\(formatEpsilon(epsilon))", outcome.robustAccuracy, outcomes: outcome.robust))
        }
    }

    /// BW005 from Square's runs (nil: skipped, the inputs are not square images) and the white-box
    /// outcomes on the whole test set (compared on the check examples).
    func gradientMasking(_ runs: [BenchCellResult.BlackBoxRun]?, whiteBox: [WhiteBoxOutcomes]) -> BenchReport.CheckResult {
        guard let runs else {
            return SanityCheck.blackBoxBeatsWhiteBox.result(passed: true, "skipped: the inputs are not square images")
        }
        var problems: [String] = [], findings: [String] = []
        for cell in whiteBox {
            guard let run = runs.first(where: { $0.norm == cell.norm && $0.epsilon == cell.epsilon }), let square = run.robust.outcomeFlags else { continue }
            let robust = Array(cell.robust.prefix(square.count))
            guard robust.count == square.count else { continue }
            let extra = zip(robust, square).filter { $0 && !$1 }.count
            let label = "ε = \(formatEpsilon(cell.epsilon))\(whiteBox.contains { $0.norm != cell.norm } ? " (\(cell.norm.rawValue))" : "")"
            if Double(extra) > max(0.005 * Double(square.count), 5) {
                problems.append("Square fooled \(extra) of \(square.count) inputs at \(label) that every gradient attack missed")
            } else {
                findings.append("\(label): \(extra)")
            }
        }
        if whiteBox.isEmpty { return SanityCheck.blackBoxBeatsWhiteBox.result(passed: true, "skipped: no iterative gradient attack to compare with") }
        return SanityCheck.blackBoxBeatsWhiteBox.result(
            passed: problems.isEmpty,
            problems.isEmpty ? "inputs Square (\(Self.blackBoxQueries) queries) fooled that every gradient attack missed: " + findings.joined(separator: ", ")
                : problems.joined(separator: "; ") + ": the model masks gradients; treat its gradient-attack accuracy as an upper bound")
    }

    /// BW006: the model is deterministic in evaluation mode: two forward passes of the same inputs
    /// give bit-identical logits. A randomised model (noise, random transforms) defeats attacks that
    /// assume one gradient; evaluate it with expectation over transformation (Athalye et al., 2018).
    func randomness(classifier: any DifferentiableClassifier, data: LabeledData) -> BenchReport.CheckResult {
        classifier.reserve(rows: max(data.count, 1), shards: 1)
        let (first, second) = data.features.withReadOnlyMatrix { x in
            (classifier.logits(x, shard: 0).array, classifier.logits(x, shard: 0).array)
        }
        let differing = (0..<data.count).filter { r in
            let k = classifier.classCount
            return first[(r * k)..<((r + 1) * k)] != second[(r * k)..<((r + 1) * k)]
        }.count
        return SanityCheck.randomizedModel.result(
            passed: differing == 0,
            differing == 0 ? "two forward passes gave identical logits on \(data.count) inputs"
                : "two forward passes differ on \(differing) of \(data.count) inputs: the model is randomised; attack its expectation (EOT)")
    }

    /// BW007: the outputs are logits. If every row is non-negative and sums to 1, the model ends in a
    /// softmax: its cross-entropy saturates and attacks on it are weak (attack the logits instead).
    func probabilityOutputs(classifier: any DifferentiableClassifier, data: LabeledData) -> BenchReport.CheckResult {
        classifier.reserve(rows: max(data.count, 1), shards: 1)
        let k = classifier.classCount
        let outputs = data.features.withReadOnlyMatrix { classifier.logits($0, shard: 0).array }
        let probabilityRows = (0..<data.count).filter { r in
            let row = outputs[(r * k)..<((r + 1) * k)]
            return row.allSatisfy { $0 >= 0 && $0 <= 1 } && abs(row.reduce(0, +) - 1) < 1e-3
        }.count
        let looksLikeProbabilities = data.count > 0 && probabilityRows * 100 >= data.count * 99
        return SanityCheck.probabilityOutputs.result(
            passed: !looksLikeProbabilities,
            looksLikeProbabilities ? "the outputs of \(probabilityRows) of \(data.count) inputs are probabilities (non-negative, summing to 1): "
                + "remove the final softmax and attack the logits" : "the outputs are not probabilities (\(probabilityRows) of \(data.count) rows sum to 1)")
    }
}

extension RandomStream {
    /// Random starts of the sanity checks.
    public static let sanityChecks = RandomStream("sanity checks")
}

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

    public var title: String {
        switch self {
        case .accuracyRisesWithEpsilon: return "accuracy must not rise with ε"
        case .iterativeWeakerThanSingleStep: return "the strongest iterative attack must break the examples FGSM breaks"
        case .largeEpsilonNotBroken: return "a very large ε must drive accuracy near zero"
        case .degenerateGradients: return "input gradients must be neither zero nor NaN"
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
                problems.append("\(name): \(a.1) at ε = \(format(a.0)) but \(b.1) at ε = \(format(b.0))")
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
            let label = "\(strongest.attack.name) at ε = \(format(cell.epsilon))\(cells.contains { $0.norm != cell.norm } ? " (\(cell.norm.rawValue))" : "")"
            if Double(missed) > tolerance * Double(n) {
                problems.append("\(label) missed \(missed) examples that \(singleStep.map(\.attack.name).joined(separator: " or ")) broke")
            } else {
                findings.append("\(label): \(missed)")
            }
            for single in here where !single.attack.isIterative {
                for iterative in here where iterative.attack.isIterative && Double(count(iterative) - count(single)) > tolerance * Double(n) {
                    problems.append("\(iterative.attack.name) leaves \(count(iterative)) robust at ε = \(format(cell.epsilon)), \(single.attack.name) only \(count(single))")
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

    /// BW003: PGD at an ε that covers the whole input cube must leave (almost) nothing correct.
    /// The attack is the first iterative one of the configuration with its default step size
    /// (2.5·ε/steps), untargeted against the true labels; PGD-20 (L∞) if there is none.
    func largeEpsilon(classifier: any DifferentiableClassifier, data: LabeledData, attack entry: BenchConfiguration.AttackEntry?,
                      seed: UInt64, batchSize: Int) throws -> BenchReport.CheckResult {
        let name = entry?.name ?? "PGD-20"
        var parameters = try PGD.Parameters(steps: 20)
        if case .pgd(let configured)? = entry?.spec {
            parameters = configured
            parameters.stepSize = nil
        }
        let epsilon: Float = parameters.norm == .linf ? 1 : Float(data.featureCount).squareRoot()
        let outcome = try AttackRunner(classifier: classifier, batchSize: batchSize)
            .run(try AttackSpec.pgd(parameters).makeAttack(epsilon: epsilon), on: data, seed: seed)
        let accuracy = outcome.adversarialAccuracy.value
        return SanityCheck.largeEpsilonNotBroken.result(
            passed: accuracy <= Self.largeEpsilonLimit,
            "\(name) at ε = \(format(epsilon)) (\(parameters.norm.rawValue)) leaves accuracy \(accuracy) on \(data.count) examples"
                + (accuracy <= Self.largeEpsilonLimit ? "" : " (expected ≤ \(Self.largeEpsilonLimit))"))
    }

    /// BW004: the cross-entropy input gradient at clean inputs must not be all zero or contain NaN.
    func gradients(classifier: any DifferentiableClassifier, data: LabeledData) -> BenchReport.CheckResult {
        var zeroRows = 0, nonFiniteRows = 0
        var features = data.features
        let objective = UnsafeMutablePointer<Float>.allocate(capacity: max(data.count, 1))
        defer { objective.deallocate() }
        classifier.reserve(rows: max(data.count, 1), shards: 1)
        features.withMatrix { x in
            data.labels.withUnsafeBufferPointer { labels in
                let logits = classifier.logits(x, shard: 0)
                AttackLoss.crossEntropy.evaluate(logits: logits, labels: labels.baseAddress!, targets: nil,
                                                 objective: objective, gradient: classifier.logitsGradient(shard: 0))
                let g = classifier.inputGradient(shard: 0)
                for r in 0..<g.rows {
                    let row = UnsafeBufferPointer(start: g.row(r), count: g.columns)
                    if !Kernels.allFinite(row) { nonFiniteRows += 1 } else if row.allSatisfy({ $0 == 0 }) { zeroRows += 1 }
                }
            }
        }
        let zeroFraction = Double(zeroRows) / Double(max(data.count, 1))
        let passed = nonFiniteRows == 0 && zeroFraction <= Self.zeroGradientLimit
        return SanityCheck.degenerateGradients.result(
            passed: passed,
            "\(zeroRows) of \(data.count) examples have an all-zero input gradient, \(nonFiniteRows) a NaN or infinite one")
    }
}

import Attacks
import Certification
import Foundation
import NeuralNet
import TensorCore

/// Evaluates one model under a bench configuration: clean accuracy, accuracy under every attack at
/// every ε of its grid, the per-example worst case over the attacks of each norm, timing, metrics
/// (with per-example outcomes) and the sanity checks.
public struct BenchRunner {
    public let configuration: BenchConfiguration
    /// Progress messages.
    public var log: (String) -> Void = { _ in }

    public init(configuration: BenchConfiguration) {
        self.configuration = configuration
    }

    /// - Parameters:
    ///   - name, path, sha256: how the report names the model.
    ///   - test: the test examples (already limited to the configured n).
    /// - Throws: `BenchError.modelMismatch` if the model does not fit the data, `AttackError` from attacks.
    public func evaluate(_ network: Sequential, name: String, path: String, sha256: String,
                         test: LabeledData) throws -> BenchReport.ModelResult {
        guard network.inputWidth == test.featureCount else {
            throw BenchError.modelMismatch("model '\(name)' expects \(network.inputWidth) features, the data has \(test.featureCount)")
        }
        guard test.classCount <= network.classCount else {
            throw BenchError.modelMismatch("model '\(name)' has \(network.classCount) classes, the data \(test.classCount)")
        }
        // Certifiers first: a model a method cannot bound is refused before the attacks run.
        let certifiers = try configuration.certification.map { entry in
            (entry, try Certifier(network, method: entry.method, norm: entry.norm))
        }
        let runner = AttackRunner(classifier: network, batchSize: configuration.batchSize ?? 500)
        let cleanPredictions = runner.predictions(test.features)
        let cleanCorrect = zip(cleanPredictions, test.labels).map { $0 == $1 }
        let clean = Proportion(successes: cleanCorrect.filter { $0 }.count, trials: test.count)
        log("\(name): clean accuracy \(clean.value) (n = \(test.count))")

        var results: [BenchReport.AttackResult] = []
        var worstCase: [BenchReport.WorstCase] = []
        var metrics = [Metric.accuracy("clean", clean, outcomes: cleanCorrect)]
        var robust: [WorstCaseKey: [Bool]] = [:]
        var outcomes: [SanityChecker.ExampleOutcomes] = []
        var whiteBox: [WorstCaseKey: [Bool]] = [:]
        for epsilon in gridUnion() where epsilon > 0 {
            for entry in configuration.attacks where entry.grid(in: configuration).contains(epsilon) {
                let attack = try entry.makeAttack(epsilon: epsilon)
                let outcome = try runner.run(attack, on: test, goal: entry.goal, seed: Self.attackSeed(configuration.seed, attack: entry.name, epsilon: epsilon),
                                             cleanPredictions: cleanPredictions)
                let correct = outcome.robust
                let accuracy = Proportion(successes: correct.filter { $0 }.count, trials: test.count)
                outcomes.append(.init(attack: entry, epsilon: epsilon, robust: correct, fooledAt: outcome.fooledAt,
                                      runLength: entry.spec.iterationBudget(classes: network.classCount)?.run))
                let key = WorstCaseKey(norm: attack.norm, epsilon: epsilon)
                robust[key] = zip(robust[key] ?? cleanCorrect, correct).map { $0 && $1 }
                // BW005 compares Square with the iterative gradient attacks (not FGSM, not suites that contain Square).
                if entry.spec.isIterative && !entry.spec.isBlackBox && entry.spec.type != "autoattack" {
                    whiteBox[key] = zip(whiteBox[key] ?? cleanCorrect, correct).map { $0 && $1 }
                }
                var result = BenchReport.AttackResult(
                    attack: entry.name, description: attack.description, norm: attack.norm, epsilon: epsilon,
                    accuracy: .init(accuracy), success: outcome.successRate,
                    meanPerturbation: outcome.meanPerturbation, maxPerturbation: outcome.maxPerturbation,
                    seconds: outcome.seconds, imagesPerSecond: outcome.imagesPerSecond)
                result.convergence = Self.convergence(of: outcome, budget: entry.spec.iterationBudget(classes: network.classCount))
                result.minimalNorm = Self.minimalNorm(of: outcome, epsilon: epsilon)
                results.append(result)
                metrics.append(.accuracy(BenchReport.ModelResult.metricName(attack: entry.name, epsilon: epsilon),
                                         accuracy, outcomes: correct))
                log("\(name): \(entry.name) ε = \(formatEpsilon(epsilon)): robust accuracy \(accuracy.value) "
                    + "(\(Int(outcome.imagesPerSecond)) images/s)")
            }
            for norm in MarkdownReport.norms(of: configuration) {
                guard let flags = robust[WorstCaseKey(norm: norm, epsilon: epsilon)] else { continue }
                let accuracy = Proportion(successes: flags.filter { $0 }.count, trials: test.count)
                worstCase.append(.init(norm: norm, epsilon: epsilon, accuracy: .init(accuracy)))
                metrics.append(.accuracy(BenchReport.ModelResult.worstCaseName(norm: norm, epsilon: epsilon), accuracy, outcomes: flags))
            }
        }
        var certified: [BenchReport.CertifiedResult] = []
        var certifiedOutcomes: [SanityChecker.CertifiedOutcomes] = []
        for (entry, certifier) in certifiers {
            for epsilon in entry.grid(in: configuration) {
                let result = try certifier.certify(test, epsilon: Double(epsilon))
                let accuracy = result.certifiedAccuracy
                certified.append(.init(method: entry.method.rawValue, norm: entry.norm, epsilon: epsilon, accuracy: .init(accuracy),
                                       seconds: result.seconds))
                metrics.append(.accuracy(BenchReport.ModelResult.certifiedName(method: entry.method, norm: entry.norm, epsilon: epsilon),
                                         accuracy, outcomes: result.certified))
                certifiedOutcomes.append(.init(method: entry.method.displayName, norm: entry.norm, epsilon: epsilon, certified: result.certified))
                log("\(name): certified by \(entry.method.displayName) at \(entry.norm.rawValue) ε = \(formatEpsilon(epsilon)): \(accuracy.value) "
                    + "(\(String(format: "%.1f", result.seconds)) s)")
            }
        }
        let whiteBoxCells = whiteBox.keys.sorted { ($0.norm.rawValue, $0.epsilon) < ($1.norm.rawValue, $1.epsilon) }
            .map { SanityChecker.WhiteBoxOutcomes(norm: $0.norm, epsilon: $0.epsilon, robust: whiteBox[$0]!) }
        var checks = try sanityChecks(network, clean: clean.value, results: results, worstCase: worstCase, outcomes: outcomes,
                                      whiteBox: whiteBoxCells, test: test)
        if !certifiers.isEmpty {
            checks.append(SanityChecker(n: test.count).certifiedNotBroken(certifiedOutcomes) { norm, epsilon in
                robust[WorstCaseKey(norm: norm, epsilon: epsilon)]
            })
        }
        var result = BenchReport.ModelResult(
            name: name, path: path, sha256: sha256, architecture: network.spec.shorthand, parameters: network.parameterCount,
            clean: .init(clean), attacks: results, worstCase: worstCase, checks: checks, metrics: metrics)
        result.certified = certifiers.isEmpty ? nil : certified
        return result
    }

    /// The seed of one attack at one ε: derived from the configuration's seed, the attack's name and
    /// ε, so no two cells of a bench share random starts and adding an attack changes no other cell.
    public static func attackSeed(_ seed: UInt64, attack: String, epsilon: Float) -> UInt64 {
        var generator = RandomGenerator(seed: seed, stream: RandomStream("bench attack \(attack) at ε bits \(epsilon.bitPattern)"))
        return generator.next()
    }

    /// Robust accuracy after 10, 20, 50, 100, 200, 500, … iterations, at the end of every run
    /// (restart or target), and at the end of the budget.
    static func convergence(of outcome: AttackOutcome, budget: (total: Int, run: Int)?) -> [BenchReport.AttackResult.ConvergencePoint]? {
        guard let budget, outcome.fooledAt != nil else { return nil }
        var points = Set([budget.total])
        var decade = 10
        while decade < budget.total {
            for step in [decade, 2 * decade, 5 * decade] where step < budget.total { points.insert(step) }
            decade *= 10
        }
        for end in stride(from: budget.run, to: budget.total, by: max(budget.run, 1)) { points.insert(end) }
        points.insert(budget.total / 2)
        return points.filter { $0 > 0 }.sorted().map { .init(iterations: $0, accuracy: outcome.robustAccuracy(afterIterations: $0)!.value) }
    }

    /// A minimum-norm attack's per-example norms, median and accuracy curve (nil for other attacks).
    static func minimalNorm(of outcome: AttackOutcome, epsilon: Float) -> BenchReport.AttackResult.MinimalNorm? {
        guard let norms = outcome.minimalNorms,
              let summary = outcome.minimalNormSummary(epsilons: [0.25, 0.5, 1, 2, 4].map { $0 * epsilon }) else { return nil }
        return .init(median: summary.median.isFinite ? summary.median : nil, norms: norms.map { $0.isFinite ? $0 : nil },
                     curve: summary.curve.map { .init(epsilon: $0.epsilon, accuracy: $0.accuracy.value) })
    }

    /// Every ε of any attack's grid, increasing.
    func gridUnion() -> [Float] {
        Array(Set(configuration.attacks.flatMap { $0.grid(in: configuration) })).sorted()
    }

    private struct WorstCaseKey: Hashable {
        let norm: Norm
        let epsilon: Float
    }

    private func sanityChecks(_ network: Sequential, clean: Double, results: [BenchReport.AttackResult],
                              worstCase: [BenchReport.WorstCase], outcomes: [SanityChecker.ExampleOutcomes],
                              whiteBox: [SanityChecker.WhiteBoxOutcomes], test: LabeledData) throws -> [BenchReport.CheckResult] {
        let checker = SanityChecker(n: test.count)
        let checkSlice = test.prefix(configuration.checkExamples ?? 500)
        var checks = [
            checker.monotonicity(clean: clean, results: results, worstCase: worstCase, attacks: configuration.attacks),
            checker.strongestBreaksWhatWeakerBreak(outcomes),
            checker.convergence(outcomes),
        ]
        if checkSlice.count > 0 {
            let seed = Self.attackSeed(configuration.seed, attack: "sanity checks", epsilon: 0)
            let batchSize = configuration.batchSize ?? 500
            checks.append(try checker.largeEpsilon(classifier: network, data: checkSlice,
                                                   attack: configuration.attacks.first { if case .pgd = $0.spec { true } else { false } },
                                                   seed: seed, batchSize: batchSize))
            let largestLinf = gridUnion().filter { epsilon in configuration.attacks.contains { $0.spec.norm == .linf && $0.grid(in: configuration).contains(epsilon) } }.max()
            checks.append(checker.gradients(classifier: network, data: checkSlice, epsilon: largestLinf.flatMap { $0 > 0 ? $0 : nil } ?? 0.1, seed: seed))
            checks.append(try checker.gradientMasking(classifier: network, data: checkSlice, whiteBox: whiteBox, seed: seed, batchSize: batchSize))
            checks.append(checker.randomness(classifier: network, data: checkSlice))
            checks.append(checker.probabilityOutputs(classifier: network, data: checkSlice))
        }
        return checks
    }
}

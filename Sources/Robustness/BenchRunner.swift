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

    /// A model as the report names it, with its clean accuracy (and per-example outcomes).
    public struct ModelInfo: Codable, Equatable, Sendable {
        public var name: String
        public var path: String
        public var sha256: String
        public var architecture: String
        public var parameters: Int
        public var clean: Metric
    }

    /// A model ready for its cells: checked against the data and the configuration's certificates,
    /// with its clean predictions.
    public struct PreparedModel {
        public let network: Sequential
        public let info: ModelInfo
        let cleanPredictions: [Int]
        let certifiers: [CertificationMethod.RawValue: Certifier]
    }

    /// - Parameters:
    ///   - name, path, sha256: how the report names the model.
    ///   - test: the test examples (already limited to the configured n).
    /// - Throws: `BenchError.modelMismatch` if the model does not fit the data, and a certifier's
    ///   error when a configured method cannot bound the model (before any attack runs).
    public func prepare(_ network: Sequential, name: String, path: String, sha256: String, test: LabeledData) throws -> PreparedModel {
        guard network.inputWidth == test.featureCount else {
            throw BenchError.modelMismatch("model '\(name)' expects \(network.inputWidth) features, the data has \(test.featureCount)")
        }
        guard test.classCount <= network.classCount else {
            throw BenchError.modelMismatch("model '\(name)' has \(network.classCount) classes, the data \(test.classCount)")
        }
        var certifiers: [String: Certifier] = [:]
        for entry in configuration.certification {
            certifiers[Self.certifierKey(entry.method, entry.norm)] = try Certifier(network, method: entry.method, norm: entry.norm)
        }
        let cleanPredictions = AttackRunner(classifier: network, batchSize: configuration.batchSize ?? 500).predictions(test.features)
        let cleanCorrect = zip(cleanPredictions, test.labels).map { $0 == $1 }
        let clean = Proportion(successes: cleanCorrect.filter { $0 }.count, trials: test.count)
        log("\(name): clean accuracy \(clean.value) (n = \(test.count))")
        let info = ModelInfo(name: name, path: path, sha256: sha256, architecture: network.spec.shorthand, parameters: network.parameterCount,
                             clean: .accuracy("clean", clean, outcomes: cleanCorrect))
        return PreparedModel(network: network, info: info, cleanPredictions: cleanPredictions, certifiers: certifiers)
    }

    static func certifierKey(_ method: CertificationMethod, _ norm: Norm) -> String { "\(method.rawValue) \(norm.rawValue)" }

    /// Evaluates one model: all its cells, assembled.
    /// - Throws: as `prepare` and `run`.
    public func evaluate(_ network: Sequential, name: String, path: String, sha256: String,
                         test: LabeledData) throws -> BenchReport.ModelResult {
        let model = try prepare(network, name: name, path: path, sha256: sha256, test: test)
        let cells = try configuration.cells().filter { $0.model == name }.map { try run($0, on: model, test: test) }
        return assemble(model.info, cells: cells, n: test.count)
    }

    /// Runs one of the model's cells.
    /// - Throws: `AttackError` from attacks, `BenchError.invalidConfiguration` for a cell the
    ///   configuration does not have or that belongs to another model.
    public func run(_ cell: BenchCell, on model: PreparedModel, test: LabeledData) throws -> BenchCellResult {
        let name = model.info.name
        guard cell.model == name else { throw BenchError.invalidConfiguration("cell '\(cell)' does not belong to model '\(name)'") }
        switch cell {
        case let .attack(_, attackName, epsilon):
            guard let entry = configuration.attacks.first(where: { $0.name == attackName }) else {
                throw BenchError.invalidConfiguration("the configuration has no attack '\(attackName)'")
            }
            let attack = try entry.makeAttack(epsilon: epsilon)
            let runner = AttackRunner(classifier: model.network, batchSize: configuration.batchSize ?? 500)
            let outcome = try runner.run(attack, on: test, goal: entry.goal, seed: Self.attackSeed(configuration.seed, attack: entry.name, epsilon: epsilon),
                                         cleanPredictions: model.cleanPredictions)
            let correct = outcome.robust
            let accuracy = Proportion(successes: correct.filter { $0 }.count, trials: test.count)
            var result = BenchReport.AttackResult(
                attack: entry.name, description: attack.description, norm: attack.norm, epsilon: epsilon,
                accuracy: .init(accuracy), success: outcome.successRate,
                meanPerturbation: outcome.meanPerturbation, maxPerturbation: outcome.maxPerturbation,
                seconds: outcome.seconds, imagesPerSecond: outcome.imagesPerSecond)
            result.convergence = Self.convergence(of: outcome, budget: entry.spec.iterationBudget(classes: model.network.classCount))
            result.minimalNorm = Self.minimalNorm(of: outcome, epsilon: epsilon)
            log("\(name): \(entry.name) ε = \(formatEpsilon(epsilon)): robust accuracy \(accuracy.value) "
                + "(\(Int(outcome.imagesPerSecond)) images/s)")
            return BenchCellResult(cell: cell, attack: result,
                                   metric: .accuracy(BenchReport.ModelResult.metricName(attack: entry.name, epsilon: epsilon), accuracy, outcomes: correct),
                                   fooledAt: outcome.fooledAt, runLength: entry.spec.iterationBudget(classes: model.network.classCount)?.run)
        case let .certify(_, method, norm, epsilon):
            guard let certifier = model.certifiers[Self.certifierKey(method, norm)] else {
                throw BenchError.invalidConfiguration("the configuration has no \(method.rawValue) \(norm.rawValue) certificate")
            }
            let result = try certifier.certify(test, epsilon: Double(epsilon))
            let accuracy = result.certifiedAccuracy
            log("\(name): certified by \(method.displayName) at \(norm.rawValue) ε = \(formatEpsilon(epsilon)): \(accuracy.value) "
                + "(\(String(format: "%.1f", result.seconds)) s)")
            return BenchCellResult(cell: cell, certified: .init(method: method.rawValue, norm: norm, epsilon: epsilon, accuracy: .init(accuracy),
                                                                seconds: result.seconds),
                                   metric: .accuracy(BenchReport.ModelResult.certifiedName(method: method, norm: norm, epsilon: epsilon),
                                                     accuracy, outcomes: result.certified))
        case .checks:
            return BenchCellResult(cell: cell, checks: try modelChecks(model.network, test: test))
        case .threat:
            throw BenchError.invalidConfiguration("cell '\(cell)' is not a model's")
        }
    }

    /// The model's results from its cells (in any order): attacks ordered by ε and then as
    /// configured, the per-example worst case of each norm at each ε, the certificates, metrics
    /// and every sanity check. Needs no model: partial reports of a sharded bench assemble alike.
    public func assemble(_ model: ModelInfo, cells: [BenchCellResult], n: Int) -> BenchReport.ModelResult {
        let cleanCorrect = model.clean.outcomeFlags ?? []
        let clean = Proportion(successes: cleanCorrect.filter { $0 }.count, trials: n)
        var results: [BenchReport.AttackResult] = []
        var worstCase: [BenchReport.WorstCase] = []
        var metrics = [model.clean]
        var robust: [WorstCaseKey: [Bool]] = [:]
        var outcomes: [SanityChecker.ExampleOutcomes] = []
        var whiteBox: [WorstCaseKey: [Bool]] = [:]
        let attackCells = Dictionary(cells.compactMap { cell -> (String, BenchCellResult)? in
            guard case let .attack(_, attack, epsilon) = cell.cell else { return nil }
            return ("\(attack) \(epsilon.bitPattern)", cell)
        }, uniquingKeysWith: { first, _ in first })
        for epsilon in gridUnion() where epsilon > 0 {
            for entry in configuration.attacks where entry.grid(in: configuration).contains(epsilon) {
                guard let cell = attackCells["\(entry.name) \(epsilon.bitPattern)"], let result = cell.attack, let metric = cell.metric,
                      let correct = metric.outcomeFlags else { continue }
                outcomes.append(.init(attack: entry, epsilon: epsilon, robust: correct, fooledAt: cell.fooledAt,
                                      runLength: cell.runLength))
                let key = WorstCaseKey(norm: entry.spec.norm, epsilon: epsilon)
                robust[key] = zip(robust[key] ?? cleanCorrect, correct).map { $0 && $1 }
                // BW005 compares Square with the iterative gradient attacks (not FGSM, not suites that contain Square).
                if Self.isWhiteBoxIterative(entry) {
                    whiteBox[key] = zip(whiteBox[key] ?? cleanCorrect, correct).map { $0 && $1 }
                }
                results.append(result)
                metrics.append(metric)
            }
            for norm in MarkdownReport.norms(of: configuration) {
                guard let flags = robust[WorstCaseKey(norm: norm, epsilon: epsilon)] else { continue }
                let accuracy = Proportion(successes: flags.filter { $0 }.count, trials: n)
                worstCase.append(.init(norm: norm, epsilon: epsilon, accuracy: .init(accuracy)))
                metrics.append(.accuracy(BenchReport.ModelResult.worstCaseName(norm: norm, epsilon: epsilon), accuracy, outcomes: flags))
            }
        }
        var certified: [BenchReport.CertifiedResult] = []
        var certifiedOutcomes: [SanityChecker.CertifiedOutcomes] = []
        for entry in configuration.certification {
            for epsilon in entry.grid(in: configuration) {
                guard let cell = cells.first(where: { $0.cell == .certify(model: model.name, method: entry.method, norm: entry.norm, epsilon: epsilon) }),
                      let result = cell.certified, let metric = cell.metric, let flags = metric.outcomeFlags else { continue }
                certified.append(result)
                metrics.append(metric)
                certifiedOutcomes.append(.init(method: entry.method.displayName, norm: entry.norm, epsilon: epsilon, certified: flags))
            }
        }
        let checker = SanityChecker(n: n)
        var checks = [
            checker.monotonicity(clean: clean.value, results: results, worstCase: worstCase, attacks: configuration.attacks),
            checker.strongestBreaksWhatWeakerBreak(outcomes),
            checker.convergence(outcomes),
        ]
        if let modelChecks = cells.lazy.compactMap(\.checks).first, let largeEpsilon = modelChecks.largeEpsilon,
           let gradients = modelChecks.gradients, let randomness = modelChecks.randomness, let probabilities = modelChecks.probabilityOutputs {
            let whiteBoxCells = whiteBox.keys.sorted { ($0.norm.rawValue, $0.epsilon) < ($1.norm.rawValue, $1.epsilon) }
                .map { SanityChecker.WhiteBoxOutcomes(norm: $0.norm, epsilon: $0.epsilon, robust: whiteBox[$0]!) }
            checks += [largeEpsilon, gradients, checker.gradientMasking(modelChecks.blackBox, whiteBox: whiteBoxCells), randomness, probabilities]
        }
        if !configuration.certification.isEmpty {
            checks.append(checker.certifiedNotBroken(certifiedOutcomes) { norm, epsilon in robust[WorstCaseKey(norm: norm, epsilon: epsilon)] })
        }
        var result = BenchReport.ModelResult(
            name: model.name, path: model.path, sha256: model.sha256, architecture: model.architecture, parameters: model.parameters,
            clean: .init(clean), attacks: results, worstCase: worstCase, checks: checks, metrics: metrics)
        result.certified = configuration.certification.isEmpty ? nil : certified
        return result
    }

    /// Whether BW005 compares Square with this attack: iterative, gradient-based, not a suite.
    static func isWhiteBoxIterative(_ entry: BenchConfiguration.AttackEntry) -> Bool {
        entry.spec.isIterative && !entry.spec.isBlackBox && entry.spec.type != "autoattack"
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

    /// The checks that need the model, on the first `check_examples` test examples: BW003, BW004,
    /// BW006, BW007, and BW005's Square runs (one per norm and ε with a white-box iterative attack).
    func modelChecks(_ network: Sequential, test: LabeledData) throws -> BenchCellResult.ModelChecks {
        let checker = SanityChecker(n: test.count)
        let checkSlice = test.prefix(configuration.checkExamples ?? 500)
        guard checkSlice.count > 0 else { return .init() }
        let seed = Self.attackSeed(configuration.seed, attack: "sanity checks", epsilon: 0)
        let batchSize = configuration.batchSize ?? 500
        var checks = BenchCellResult.ModelChecks()
        checks.largeEpsilon = try checker.largeEpsilon(classifier: network, data: checkSlice,
                                                       attack: configuration.attacks.first { if case .pgd = $0.spec { true } else { false } },
                                                       seed: seed, batchSize: batchSize)
        let largestLinf = gridUnion().filter { epsilon in configuration.attacks.contains { $0.spec.norm == .linf && $0.grid(in: configuration).contains(epsilon) } }.max()
        checks.gradients = checker.gradients(classifier: network, data: checkSlice, epsilon: largestLinf.flatMap { $0 > 0 ? $0 : nil } ?? 0.1, seed: seed)
        var whiteBoxCells: [WorstCaseKey] = []
        for epsilon in gridUnion() where epsilon > 0 {
            for entry in configuration.attacks where entry.grid(in: configuration).contains(epsilon) && Self.isWhiteBoxIterative(entry) {
                let key = WorstCaseKey(norm: entry.spec.norm, epsilon: epsilon)
                if !whiteBoxCells.contains(key) { whiteBoxCells.append(key) }
            }
        }
        checks.blackBox = try checker.blackBoxRuns(classifier: network, data: checkSlice, cells: whiteBoxCells.map { ($0.norm, $0.epsilon) },
                                                   seed: seed, batchSize: batchSize)
        checks.randomness = checker.randomness(classifier: network, data: checkSlice)
        checks.probabilityOutputs = checker.probabilityOutputs(classifier: network, data: checkSlice)
        return checks
    }
}

import Attacks
import Foundation
import TensorCore

/// What one `BenchCell` produced, with the per-example data the report's aggregates need (the
/// worst case, the paired gate, the sanity checks): a partial report of a sharded bench holds these.
public struct BenchCellResult: Codable, Equatable, Sendable {
    public var cell: BenchCell
    /// Attack cells: the report's row.
    public var attack: BenchReport.AttackResult?
    /// Certificate cells: the report's row.
    public var certified: BenchReport.CertifiedResult?
    /// Attack and certificate cells: the metric, with per-example outcomes (robust or certified).
    public var metric: Metric?
    /// Iterative attacks: the iteration each input was first fooled at (−1: never).
    public var fooledAt: [Int]?
    /// Iterative attacks: the iterations of one run (restart or target), for BW008.
    public var runLength: Int?
    /// The model's checks cell.
    public var checks: ModelChecks?
    /// Threat cells.
    public var threat: BenchReport.ThreatResult?

    public init(cell: BenchCell, attack: BenchReport.AttackResult? = nil, certified: BenchReport.CertifiedResult? = nil,
                metric: Metric? = nil, fooledAt: [Int]? = nil, runLength: Int? = nil, checks: ModelChecks? = nil,
                threat: BenchReport.ThreatResult? = nil) {
        self.cell = cell
        self.attack = attack
        self.certified = certified
        self.metric = metric
        self.fooledAt = fooledAt
        self.runLength = runLength
        self.checks = checks
        self.threat = threat
    }

    enum CodingKeys: String, CodingKey {
        case cell, attack, certified, metric, checks, threat
        case fooledAt = "fooled_at", runLength = "run_length"
    }

    /// What is wrong with this result for a bench of `n` examples, if anything (a partial report is
    /// data from another machine: its per-example records must have n entries, and each cell the
    /// results of its kind).
    public func problem(n: Int) -> String? {
        func outcomes(_ metric: Metric?, _ what: String) -> String? {
            guard let metric else { return "it has no \(what) metric" }
            if let problem = metric.impossibleValue() { return "its metric \(problem)" }
            guard metric.n == n, let flags = metric.outcomeFlags, flags.count == n else {
                return "its \(what) metric does not hold one outcome per example (n = \(n))"
            }
            return nil
        }
        switch cell {
        case let .attack(_, name, epsilon):
            guard let attack, attack.attack == name, attack.epsilon == epsilon, attack.accuracy.n == n else {
                return "it has no result of attack \(name) at ε = \(epsilon) over \(n) examples"
            }
            if let problem = attack.impossibleValue() { return problem }
            if let fooledAt, fooledAt.count != n { return "its fooled_at has \(fooledAt.count) entries, not \(n)" }
            if let runLength, runLength < 1 { return "its run_length is \(runLength)" }
            return outcomes(metric, "attack")
        case let .certify(_, method, norm, epsilon):
            guard let certified, certified.method == method.rawValue, certified.norm == norm, certified.epsilon == epsilon, certified.accuracy.n == n else {
                return "it has no \(method.rawValue) certificate at ε = \(epsilon) over \(n) examples"
            }
            return outcomes(metric, "certificate")
        case .checks:
            guard let checks else { return "it has no check results" }
            let present = [checks.largeEpsilon, checks.gradients, checks.randomness, checks.probabilityOutputs].map { $0 != nil }
            guard present.allSatisfy({ $0 }) || !present.contains(true) else { return "it has some of the model's checks but not all" }
            for run in checks.blackBox ?? [] {
                guard let flags = run.robust.outcomeFlags, flags.count <= n, run.robust.impossibleValue() == nil else {
                    return "its Square run at ε = \(run.epsilon) does not hold one outcome per check example"
                }
            }
            return nil
        case let .threat(name):
            guard let threat, threat.name == name else { return "it has no result of threat experiment \(name)" }
            return nil
        }
    }

    /// The checks that need the model; all nil when `check_examples` is 0.
    public struct ModelChecks: Codable, Equatable, Sendable {
        public var largeEpsilon: BenchReport.CheckResult?
        public var gradients: BenchReport.CheckResult?
        public var randomness: BenchReport.CheckResult?
        public var probabilityOutputs: BenchReport.CheckResult?
        /// BW005's Square runs (nil when the inputs are not square images).
        public var blackBox: [BlackBoxRun]?

        public init() {}

        enum CodingKeys: String, CodingKey {
            case gradients, randomness
            case largeEpsilon = "large_epsilon", probabilityOutputs = "probability_outputs", blackBox = "black_box"
        }
    }

    /// BW005's Square attack at one norm and ε on the check examples: per example, robust or not.
    public struct BlackBoxRun: Codable, Equatable, Sendable {
        public var norm: Norm
        public var epsilon: Float
        public var robust: Metric

        public init(norm: Norm, epsilon: Float, robust: Metric) {
            self.norm = norm
            self.epsilon = epsilon
            self.robust = robust
        }
    }
}

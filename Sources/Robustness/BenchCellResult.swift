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

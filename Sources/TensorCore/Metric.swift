import Foundation

/// One measured number in a report, in a form every experiment shares and the gate can compare:
/// attack accuracies, threat experiments (backdoor success, membership inference) and certified
/// accuracies. (It lives in TensorCore, beside `Proportion`, so that experiment targets below the
/// report schema can produce it.)
///
/// ```json
/// {"name": "PGD-20 ε=0.1", "value": 0.7112, "n": 10000, "ci95": [0.702, 0.720], "better": "higher",
///  "outcomes": "base64 of one bit per example"}
/// ```
public struct Metric: Codable, Equatable, Sendable {
    /// Which direction is an improvement.
    public enum Direction: String, Codable, Sendable {
        case higher, lower
    }

    /// Unique within a model's metrics, e.g. `clean`, `PGD-20 ε=0.1`, `worst case ε=0.1`.
    public var name: String
    public var value: Double
    /// Examples behind the value, when it is a proportion (the gate then requires a value in [0, 1]).
    public var n: Int?
    /// 95% confidence interval, when known.
    public var ci95: [Double]?
    public var better: Direction
    /// Per-example outcomes (bit i set if example i counted as a success, e.g. classified
    /// correctly), packed least-significant bit first and base64-encoded, for paired comparisons.
    public var outcomes: String?

    public init(name: String, value: Double, n: Int? = nil, ci95: [Double]? = nil, better: Direction, outcomes: String? = nil) {
        self.name = name
        self.value = value
        self.n = n
        self.ci95 = ci95
        self.better = better
        self.outcomes = outcomes
    }

    /// An accuracy (higher is better) with its Wilson interval and, if given, per-example outcomes.
    public static func accuracy(_ name: String, _ proportion: Proportion, outcomes: [Bool]? = nil) -> Metric {
        let (lower, upper) = proportion.wilsonInterval()
        return Metric(name: name, value: proportion.value, n: proportion.trials, ci95: [lower, upper], better: .higher,
                      outcomes: outcomes.map(packOutcomes))
    }

    /// Whether `current` is worse than `baseline` by more than `tolerance` in this metric's direction.
    public func regressed(to current: Double, tolerance: Double) -> Bool {
        switch better {
        case .higher: value - current > tolerance + 1e-12
        case .lower: current - value > tolerance + 1e-12
        }
    }

    /// The per-example outcomes, if recorded.
    public var outcomeFlags: [Bool]? {
        guard let outcomes, let n, n >= 0, let data = Data(base64Encoded: outcomes), data.count == (n + 7) / 8 else { return nil }
        let bytes = [UInt8](data)
        return (0..<n).map { bytes[$0 / 8] & (1 << ($0 % 8)) != 0 }
    }

    static func packOutcomes(_ flags: [Bool]) -> String {
        var bytes = [UInt8](repeating: 0, count: (flags.count + 7) / 8)
        for (i, flag) in flags.enumerated() where flag { bytes[i / 8] |= 1 << (i % 8) }
        return Data(bytes).base64EncodedString()
    }
}

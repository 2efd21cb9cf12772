import Foundation

/// A binomial proportion with its Wilson score interval (Wilson, 1927), the interval recommended
/// for accuracies (it stays inside [0, 1] and behaves near 0 and 1, unlike the normal approximation).
///
/// ```
/// p̂ = k/n,  centre = (p̂ + z²/2n) / (1 + z²/n),  half = z·√(p̂(1−p̂)/n + z²/4n²) / (1 + z²/n)
/// ```
public struct Proportion: Sendable, Equatable, Codable {
    public let successes: Int
    public let trials: Int

    public init(successes: Int, trials: Int) {
        precondition(trials >= 0 && successes >= 0 && successes <= trials, "invalid proportion \(successes)/\(trials)")
        self.successes = successes
        self.trials = trials
    }

    public var value: Double { trials == 0 ? 0 : Double(successes) / Double(trials) }

    /// The Wilson score interval at confidence given by `z` (1.96 for 95%).
    public func wilsonInterval(z: Double = 1.959964) -> (lower: Double, upper: Double) {
        guard trials > 0 else { return (0, 1) }
        let n = Double(trials), p = value, z2 = z * z
        let denominator = 1 + z2 / n
        let centre = (p + z2 / (2 * n)) / denominator
        let half = z * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot() / denominator
        return (max(0, centre - half), min(1, centre + half))
    }
}

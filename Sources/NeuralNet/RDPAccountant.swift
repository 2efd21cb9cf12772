import Foundation

/// Privacy accounting for DP-SGD with Rényi differential privacy (Mironov, 2017): the sampled
/// Gaussian mechanism's RDP at each order α (Mironov, Talwar & Zhang, 2019, "Rényi Differential
/// Privacy of the Sampled Gaussian Mechanism"), composed over the steps, then converted to
/// (ε, δ)-DP and minimised over the orders.
///
/// - Integer α: A_α = Σₖ C(α,k) (1−q)^(α−k) q^k exp((k²−k)/(2σ²)) (their Section 3.3), in log
///   space.
/// - Fractional α: their two-sided series with log erfc terms, summed until the terms fall below
///   e⁻³⁰ of the total.
/// - RDP of one step at α: log A_α / (α − 1); T steps compose additively.
/// - Conversion to (ε, δ): ε = min over α of rdp(α) + log((α−1)/α) − (log δ + log α)/(α − 1)
///   (Balle et al., 2020, "Hypothesis Testing Interpretations and Rényi Differential Privacy",
///   Theorem 21; the conversion Opacus uses), never worse than Mironov's rdp(α) − log δ/(α − 1).
///
/// The orders default to Opacus's (`defaultOrders`): 1.1, 1.2, …, 10.9, 12, …, 63.
public enum RDPAccountant {
    public static let defaultOrders: [Double] = (1...99).map { 1 + Double($0) / 10 } + (12...63).map(Double.init)

    /// How (ε, δ) was derived.
    public struct Guarantee: Equatable, Sendable, Codable {
        public var epsilon: Double
        public var delta: Double
        /// The Rényi order that gave the smallest ε.
        public var order: Double

        public init(epsilon: Double, delta: Double, order: Double) {
            self.epsilon = epsilon
            self.delta = delta
            self.order = order
        }
    }

    /// RDP of `steps` compositions of the sampled Gaussian mechanism (sampling rate q, noise
    /// multiplier σ) at each of `orders`.
    public static func rdp(samplingRate q: Double, noiseMultiplier sigma: Double, steps: Int,
                           orders: [Double] = defaultOrders) -> [Double] {
        orders.map { Double(steps) * rdpOfOneStep(q: q, sigma: sigma, order: $0) }
    }

    /// The (ε, δ) guarantee of `steps` DP-SGD steps with sampling rate q and noise multiplier σ.
    public static func guarantee(samplingRate q: Double, noiseMultiplier sigma: Double, steps: Int, delta: Double,
                                 orders: [Double] = defaultOrders) -> Guarantee {
        let values = rdp(samplingRate: q, noiseMultiplier: sigma, steps: steps, orders: orders)
        return convert(rdp: values, orders: orders, delta: delta)
    }

    /// The smallest ε over the orders (Balle et al., 2020, conversion).
    public static func convert(rdp: [Double], orders: [Double], delta: Double) -> Guarantee {
        precondition(delta > 0 && delta < 1, "δ must be in (0, 1), got \(delta)")
        var best = Guarantee(epsilon: .infinity, delta: delta, order: orders.first ?? 0)
        // A mechanism that never sees the data (q = 0) loses nothing.
        if !rdp.isEmpty && rdp.allSatisfy({ $0 == 0 }) { return Guarantee(epsilon: 0, delta: delta, order: best.order) }
        for (value, alpha) in zip(rdp, orders) where alpha > 1 && value.isFinite {
            let epsilon = value + Foundation.log((alpha - 1) / alpha) - (Foundation.log(delta) + Foundation.log(alpha)) / (alpha - 1)
            if epsilon < best.epsilon { best = Guarantee(epsilon: max(epsilon, 0), delta: delta, order: alpha) }
        }
        return best
    }

    static func rdpOfOneStep(q: Double, sigma: Double, order alpha: Double) -> Double {
        precondition(q >= 0 && q <= 1, "the sampling rate must be in [0, 1], got \(q)")
        precondition(alpha > 1, "Rényi orders must exceed 1, got \(alpha)")
        if q == 0 { return 0 }
        if sigma == 0 { return .infinity }
        if q == 1 { return alpha / (2 * sigma * sigma) }
        let logA = alpha == alpha.rounded() ? logAInteger(q: q, sigma: sigma, alpha: Int(alpha))
                                            : logAFractional(q: q, sigma: sigma, alpha: alpha)
        return logA / (alpha - 1)
    }

    /// log A_α for integer α by the binomial expansion.
    static func logAInteger(q: Double, sigma: Double, alpha: Int) -> Double {
        var total = -Double.infinity
        for k in 0...alpha {
            let term = logBinomial(Double(alpha), Double(k)) + Double(k) * Foundation.log(q)
                + Double(alpha - k) * Foundation.log1p(-q) + Double(k * k - k) / (2 * sigma * sigma)
            total = logAdd(total, term)
        }
        return total
    }

    /// log A_α for fractional α (Mironov, Talwar & Zhang, 2019, Section 3.3): two series whose
    /// terms carry signed generalised binomial coefficients and Gaussian tail masses.
    static func logAFractional(q: Double, sigma: Double, alpha: Double) -> Double {
        var (positive0, negative0) = (-Double.infinity, -Double.infinity)
        var (positive1, negative1) = (-Double.infinity, -Double.infinity)
        let z0 = sigma * sigma * Foundation.log(1 / q - 1) + 0.5
        var i = 0.0
        while true {
            let (logCoefficient, sign) = logGeneralisedBinomial(alpha, i)
            let j = alpha - i
            let logT0 = logCoefficient + i * Foundation.log(q) + j * Foundation.log1p(-q)
            let logT1 = logCoefficient + j * Foundation.log(q) + i * Foundation.log1p(-q)
            let logE0 = Foundation.log(0.5) + logErfc((i - z0) / (2.0.squareRoot() * sigma))
            let logE1 = Foundation.log(0.5) + logErfc((z0 - j) / (2.0.squareRoot() * sigma))
            let logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0
            let logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1
            if sign > 0 {
                positive0 = logAdd(positive0, logS0)
                positive1 = logAdd(positive1, logS1)
            } else {
                negative0 = logAdd(negative0, logS0)
                negative1 = logAdd(negative1, logS1)
            }
            i += 1
            let total = logAdd(logSubtract(positive0, negative0), logSubtract(positive1, negative1))
            if max(logS0, logS1) < total - 30 || i > 100_000 { return total }
        }
    }

    /// log |C(α, k)| and its sign for real α and integer k ≥ 0.
    static func logGeneralisedBinomial(_ alpha: Double, _ k: Double) -> (Double, Double) {
        var logValue = 0.0
        var sign = 1.0
        var m = 0.0
        while m < k {
            let factor = (alpha - m) / (m + 1)
            if factor < 0 { sign = -sign }
            logValue += Foundation.log(abs(factor))
            m += 1
        }
        return (logValue, sign)
    }

    static func logBinomial(_ n: Double, _ k: Double) -> Double {
        lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)
    }

    /// log(eᵃ + eᵇ).
    static func logAdd(_ a: Double, _ b: Double) -> Double {
        let (high, low) = a > b ? (a, b) : (b, a)
        if low == -.infinity { return high }
        return high + Foundation.log1p(Foundation.exp(low - high))
    }

    /// log(eᵃ − eᵇ) for a ≥ b (−∞ when equal).
    static func logSubtract(_ a: Double, _ b: Double) -> Double {
        if b == -.infinity { return a }
        if a <= b { return -.infinity }
        return a + Foundation.log(-Foundation.expm1(b - a))
    }

    /// log erfc(x), with the asymptotic expansion where erfc underflows.
    static func logErfc(_ x: Double) -> Double {
        if x < 20 { return Foundation.log(erfc(x)) }
        let x2 = x * x
        return -x2 - Foundation.log(x) - 0.5 * Foundation.log(Double.pi)
            + Foundation.log1p(-1 / (2 * x2) + 3 / (4 * x2 * x2) - 15 / (8 * x2 * x2 * x2))
    }
}

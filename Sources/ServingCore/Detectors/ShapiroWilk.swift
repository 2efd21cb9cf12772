import Foundation

/// The Shapiro–Wilk W statistic of normality (Shapiro & Wilk 1965), with the coefficients of
/// Royston's approximation (Royston 1992, "Approximating the Shapiro-Wilk W-test for
/// non-normality"; algorithm AS R94, 1995), valid for 3 ≤ n ≤ 5000. W is near 1 for a normal
/// sample and falls as the sample departs from normality.
public enum ShapiroWilk {
    public static let sizes = 3...5000

    /// W of `sample`, or nil outside `sizes`. A sample with no spread (every value equal) is as
    /// far from normal as a sample can be: W = 0.
    public static func statistic(_ sample: [Double]) -> Double? {
        let n = sample.count
        guard sizes.contains(n) else { return nil }
        let x = sample.sorted()
        let mean = x.reduce(0, +) / Double(n)
        let squares = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        guard squares > 0, squares.isFinite else { return 0 }
        let a = coefficients(n)
        var numerator = 0.0
        for i in a.indices { numerator += a[i] * (x[n - 1 - i] - x[i]) }
        return min(1, numerator * numerator / squares)
    }

    /// The first ⌊n/2⌋ coefficients aᵢ (the rest are their negatives, mirrored).
    static func coefficients(_ n: Int) -> [Double] {
        let half = n / 2
        guard n > 3 else { return [(0.5 as Double).squareRoot()] }
        let m = (1...half).map { inverseNormal((Double($0) - 0.375) / (Double(n) + 0.25)) }  // negative: the lower quantiles
        let sumSquares = 2 * m.reduce(0) { $0 + $1 * $1 }
        let u = 1 / Double(n).squareRoot()
        func polynomial(_ c: [Double]) -> Double { c.reversed().reduce(0) { $0 * u + $1 } }
        var a = [Double](repeating: 0, count: half)
        a[0] = polynomial([0, 0.221157, -0.147981, -2.071190, 4.434685, -2.706056]) - m[0] / sumSquares.squareRoot()
        let first: Int
        let scale: Double
        if n > 5 {
            a[1] = polynomial([0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633]) - m[1] / sumSquares.squareRoot()
            scale = ((sumSquares - 2 * m[0] * m[0] - 2 * m[1] * m[1]) / (1 - 2 * a[0] * a[0] - 2 * a[1] * a[1])).squareRoot()
            first = 2
        } else {
            scale = ((sumSquares - 2 * m[0] * m[0]) / (1 - 2 * a[0] * a[0])).squareRoot()
            first = 1
        }
        for i in first..<half { a[i] = -m[i] / scale }
        return a
    }

    /// Φ⁻¹(p) for 0 < p < 1: Acklam's rational approximation (relative error below 1.15e-9),
    /// refined by one Halley step on erfc.
    static func inverseNormal(_ p: Double) -> Double {
        let a = [-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00]
        let b = [-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01]
        let c = [-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00]
        let d = [7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00]
        let low = 0.02425
        var x: Double
        if p < low {
            let q = (-2 * log(p)).squareRoot()
            x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        } else if p <= 1 - low {
            let q = p - 0.5, r = q * q
            x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q
                / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
        } else {
            let q = (-2 * log(1 - p)).squareRoot()
            x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
        }
        let e = 0.5 * erfc(-x / (2 as Double).squareRoot()) - p
        let u = e * (2 * Double.pi).squareRoot() * exp(x * x / 2)
        return x - u / (1 + x * u / 2)
    }
}

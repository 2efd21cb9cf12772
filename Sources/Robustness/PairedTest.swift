import Foundation

/// Paired significance tests for comparing two evaluations of the same examples.
public enum PairedTest {
    /// McNemar's exact test (McNemar, 1947; the exact binomial form): given the discordant pairs —
    /// `b` examples that succeeded only in the first evaluation, `c` only in the second — the
    /// two-sided p-value of "both evaluations have the same success probability", i.e. of
    /// b ~ Binomial(b + c, ½): p = min(1, 2·P(X ≤ min(b, c))). Computed in log space, exact for any n.
    public static func mcNemarExact(b: Int, c: Int) -> Double {
        precondition(b >= 0 && c >= 0, "counts must be non-negative")
        let n = b + c
        guard n > 0 else { return 1 }
        let k = min(b, c)
        let logHalfPower = -Double(n) * Foundation.log(2.0)
        func logChoose(_ n: Int, _ i: Int) -> Double {
            Foundation.lgamma(Double(n + 1)) - Foundation.lgamma(Double(i + 1)) - Foundation.lgamma(Double(n - i + 1))
        }
        // log Σ_{i ≤ k} C(n, i) / 2ⁿ by log-sum-exp (the largest term is the last one, i = k ≤ n/2).
        let terms = (0...k).map { logChoose(n, $0) + logHalfPower }
        let largest = terms.max()!
        let logTail = largest + Foundation.log(terms.reduce(0) { $0 + Foundation.exp($1 - largest) })
        return min(1, 2 * Foundation.exp(logTail))
    }

    /// Holm's step-down adjustment (Holm, 1979) of p-values for m simultaneous tests: controls the
    /// family-wise error rate at α when each adjusted p-value is compared with α. nil entries (no
    /// test) are skipped and stay nil.
    public static func holm(_ pValues: [Double?]) -> [Double?] {
        let tested = pValues.enumerated().compactMap { index, p in p.map { (index, $0) } }.sorted { $0.1 < $1.1 }
        let m = tested.count
        var adjusted = [Double?](repeating: nil, count: pValues.count)
        var running = 0.0
        for (rank, (index, p)) in tested.enumerated() {
            running = max(running, min(1, Double(m - rank) * p))
            adjusted[index] = running
        }
        return adjusted
    }
}

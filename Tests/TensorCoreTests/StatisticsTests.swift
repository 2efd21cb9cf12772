import Testing
import TensorCore

@Suite("Wilson score interval")
struct StatisticsTests {
    @Test("known values")
    func knownValues() {
        // 8 of 10: Wilson 95% interval [0.4902, 0.9433] (e.g. statsmodels proportion_confint method="wilson").
        let (lower, upper) = Proportion(successes: 8, trials: 10).wilsonInterval()
        #expect(abs(lower - 0.4902) < 1e-4 && abs(upper - 0.9433) < 1e-4)
        let (l0, u0) = Proportion(successes: 0, trials: 50).wilsonInterval()
        #expect(l0 == 0 && abs(u0 - 0.0713) < 1e-4)
        let (l1, u1) = Proportion(successes: 8718, trials: 10_000).wilsonInterval()
        #expect(l1 < 0.8718 && u1 > 0.8718 && u1 - l1 < 0.014)
    }
}

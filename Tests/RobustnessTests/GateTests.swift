import Attacks
import Foundation
@testable import Robustness
import TensorCore
import Testing
import _TestSupport

@Suite("Gate")
struct GateTests {
    /// A crafted report: one model, FGSM and PGD at ε = 0.1, the given accuracies.
    static func report(clean: Double = 0.9, fgsm: Double = 0.5, pgd: Double = 0.4, n: Int = 1000,
                       epsilons: [Float] = [0, 0.1], model: String = "m") -> BenchReport {
        var configuration = BenchConfiguration.standard
        configuration.epsilons = epsilons
        configuration.attacks = [.init(name: "FGSM", spec: .fgsm(FGSM.Parameters())), .init(name: "PGD", spec: .pgd(try! PGD.Parameters(steps: 10)))]
        func accuracy(_ value: Double) -> BenchReport.Accuracy { .init(Proportion(successes: Int((value * Double(n)).rounded()), trials: n)) }
        func result(_ name: String, _ value: Double) -> BenchReport.AttackResult {
            .init(attack: name, description: name, norm: .linf, epsilon: 0.1, accuracy: accuracy(value),
                  success: Proportion(successes: 1, trials: 2), meanPerturbation: 0.1, maxPerturbation: 0.1, seconds: 1, imagesPerSecond: 1000)
        }
        let result = BenchReport.ModelResult(
            name: model, path: "m.safetensors", sha256: String(repeating: "a", count: 64), architecture: "784-10", parameters: 7850,
            clean: accuracy(clean), attacks: [result("FGSM", fgsm), result("PGD", pgd)],
            worstCase: [.init(norm: .linf, epsilon: 0.1, accuracy: accuracy(min(fgsm, pgd)))], checks: [])
        return BenchReport(bulwarkVersion: "0.1.0", created: "2026-11-26T00:00:00Z",
                           machine: .current(threads: 2), configuration: configuration, data: "test", n: n, models: [result])
    }

    @Test("impossible reports are refused as data: accuracy outside [0, 1], more correct than n, a wrong interval, no models")
    func impossibleReports() throws {
        func message(_ edit: (inout BenchReport) -> Void) throws -> String {
            var report = Self.report()
            edit(&report)
            do { _ = try BenchReport.decode(try report.encoded(), source: "r.json"); return "" } catch { return "\(error)" }
        }
        #expect(try message { _ in } == "")
        #expect(try message { $0.models[0].clean.accuracy = 1.5 }.contains("impossible value: m clean has accuracy 1.5"))
        #expect(try message { $0.models[0].clean.correct = 5000 }.contains("5000 correct of 1000"))
        #expect(try message { $0.models[0].clean.ci95 = [0.95, 0.99] }.contains("does not contain"))
        #expect(try message { $0.models[0].metrics[0].value = -3 }.contains("a proportion lies in [0, 1]"))
        #expect(try message { $0.models = [] }.contains("it lists no models"))
        #expect(try message { $0.n = -5 }.contains("n is -5"))
        let floatN = String(decoding: try Self.report().encoded(), as: UTF8.self).replacingOccurrences(of: #""n" : 1000"#, with: #""n" : 1000.0"#)
        #expect(throws: BenchError.self) { try BenchReport.decode(Data(floatN.utf8), source: "r.json") }
        let extra = String(decoding: try Self.report().encoded(), as: UTF8.self).replacingOccurrences(of: #""n" : 1000,"#, with: #""n" : 1000, "trusted" : true,"#)
        #expect { try BenchReport.decode(Data(extra.utf8), source: "r.json") } throws: { "\($0)".contains("unknown field") && "\($0)".contains("trusted") }
    }

    @Test("within tolerance passes; a drop beyond it is a regression")
    func compare() throws {
        let base = Self.report()
        #expect(try Gate.compare(baseline: base, current: Self.report(pgd: 0.395), maxDrop: 0.01).passed)
        let result = try Gate.compare(baseline: base, current: Self.report(pgd: 0.38), maxDrop: 0.01)
        #expect(!result.passed)
        #expect(result.regressions.map(\.metric) == ["PGD ε=0.1", "worst case ε=0.1"])
        let xml = Gate.junit(result)
        #expect(xml.contains(#"<testsuite name="m" tests="4" failures="2">"#))
        #expect(xml.contains(#"<failure message="dropped from 0.4000 to 0.3800 (-0.0200), more than --max-drop 0.01, no per-example outcomes to test""#))
        #expect(try Gate.compare(baseline: base, current: Self.report(model: "other"), maxDrop: 0.01).regressions.count == 4)
    }

    @Test("different ε grids, attacks or n are incomparable")
    func incomparable() {
        let base = Self.report()
        #expect(throws: Gate.GateError.self) { try Gate.compare(baseline: base, current: Self.report(n: 500), maxDrop: 0.01) }
        #expect(throws: Gate.GateError.self) { try Gate.compare(baseline: base, current: Self.report(epsilons: [0, 0.2]), maxDrop: 0.01) }
        var other = Self.report()
        other.configuration.attacks[1].spec = .pgd(try! PGD.Parameters(steps: 20))
        let reasons = Gate.incompatibilities(baseline: base, current: other)
        #expect(reasons.count == 1 && reasons[0].contains("attacks differ"))
    }
}

@Suite("Gate statistics")
struct GateStatisticsTests {
    /// Outcome bits: the first `successes` of n examples succeed, then the rest fail; `flipped`
    /// ranges are inverted (to make discordant pairs).
    static func flags(n: Int, successes: Int, flipping flipped: [Range<Int>] = []) -> [Bool] {
        var bits = (0..<n).map { $0 < successes }
        for range in flipped { for i in range { bits[i].toggle() } }
        return bits
    }

    /// `GateTests.report` with per-example outcomes on the named metrics (values follow the bits).
    static func report(_ outcomes: [String: [Bool]], checks: [BenchReport.CheckResult] = [], digest: String? = "d1",
                       version: String = "0.1.0") -> BenchReport {
        var report = GateTests.report()
        report.dataSHA256 = digest
        report.bulwarkVersion = version
        report.models[0].checks = checks
        for (index, metric) in report.models[0].metrics.enumerated() {
            guard let bits = outcomes[metric.name] else { continue }
            report.models[0].metrics[index] = .accuracy(metric.name, Proportion(successes: bits.filter { $0 }.count, trials: bits.count), outcomes: bits)
        }
        return report
    }

    @Test("McNemar's exact test and Holm's adjustment give the textbook values")
    func textbook() {
        #expect(abs(PairedTest.mcNemarExact(b: 0, c: 5) - 0.0625) < 1e-12)            // 2 · 2⁻⁵
        #expect(abs(PairedTest.mcNemarExact(b: 1, c: 9) - 22.0 / 1024) < 1e-12)       // 2 · (1 + 10) / 2¹⁰
        #expect(PairedTest.mcNemarExact(b: 7, c: 7) == 1)
        #expect(PairedTest.mcNemarExact(b: 0, c: 0) == 1)
        #expect(PairedTest.mcNemarExact(b: 5000, c: 5200) > 0.04 && PairedTest.mcNemarExact(b: 5000, c: 5200) < 0.06)  // large n, no overflow
        let adjusted = PairedTest.holm([0.01, 0.04, nil, 0.03])
        #expect(adjusted[0]! == 0.03 && abs(adjusted[1]! - 0.06) < 1e-12 && adjusted[2] == nil && abs(adjusted[3]! - 0.06) < 1e-12)
    }

    @Test("a significant drop fails; a drop within chance passes; the table prints p-values")
    func drops() throws {
        let n = 1000
        let base = Self.report(["PGD ε=0.1": Self.flags(n: n, successes: 400)])
        // 30 examples lost, none gained: p ≈ 2e-9.
        let lost = try Gate.compare(baseline: base, current: Self.report(["PGD ε=0.1": Self.flags(n: n, successes: 370)]), maxDrop: 0.01)
        #expect(!lost.passed && lost.regressions.map(\.metric) == ["PGD ε=0.1"])
        #expect(lost.regressions[0].adjustedPValue! < 1e-6)
        #expect(Gate.table(lost).contains("| 30 / 0 |"))
        // 60 lost, 40 gained (net −2 points, beyond --max-drop): p ≈ 0.057, not significant.
        let noise = Self.report(["PGD ε=0.1": Self.flags(n: n, successes: 400, flipping: [340..<400, 400..<440])])
        let result = try Gate.compare(baseline: base, current: noise, maxDrop: 0.01)
        #expect(result.passed)
        let pgd = try #require(result.comparisons.first { $0.metric == "PGD ε=0.1" })
        #expect(pgd.status == .insignificantDrop && abs(pgd.change! + 0.02) < 1e-12 && pgd.pValue! > 0.05)
        // The same drop with α = 0.1 (uncorrected: it is the only tested metric) fails.
        #expect(!(try Gate.compare(baseline: base, current: noise, policy: .init(maxDrop: 0.01, alpha: 0.1)).passed))
    }

    @Test("a significant rise of robust accuracy without clean accuracy rising is flagged")
    func suspiciousRise() throws {
        let n = 1000
        let base = Self.report(["clean": Self.flags(n: n, successes: 900), "PGD ε=0.1": Self.flags(n: n, successes: 400)])
        let weaker = Self.report(["clean": Self.flags(n: n, successes: 900), "PGD ε=0.1": Self.flags(n: n, successes: 450)])
        let result = try Gate.compare(baseline: base, current: weaker, maxDrop: 0.01)
        #expect(result.passed && result.suspicious.map(\.metric) == ["PGD ε=0.1"])
        #expect(Gate.table(result).contains("an attack got weaker?"))
        let strict = try Gate.compare(baseline: base, current: weaker, policy: .init(maxDrop: 0.01, failOnSuspicious: true))
        #expect(!strict.passed && Gate.junit(strict).contains(#"type="suspicious""#))
        // With clean accuracy rising significantly too, the rise is not suspicious.
        let better = Self.report(["clean": Self.flags(n: n, successes: 950), "PGD ε=0.1": Self.flags(n: n, successes: 450)])
        #expect(try Gate.compare(baseline: base, current: better, policy: .init(maxDrop: 0.01, failOnSuspicious: true)).passed)
    }

    @Test("failed sanity checks in the new report fail the gate unless allowed")
    func failedChecks() throws {
        let failed = BenchReport.CheckResult(id: "BW002", title: "t", passed: false, message: "PGD missed 80 examples FGSM broke",
                                             documentation: "docs/sanity-checks.md#bw002")
        let result = try Gate.compare(baseline: Self.report([:]), current: Self.report([:], checks: [failed]), maxDrop: 0.01)
        #expect(!result.passed && result.regressions.isEmpty && result.failedChecks.count == 1)
        #expect(Gate.junit(result).contains(#"type="failed sanity check""#))
        let allowed = try Gate.compare(baseline: Self.report([:]), current: Self.report([:], checks: [failed]),
                                       policy: .init(maxDrop: 0.01, allowFailedChecks: true))
        #expect(allowed.passed)
    }

    @Test("reports on other test data or from another major version are refused")
    func refused() {
        let reasons = Gate.incompatibilities(baseline: Self.report([:], digest: "d1"), current: Self.report([:], digest: "d2", version: "1.0.0"))
        #expect(reasons.contains { $0.contains("test data differs") })
        #expect(reasons.contains { $0.contains("major versions differ") })
        #expect(Gate.incompatibilities(baseline: Self.report([:]), current: Self.report([:], version: "0.1.7")).isEmpty)
        #expect(Gate.incompatibilities(baseline: Self.report([:]), current: Self.report([:], version: "0.3.0")).contains { $0.contains("major versions") })
    }
}

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

    @Test("within tolerance passes; a drop beyond it is a regression")
    func compare() throws {
        let base = Self.report()
        #expect(try Gate.compare(baseline: base, current: Self.report(pgd: 0.395), maxDrop: 0.01).passed)
        let result = try Gate.compare(baseline: base, current: Self.report(pgd: 0.38), maxDrop: 0.01)
        #expect(!result.passed)
        #expect(result.regressions.map(\.metric) == ["PGD ε=0.1", "worst case ε=0.1"])
        let xml = Gate.junit(result)
        #expect(xml.contains(#"<testsuite name="m" tests="4" failures="2">"#))
        #expect(xml.contains(#"<failure message="dropped from 0.4000 to 0.3800 (-0.0200), more than --max-drop 0.01""#))
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

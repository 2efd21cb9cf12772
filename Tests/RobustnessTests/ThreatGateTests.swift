import Foundation
@testable import Robustness
import TensorCore
import Testing
import _FileSystem

@Suite("Gate on threat reports")
struct ThreatGateTests {
    /// A poisoning report: clean accuracy and backdoor success over 1,000 examples each, with outcomes.
    static func report(clean: Int, success: Int, settings: JSONValue = .object(["rates": .array([.number(0.1)])]), seed: UInt64 = 0,
                       data: String = "ab12") -> ThreatReport {
        func outcomes(_ successes: Int) -> [Bool] { (0..<1000).map { $0 < successes } }
        let metrics = [
            Metric.accuracy("clean accuracy", Proportion(successes: clean, trials: 1000), outcomes: outcomes(clean)),
            { var m = Metric.accuracy("clustering attack success rate", Proportion(successes: success, trials: 1000), outcomes: outcomes(success))
              m.better = .lower
              return m }(),
            Metric(name: "lira-online AUC", value: 0.6, better: .lower),
        ]
        return ThreatReport(created: "2026-11-27T00:00:00Z", experiment: "poison", settings: settings, seed: seed, data: "d",
                            dataSHA256: data, subjects: [.init(name: "backdoor rate=0.1", metrics: metrics)])
    }

    @Test("a significant rise of attack success after a defence is a regression; the same numbers pass")
    func regression() throws {
        let baseline = Self.report(clean: 880, success: 50)
        let same = try Gate.compare(baseline: baseline, current: Self.report(clean: 880, success: 50, seed: 1), policy: .init())
        #expect(same.passed && same.notes.contains { $0.contains("seeds differ") })
        let worse = try Gate.compare(baseline: baseline, current: Self.report(clean: 880, success: 120), policy: .init(maxDrop: 0.01))
        #expect(!worse.passed)
        #expect(worse.regressions.map(\.metric) == ["clustering attack success rate"])
        // Lower is better: a fall in success is an improvement, never "suspicious" for threats.
        let better = try Gate.compare(baseline: baseline, current: Self.report(clean: 880, success: 0), policy: .init(failOnSuspicious: true))
        #expect(better.passed && better.suspicious.isEmpty)
    }

    @Test("threat reports from other settings are incomparable; impossible values and edits are refused")
    func refusals() throws {
        let baseline = Self.report(clean: 880, success: 50)
        let other = Self.report(clean: 880, success: 50, settings: .object(["rates": .array([.number(0.05)])]))
        #expect(throws: Gate.GateError.self) { try Gate.compare(baseline: baseline, current: other, policy: .init()) }
        #expect(throws: Gate.GateError.self) { try Gate.compare(baseline: baseline, current: Self.report(clean: 880, success: 50, data: "cd34"), policy: .init()) }

        let encoded = try baseline.encoded()
        #expect(try ThreatReport.decode(encoded, source: "r.json") == baseline)
        var edited = baseline
        edited.subjects[0].metrics[0].value = 0.95  // the outcomes still say 0.88
        #expect(throws: Gate.GateError.self) { try Gate.compare(baseline: edited, current: baseline, policy: .init()) }
        var impossible = baseline
        impossible.subjects[0].metrics[0].value = 1.5
        #expect(throws: BenchError.self) { try ThreatReport.decode(impossible.encoded(), source: "r.json") }
        var unknownField = String(decoding: encoded, as: UTF8.self)
        unknownField = unknownField.replacingOccurrences(of: "\"seed\"", with: "\"sneaky\" : 1, \"seed\"")
        #expect(throws: BenchError.self) { try ThreatReport.decode(Data(unknownField.utf8), source: "r.json") }
        #expect(ThreatReport.declaredSchema(encoded) == ThreatReport.schema)
    }
}

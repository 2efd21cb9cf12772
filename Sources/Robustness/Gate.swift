import Foundation

/// The CI gate: compares a new report with a baseline, metric by metric (every `Metric` of every
/// model: clean accuracy, each attack at each ε, the worst case, and whatever else an experiment
/// reports), and fails when a metric got worse (in its own direction) by more than a tolerance.
/// Reports made with different configurations are incomparable, never silently compared.
public enum Gate {
    /// One compared metric.
    public struct Comparison: Sendable, Equatable {
        public let model: String
        public let metric: String
        public let better: Metric.Direction
        public let baseline: Double
        /// nil when the new report lacks the metric (a removed model or attack counts as a regression).
        public let current: Double?
        public let regressed: Bool

        public var change: Double? { current.map { $0 - baseline } }
    }

    public struct Result: Sendable {
        public let comparisons: [Comparison]
        public let notes: [String]
        public let maxDrop: Double
        public var regressions: [Comparison] { comparisons.filter(\.regressed) }
        public var passed: Bool { regressions.isEmpty }
    }

    public enum GateError: Error, CustomStringConvertible, Equatable {
        case incomparable([String])
        case invalidTolerance(Double)

        public var description: String {
            switch self {
            case .incomparable(let reasons):
                return "the reports are incomparable: " + reasons.joined(separator: "; ")
                    + ". Re-run the baseline with the same configuration (bulwark bench --config …)"
            case .invalidTolerance(let value):
                return "--max-drop must be a number between 0 and 1, got \(value)"
            }
        }
    }

    /// Why two reports cannot be compared (empty if they can).
    public static func incompatibilities(baseline: BenchReport, current: BenchReport) -> [String] {
        var reasons: [String] = []
        let (a, b) = (baseline.configuration, current.configuration)
        if a.epsilons != b.epsilons { reasons.append("ε grids differ (\(a.epsilons) vs \(b.epsilons))") }
        if a.attacks != b.attacks {
            reasons.append("attacks differ (\(a.attacks.map(\.name)) vs \(b.attacks.map(\.name)), or their parameters)")
        }
        if let difference = a.dataset.difference(from: b.dataset) { reasons.append("datasets differ (\(difference))") }
        if baseline.n != current.n { reasons.append("n differs (\(baseline.n) vs \(current.n))") }
        return reasons
    }

    /// - Throws: `GateError.incomparable` with every difference found.
    public static func compare(baseline: BenchReport, current: BenchReport, maxDrop: Double) throws -> Result {
        guard maxDrop >= 0, maxDrop <= 1 else { throw GateError.invalidTolerance(maxDrop) }
        let reasons = incompatibilities(baseline: baseline, current: current)
        guard reasons.isEmpty else { throw GateError.incomparable(reasons) }
        var notes: [String] = []
        if baseline.data != current.data {
            notes.append("the data sources are described differently (\(baseline.data) vs \(current.data)); check that they hold the same examples")
        }
        if baseline.configuration.seed != current.configuration.seed {
            notes.append("seeds differ (\(baseline.configuration.seed) vs \(current.configuration.seed)); random starts differ")
        }
        var comparisons: [Comparison] = []
        for old in baseline.models {
            let new = current.models.first { $0.name == old.name }
            if new == nil { notes.append("model '\(old.name)' is missing from the new report") }
            if let new, new.sha256 != old.sha256 { notes.append("model '\(old.name)' changed (sha256 \(old.sha256.prefix(12))… → \(new.sha256.prefix(12))…)") }
            for metric in old.metrics {
                let match = new?.metrics.first { $0.name == metric.name }
                if let match, match.better != metric.better {
                    notes.append("metric '\(metric.name)' of model '\(old.name)' changed direction; compared as \(metric.better.rawValue)-is-better")
                }
                let regressed = match.map { metric.regressed(to: $0.value, tolerance: maxDrop) } ?? true
                comparisons.append(Comparison(model: old.name, metric: metric.name, better: metric.better, baseline: metric.value,
                                              current: match?.value, regressed: regressed))
            }
        }
        for new in current.models where !baseline.models.contains(where: { $0.name == new.name }) {
            notes.append("model '\(new.name)' is new (not in the baseline, not gated)")
        }
        return Result(comparisons: comparisons, notes: notes, maxDrop: maxDrop)
    }

    /// A Markdown table of every comparison.
    public static func table(_ result: Result) -> String {
        var lines = ["| model | metric | baseline | new | change | status |", "|---|---|---|---|---|---|"]
        for c in result.comparisons {
            let new = c.current.map { String(format: "%.4f", $0) } ?? "missing"
            let change = c.change.map { String(format: "%+.4f", $0) } ?? "–"
            lines.append("| \(c.model) | \(c.metric) | \(String(format: "%.4f", c.baseline)) | \(new) | \(change) | \(c.regressed ? "**REGRESSION**" : "ok") |")
        }
        return lines.joined(separator: "\n")
    }

    /// JUnit XML: one test suite per model, one test case per metric, a failure per regression.
    public static func junit(_ result: Result) -> String {
        var xml = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        let models = result.comparisons.map(\.model).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        xml += #"<testsuites name="bulwark gate" tests="\#(result.comparisons.count)" failures="\#(result.regressions.count)">"# + "\n"
        for model in models {
            let cases = result.comparisons.filter { $0.model == model }
            xml += #"  <testsuite name="\#(escape(model))" tests="\#(cases.count)" failures="\#(cases.filter(\.regressed).count)">"# + "\n"
            for c in cases {
                xml += #"    <testcase classname="bulwark.gate.\#(escape(model))" name="\#(escape(c.metric))""#
                if c.regressed {
                    let message = c.current.map {
                        (c.better == .higher ? "dropped" : "rose")
                            + String(format: " from %.4f to %.4f (%+.4f), more than --max-drop %g", c.baseline, $0, $0 - c.baseline, result.maxDrop)
                    } ?? "missing from the new report (baseline \(String(format: "%.4f", c.baseline)))"
                    xml += ">\n" + #"      <failure message="\#(escape(message))" type="regression"/>"# + "\n    </testcase>\n"
                } else {
                    xml += "/>\n"
                }
            }
            xml += "  </testsuite>\n"
        }
        return xml + "</testsuites>\n"
    }

    /// JUnit XML for a gate that could not compare (one errored test case).
    public static func junitError(_ message: String) -> String {
        #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
            + #"<testsuites name="bulwark gate" tests="1" failures="0" errors="1">"# + "\n"
            + #"  <testsuite name="gate" tests="1" failures="0" errors="1">"# + "\n"
            + #"    <testcase classname="bulwark.gate" name="compare reports">"# + "\n"
            + #"      <error message="\#(escape(message))" type="unusable input"/>"# + "\n"
            + "    </testcase>\n  </testsuite>\n</testsuites>\n"
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&apos;")
    }
}

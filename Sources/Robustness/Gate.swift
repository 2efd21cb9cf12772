import Foundation
import TensorCore

/// The CI gate: compares a new report with a baseline, metric by metric (every `Metric` of every
/// model: clean accuracy, each attack at each ε, the worst case, and whatever else an experiment
/// reports), each in its own direction.
///
/// A metric regresses when it got worse by more than `--max-drop` AND the change is significant:
/// McNemar's exact test on the examples whose outcome changed (the reports store one bit per
/// example), Holm-corrected across all tested metrics, at level α. Noise within the interval
/// passes; a real drop fails even if the point estimates look close. Metrics without per-example
/// outcomes (older reports) are compared on point estimates alone, and the gate says so.
///
/// A significant rise of a robust accuracy without a significant rise of the same model's clean
/// accuracy is flagged as suspicious ("an attack got weaker?"): a broken attack looks exactly like
/// a better defence. A new report with failed sanity checks fails the gate. Reports made on other
/// data, with other attacks or by another major version of Bulwark are refused, never silently
/// compared.
public enum Gate {
    /// How the gate decides.
    public struct Policy: Sendable, Equatable {
        /// Largest accepted change for the worse (absolute).
        public var maxDrop: Double
        /// Significance level of the Holm-corrected paired tests.
        public var alpha: Double
        /// Fail when a robust metric rose significantly without clean accuracy rising.
        public var failOnSuspicious: Bool
        /// Pass even if the new report has failed sanity checks.
        public var allowFailedChecks: Bool

        public init(maxDrop: Double = 0.01, alpha: Double = 0.05, failOnSuspicious: Bool = false, allowFailedChecks: Bool = false) {
            self.maxDrop = maxDrop
            self.alpha = alpha
            self.failOnSuspicious = failOnSuspicious
            self.allowFailedChecks = allowFailedChecks
        }
    }

    /// One compared metric.
    public struct Comparison: Sendable, Equatable {
        public enum Status: String, Sendable {
            case ok
            /// Worse by more than --max-drop and significant (or no outcomes to test).
            case regression
            /// Worse by more than --max-drop, but within what chance explains.
            case insignificantDrop = "drop not significant"
            /// Better, significantly, for a robust metric while clean accuracy did not rise.
            case suspiciousRise = "suspicious rise"
            /// Missing from the new report.
            case missing
        }

        public let model: String
        public let metric: String
        public let better: Metric.Direction
        public let baseline: Double
        /// nil when the new report lacks the metric (a removed model or attack counts as a regression).
        public let current: Double?
        /// Examples that succeeded only in the baseline / only in the new report (nil without outcomes).
        public let discordant: (onlyBaseline: Int, onlyCurrent: Int)?
        /// McNemar's exact p-value, and Holm-adjusted.
        public let pValue: Double?
        public let adjustedPValue: Double?
        public let status: Status

        public var change: Double? { current.map { $0 - baseline } }
        public var regressed: Bool { status == .regression || status == .missing }

        public static func == (a: Comparison, b: Comparison) -> Bool {
            a.model == b.model && a.metric == b.metric && a.baseline == b.baseline && a.current == b.current
                && a.pValue == b.pValue && a.status == b.status
        }
    }

    public struct Result: Sendable {
        public let comparisons: [Comparison]
        public let notes: [String]
        public let policy: Policy
        /// Failed sanity checks of the new report.
        public let failedChecks: [String]
        public var maxDrop: Double { policy.maxDrop }
        public var regressions: [Comparison] { comparisons.filter(\.regressed) }
        public var suspicious: [Comparison] { comparisons.filter { $0.status == .suspiciousRise } }
        public var checksFail: Bool { !failedChecks.isEmpty && !policy.allowFailedChecks }
        public var passed: Bool {
            regressions.isEmpty && !checksFail && !(policy.failOnSuspicious && !suspicious.isEmpty)
        }
    }

    public enum GateError: Error, CustomStringConvertible, Equatable {
        case incomparable([String])
        case invalidTolerance(Double)
        case invalidAlpha(Double)
        case inconsistentMetric(report: String, model: String, metric: String, value: Double, fromOutcomes: Double)
        case unreadableOutcomes(report: String, model: String, metric: String)

        public var description: String {
            switch self {
            case .incomparable(let reasons):
                return "the reports are incomparable: " + reasons.joined(separator: "; ")
                    + ". Re-run the baseline with the same configuration, data and Bulwark version (bulwark bench --config …)"
            case .invalidTolerance(let value):
                return "--max-drop must be a number between 0 and 1, got \(value)"
            case .invalidAlpha(let value):
                return "--alpha must be a number between 0 and 1, got \(value)"
            case .inconsistentMetric(let report, let model, let metric, let value, let fromOutcomes):
                return "the \(report) report is inconsistent: metric '\(metric)' of model '\(model)' has value \(value), but its per-example "
                    + "outcomes give \(fromOutcomes); the report was edited or is corrupt: regenerate it with bulwark bench"
            case .unreadableOutcomes(let report, let model, let metric):
                return "the \(report) report is corrupt: the per-example outcomes of metric '\(metric)' of model '\(model)' are not "
                    + "base64 of one bit per example (n); regenerate it with bulwark bench"
            }
        }
    }

    /// The part of a version that changes when results stop being comparable: the major version,
    /// or for 0.x versions the minor one too (semantic versioning: "1.4.2" → "1", "0.3.0" → "0.3").
    static func majorVersion(_ version: String) -> String {
        let parts = version.split(separator: ".")
        return parts.first == "0" && parts.count > 1 ? "0.\(parts[1])" : String(parts.first ?? Substring(version))
    }

    /// Why two reports cannot be compared (empty if they can).
    public static func incompatibilities(baseline: BenchReport, current: BenchReport) -> [String] {
        var reasons: [String] = []
        let (a, b) = (baseline.configuration, current.configuration)
        if a.epsilons != b.epsilons { reasons.append("ε grids differ (\(a.epsilons) vs \(b.epsilons))") }
        if a.attacks != b.attacks {
            let names = (a.attacks.map(\.name), b.attacks.map(\.name))
            reasons.append(names.0 == names.1 ? "the parameters of attacks differ (\(zip(a.attacks, b.attacks).filter { $0 != $1 }.map(\.0.name).joined(separator: ", ")))"
                                              : "attacks differ (\(names.0) vs \(names.1))")
        }
        if let difference = a.dataset.difference(from: b.dataset) { reasons.append("datasets differ (\(difference))") }
        if a.threats != b.threats { reasons.append("the threat experiments differ (\(a.threats.map(\.name)) vs \(b.threats.map(\.name)), or their settings)") }
        if baseline.n != current.n { reasons.append("n differs (\(baseline.n) vs \(current.n))") }
        if let old = baseline.dataSHA256, let new = current.dataSHA256, old != new {
            reasons.append("the test data differs (content sha256 \(old.prefix(12))… vs \(new.prefix(12))…)")
        }
        if majorVersion(baseline.bulwarkVersion) != majorVersion(current.bulwarkVersion) {
            reasons.append("Bulwark major versions differ (\(baseline.bulwarkVersion) vs \(current.bulwarkVersion))")
        }
        return reasons
    }

    /// What the gate compares on each side: named subjects (a model, or a row of a threat
    /// experiment), each with its metrics.
    struct Subject {
        let name: String
        let sha256: String?
        let metrics: [Metric]
        /// Whether a significant rise without a rise of "clean" is suspicious (models under attack).
        var flagsSuspiciousRises = true
    }

    /// - Throws: `GateError.incomparable` with every difference found.
    public static func compare(baseline: BenchReport, current: BenchReport, policy: Policy) throws -> Result {
        try checkPolicy(policy)
        let subjects = { (report: BenchReport) in
            report.models.map { Subject(name: $0.name, sha256: $0.sha256, metrics: $0.metrics) }
                + (report.threats ?? []).flatMap { threat in
                    threat.subjects.map { Subject(name: "\(threat.name): \($0.name)", sha256: nil, metrics: $0.metrics, flagsSuspiciousRises: false) }
                }
        }
        try checkOutcomes(baseline: subjects(baseline), current: subjects(current))
        let reasons = incompatibilities(baseline: baseline, current: current)
        guard reasons.isEmpty else { throw GateError.incomparable(reasons) }
        var notes: [String] = []
        if baseline.data != current.data {
            notes.append("the data sources are described differently (\(baseline.data) vs \(current.data))"
                         + (baseline.dataSHA256 != nil && current.dataSHA256 != nil ? "; their content is the same" : "; check that they hold the same examples"))
        }
        if baseline.dataSHA256 == nil || current.dataSHA256 == nil {
            notes.append("a report records no test-data digest (made by an older Bulwark): the data could not be checked")
        }
        if baseline.configuration.seed != current.configuration.seed {
            notes.append("seeds differ (\(baseline.configuration.seed) vs \(current.configuration.seed)); random starts differ")
        }
        let comparisons = compareSubjects(baseline: subjects(baseline), current: subjects(current), policy: policy, notes: &notes)
        let failedChecks = current.failedChecks.map { "\($0.model): \($0.check.id) \($0.check.title): \($0.check.message)" }
        return Result(comparisons: comparisons, notes: notes, policy: policy, failedChecks: failedChecks)
    }

    /// Two threat reports (`bulwark threat … --report`), compared the same way, row by row.
    /// - Throws: `GateError.incomparable` if they come from different experiments or data.
    public static func compare(baseline: ThreatReport, current: ThreatReport, policy: Policy) throws -> Result {
        try checkPolicy(policy)
        let subjects = { (report: ThreatReport) in
            report.subjects.map { Subject(name: $0.name, sha256: nil, metrics: $0.metrics, flagsSuspiciousRises: false) }
        }
        try checkOutcomes(baseline: subjects(baseline), current: subjects(current))
        let reasons = ThreatReport.incompatibilities(baseline: baseline, current: current)
        guard reasons.isEmpty else { throw GateError.incomparable(reasons) }
        var notes: [String] = []
        if baseline.seed != current.seed { notes.append("seeds differ (\(baseline.seed) vs \(current.seed))") }
        if baseline.data != current.data { notes.append("the data sources are described differently (\(baseline.data) vs \(current.data)); their content is the same") }
        let comparisons = compareSubjects(baseline: subjects(baseline), current: subjects(current), policy: policy, notes: &notes)
        return Result(comparisons: comparisons, notes: notes, policy: policy, failedChecks: [])
    }

    static func checkPolicy(_ policy: Policy) throws {
        guard policy.maxDrop >= 0, policy.maxDrop <= 1 else { throw GateError.invalidTolerance(policy.maxDrop) }
        guard policy.alpha > 0, policy.alpha < 1 else { throw GateError.invalidAlpha(policy.alpha) }
    }

    /// Refuses a metric whose per-example outcomes do not decode or do not give its value.
    static func checkOutcomes(baseline: [Subject], current: [Subject]) throws {
        for (name, subjects) in [("baseline", baseline), ("new", current)] {
            for subject in subjects {
                for metric in subject.metrics where metric.outcomes != nil {
                    guard let flags = metric.outcomeFlags else {
                        throw GateError.unreadableOutcomes(report: name, model: subject.name, metric: metric.name)
                    }
                    guard !flags.isEmpty else { continue }
                    let fraction = Double(flags.filter { $0 }.count) / Double(flags.count)
                    if abs(fraction - metric.value) > 1e-9 {
                        throw GateError.inconsistentMetric(report: name, model: subject.name, metric: metric.name, value: metric.value, fromOutcomes: fraction)
                    }
                }
            }
        }
    }

    /// Pairs every baseline metric with the new one of the same subject and name, runs the paired
    /// tests, Holm-corrects them and decides each metric's status.
    static func compareSubjects(baseline: [Subject], current: [Subject], policy: Policy, notes: inout [String]) -> [Comparison] {
        struct Pair { let model: String; let old: Metric; let new: Metric?; let discordant: (Int, Int)?; let p: Double?; let flagsSuspicious: Bool }
        var pairs: [Pair] = []
        var untested = 0
        for old in baseline {
            let new = current.first { $0.name == old.name }
            if new == nil { notes.append("'\(old.name)' is missing from the new report") }
            if let new, let a = old.sha256, let b = new.sha256, a != b { notes.append("model '\(old.name)' changed (sha256 \(a.prefix(12))… → \(b.prefix(12))…)") }
            for metric in old.metrics {
                let match = new?.metrics.first { $0.name == metric.name }
                if let match, match.better != metric.better {
                    notes.append("metric '\(metric.name)' of '\(old.name)' changed direction; compared as \(metric.better.rawValue)-is-better")
                }
                var discordant: (Int, Int)?
                if let match, let a = metric.outcomeFlags, let b = match.outcomeFlags, a.count == b.count {
                    discordant = (zip(a, b).filter { $0 && !$1 }.count, zip(a, b).filter { !$0 && $1 }.count)
                } else if match != nil {
                    untested += 1
                }
                pairs.append(Pair(model: old.name, old: metric, new: match, discordant: discordant,
                                  p: discordant.map { PairedTest.mcNemarExact(b: $0.0, c: $0.1) }, flagsSuspicious: old.flagsSuspiciousRises))
            }
        }
        if untested > 0 {
            notes.append("\(untested) metric(s) have no per-example outcomes in one report: compared on point estimates and --max-drop only")
        }
        let adjusted = PairedTest.holm(pairs.map(\.p))
        func significant(_ index: Int) -> Bool { adjusted[index].map { $0 <= policy.alpha } ?? false }
        func improved(_ index: Int) -> Bool {
            guard let new = pairs[index].new else { return false }
            let change = new.value - pairs[index].old.value
            return significant(index) && (pairs[index].old.better == .higher ? change > 0 : change < 0)
        }

        var comparisons: [Comparison] = []
        for (index, pair) in pairs.enumerated() {
            let status: Comparison.Status
            if let new = pair.new {
                if pair.old.regressed(to: new.value, tolerance: policy.maxDrop) {
                    status = pair.p == nil || significant(index) ? .regression : .insignificantDrop
                } else if pair.flagsSuspicious && pair.old.name != "clean" && improved(index),
                          !pairs.indices.contains(where: { pairs[$0].model == pair.model && pairs[$0].old.name == "clean" && improved($0) }) {
                    status = .suspiciousRise
                } else {
                    status = .ok
                }
            } else {
                status = .missing
            }
            comparisons.append(Comparison(model: pair.model, metric: pair.old.name, better: pair.old.better, baseline: pair.old.value,
                                          current: pair.new?.value, discordant: pair.discordant.map { (onlyBaseline: $0.0, onlyCurrent: $0.1) },
                                          pValue: pair.p, adjustedPValue: adjusted[index], status: status))
        }
        for new in current where !baseline.contains(where: { $0.name == new.name }) {
            notes.append("'\(new.name)' is new (not in the baseline, not gated)")
        }
        return comparisons
    }

    /// `compare` with the default policy at `maxDrop`.
    public static func compare(baseline: BenchReport, current: BenchReport, maxDrop: Double) throws -> Result {
        try compare(baseline: baseline, current: current, policy: Policy(maxDrop: maxDrop))
    }

    /// A Markdown table of every comparison.
    public static func table(_ result: Result) -> String {
        var lines = ["| model | metric | baseline | new | change | only baseline / only new | p (Holm) | status |",
                     "|---|---|---|---|---|---|---|---|"]
        for c in result.comparisons {
            let new = c.current.map { String(format: "%.4f", $0) } ?? "missing"
            let change = c.change.map { String(format: "%+.4f", $0) } ?? "–"
            let discordant = c.discordant.map { "\($0.onlyBaseline) / \($0.onlyCurrent)" } ?? "–"
            let p = c.adjustedPValue.map { formatP($0) } ?? "–"
            let status = switch c.status {
            case .ok: "ok"
            case .regression, .missing: "**REGRESSION**"
            case .insignificantDrop: "drop not significant"
            case .suspiciousRise: "**an attack got weaker?**"
            }
            lines.append("| \(c.model) | \(c.metric) | \(String(format: "%.4f", c.baseline)) | \(new) | \(change) | \(discordant) | \(p) | \(status) |")
        }
        return lines.joined(separator: "\n")
    }

    static func formatP(_ p: Double) -> String { p < 1e-4 ? String(format: "%.1e", p) : String(format: "%.4f", p) }

    /// JUnit XML: one test suite per model, one test case per metric (a failure per regression, and
    /// per suspicious rise with --fail-on-suspicious), and a suite of the new report's failed checks.
    public static func junit(_ result: Result) -> String {
        func failed(_ c: Comparison) -> Bool { c.regressed || (c.status == .suspiciousRise && result.policy.failOnSuspicious) }
        var xml = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        let models = result.comparisons.map(\.model).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let checkFailures = result.checksFail ? result.failedChecks.count : 0
        let failures = result.comparisons.filter(failed).count + checkFailures
        xml += #"<testsuites name="bulwark gate" tests="\#(result.comparisons.count + result.failedChecks.count)" failures="\#(failures)">"# + "\n"
        for model in models {
            let cases = result.comparisons.filter { $0.model == model }
            xml += #"  <testsuite name="\#(escape(model))" tests="\#(cases.count)" failures="\#(cases.filter(failed).count)">"# + "\n"
            for c in cases {
                xml += #"    <testcase classname="bulwark.gate.\#(escape(model))" name="\#(escape(c.metric))""#
                if failed(c) {
                    let p = c.adjustedPValue.map { ", p = \(formatP($0)) (McNemar, Holm)" } ?? ", no per-example outcomes to test"
                    let message: String
                    if let current = c.current {
                        let direction = (current > c.baseline) ? "rose" : "dropped"
                        message = c.status == .suspiciousRise
                            ? String(format: "rose from %.4f to %.4f without clean accuracy rising: an attack got weaker?", c.baseline, current) + p
                            : direction + String(format: " from %.4f to %.4f (%+.4f), more than --max-drop %g", c.baseline, current, current - c.baseline, result.maxDrop) + p
                    } else {
                        message = "missing from the new report (baseline \(String(format: "%.4f", c.baseline)))"
                    }
                    xml += ">\n" + #"      <failure message="\#(escape(message))" type="\#(c.status == .suspiciousRise ? "suspicious" : "regression")"/>"# + "\n    </testcase>\n"
                } else {
                    xml += "/>\n"
                }
            }
            xml += "  </testsuite>\n"
        }
        if !result.failedChecks.isEmpty {
            xml += #"  <testsuite name="sanity checks" tests="\#(result.failedChecks.count)" failures="\#(checkFailures)">"# + "\n"
            for check in result.failedChecks {
                xml += #"    <testcase classname="bulwark.gate.checks" name="\#(escape(check))""#
                xml += result.checksFail
                    ? ">\n" + #"      <failure message="\#(escape(check))" type="failed sanity check"/>"# + "\n    </testcase>\n"
                    : ">\n      <skipped message=\"allowed by --allow-failed-checks\"/>\n    </testcase>\n"
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

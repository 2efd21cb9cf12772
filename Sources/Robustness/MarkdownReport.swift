import Attacks
import Certification
import Foundation
import _FileSystem

/// Renders a bench report as Markdown: clean vs. adversarial accuracy per model and attack across
/// each norm's ε grid, with 95% intervals and the per-example worst case; then success rates,
/// perturbation sizes and timing; the models' digests; and the sanity checks.
public enum MarkdownReport {
    public static func render(_ report: BenchReport) -> String {
        var lines: [String] = []
        let configuration = report.configuration
        for norm in norms(of: configuration) {
            lines += accuracyTable(report, norm: norm)
        }
        lines.append("| model | attack | ε | success rate | mean ‖δ‖ | max ‖δ‖ | seconds | images/s |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for model in report.models {
            for result in model.attacks {
                lines.append("| \(model.name) | \(result.attack) | \(formatEpsilon(result.epsilon)) | "
                             + String(format: "%.4f | %.4f | %.4f | %.2f | %.0f |", result.successRate, result.meanPerturbation,
                                      Double(result.maxPerturbation), result.seconds, result.imagesPerSecond))
            }
        }
        lines.append("")
        let minimumNorm = report.models.flatMap { model in model.attacks.compactMap { r in r.minimalNorm.map { (model.name, r, $0) } } }
        if !minimumNorm.isEmpty {
            lines.append("| model | minimum-norm attack | run at ε | median minimal ‖δ‖ | robust accuracy at ¼, ½, 1, 2, 4 × ε |")
            lines.append("|---|---|---|---|---|")
            for (model, result, summary) in minimumNorm {
                let median = summary.median.map { String(format: "%.4f", Double($0)) } ?? "not reached"
                lines.append("| \(model) | \(result.attack) | \(formatEpsilon(result.epsilon)) | \(median) | "
                             + summary.curve.map { String(format: "%.4f", $0.accuracy) }.joined(separator: ", ") + " |")
            }
            lines.append("")
        }
        lines += threatTables(report)
        for model in report.models {
            lines.append("- \(model.name): `\(model.path)` (\(model.architecture), sha256 \(model.sha256.prefix(16))…)")
        }
        lines.append("")
        let failed = report.failedChecks
        if failed.isEmpty {
            lines.append("Sanity checks: all \(report.models.flatMap(\.checks).count) passed (docs/sanity-checks.md).")
        } else {
            lines.append("Sanity checks failed:")
            for (model, check) in failed {
                lines.append("- **\(check.id)** \(model): \(check.message) (see \(check.documentation))")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// One table per threat experiment: a row per subject and metric.
    static func threatTables(_ report: BenchReport) -> [String] {
        var lines: [String] = []
        for threat in report.threats ?? [] {
            lines.append("## Threat: \(cellText(threat.name)) (\(threat.type), seed \(report.configuration.seed))")
            lines.append("")
            lines.append("| row | metric | value | 95% interval | n | better |")
            lines.append("|---|---|---|---|---|---|")
            for subject in threat.subjects {
                for metric in subject.metrics {
                    let interval = metric.ci95.map { String(format: "%.3f–%.3f", $0[0], $0[1]) } ?? "–"
                    lines.append("| \(cellText(subject.name)) | \(cellText(metric.name)) | \(String(format: "%.4f", metric.value)) | \(interval) | "
                                 + "\(metric.n.map(String.init) ?? "–") | \(metric.better.rawValue) |")
                }
            }
            lines.append("")
        }
        return lines
    }

    /// Text from a configuration as one table cell: no line breaks, pipes escaped.
    static func cellText(_ text: String) -> String {
        displayable(text).replacingOccurrences(of: "|", with: "\\|")
    }

    /// The norms of the configuration's attacks and certificates, in order of first appearance.
    static func norms(of configuration: BenchConfiguration) -> [Norm] {
        (configuration.attacks.map(\.spec.norm) + configuration.certification.map(\.norm))
            .reduce(into: []) { if !$0.contains($1) { $0.append($1) } }
    }

    /// One table per norm: a row per model and attack of that norm, then the worst case.
    static func accuracyTable(_ report: BenchReport, norm: Norm) -> [String] {
        let configuration = report.configuration
        let attacks = configuration.attacks.filter { $0.spec.norm == norm }
        let certificates = configuration.certification.filter { $0.norm == norm }
        let epsilons = Array(Set(attacks.flatMap { $0.grid(in: configuration) } + certificates.flatMap { $0.grid(in: configuration) })).sorted()
        func cell(_ a: BenchReport.Accuracy?) -> String {
            a.map { String(format: "%.4f (%.3f–%.3f)", $0.accuracy, $0.ci95[0], $0.ci95[1]) } ?? "–"
        }
        let normName = norm == .linf ? "L∞" : "L2"
        var lines: [String] = []
        let scope = norms(of: configuration).count > 1 ? ", \(normName)" : ""
        lines.append("## Clean vs. adversarial accuracy (\(report.data), n = \(report.n), seed \(configuration.seed)\(scope))")
        lines.append("")
        lines.append("| model | attack | " + epsilons.map { "ε = \(formatEpsilon($0))" }.joined(separator: " | ") + " |")
        lines.append("|---|---|" + String(repeating: "---|", count: epsilons.count))
        for model in report.models {
            for attack in attacks {
                let grid = attack.grid(in: configuration)
                let cells = epsilons.map { epsilon -> String in
                    guard grid.contains(epsilon) else { return "–" }
                    return epsilon == 0 ? cell(model.clean)
                        : cell(model.attacks.first { $0.attack == attack.name && $0.epsilon == epsilon }?.accuracy)
                }
                lines.append("| \(model.name) | \(attack.name) | " + cells.joined(separator: " | ") + " |")
            }
            let worst = epsilons.map { epsilon -> String in
                epsilon == 0 ? cell(model.clean)
                    : cell(model.worstCase.first { ($0.norm ?? .linf) == norm && $0.epsilon == epsilon }?.accuracy)
            }
            lines.append("| \(model.name) | **worst case** | " + worst.joined(separator: " | ") + " |")
            for certificate in certificates {
                let cells = epsilons.map { epsilon -> String in
                    cell(model.certified?.first { $0.method == certificate.method.rawValue && $0.norm == norm && $0.epsilon == epsilon }?.accuracy)
                }
                lines.append("| \(model.name) | certified \(certificate.method.displayName) | " + cells.joined(separator: " | ") + " |")
            }
        }
        lines.append("")
        lines.append("Robust accuracy: classified correctly both clean and after the attack (95% Wilson interval); ε = 0 is clean accuracy; \(normName) budgets on pixels in [0, 1]. "
                     + "Worst case: an example counts as robust only if every attack failed on it."
                     + (certificates.isEmpty ? "" : " Certified: classified correctly and proven robust on the whole ball, a lower bound "
                        + "(IBP: interval bounds; CROWN: linear relaxation; Lipschitz: spectral norms); the attacks give upper bounds."))
        lines.append("")
        return lines
    }
}

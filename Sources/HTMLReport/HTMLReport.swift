import Attacks
import Foundation
import Plot
import Robustness

/// A bench report as one self-contained HTML page (no external assets: styles inline, plots as
/// inline SVG, images as data URIs), built with Plot: a summary, then per model its table of
/// accuracies with 95% intervals, the robustness curve (accuracy against ε per attack, the worst
/// case and certified accuracy, with interval bands), convergence curves, the distribution of
/// minimal ‖δ‖ for minimum-norm attacks, the sanity-check panel (linked to the docs) and its model
/// card; then threat experiments and the provenance (configuration, data, machine).
public enum HTMLReport {
    /// - Parameters:
    ///   - cards: model cards by model name (shown when present).
    ///   - grids: example grids by model name (`ExampleGrid.make`; `bench --html` makes them).
    ///   - documentation: prefix of the check panel's links to docs/sanity-checks.md (default:
    ///     relative to the Bulwark repository; give the URL of a hosted copy for reports that travel).
    public static func render(_ report: BenchReport, cards: [String: ModelCard] = [:], grids: [String: ExampleGrid] = [:],
                              documentation: String = "") -> String {
        let html = HTML(
            .lang(.english),
            .head(
                .meta(.charset(.utf8)),
                .meta(.name("viewport"), .content("width=device-width, initial-scale=1")),
                .title("Bulwark robustness report"),
                .style(Self.css)
            ),
            .body(
                .header(
                    .h1("Bulwark robustness report"),
                    .p(.class("subtitle"), .text("\(report.models.count) model(s) on \(report.n) examples of \(report.data) · "
                                                 + "Bulwark \(report.bulwarkVersion) · \(report.created)"))
                ),
                summary(report),
                .forEach(report.models) { model in modelSection(model, report: report, card: cards[model.name], grid: grids[model.name], documentation: documentation) },
                threats(report),
                provenance(report)
            )
        )
        return html.render(indentedBy: .spaces(1))
    }

    /// The summary table: clean accuracy, the worst case at each ε, checks.
    static func summary(_ report: BenchReport) -> Node<HTML.BodyContext> {
        let columns = report.models.first?.worstCase.map { worst in (norm: worst.norm, epsilon: worst.epsilon) } ?? []
        return .section(
            .id("summary"),
            .h2("Summary"),
            .table(
                .tr(.th("model"), .th("clean"), .forEach(columns) { .th(.text("worst case \(label(norm: $0.norm, epsilon: $0.epsilon))")) },
                    .th("sanity checks")),
                .forEach(report.models) { model in
                    .tr(
                        .td(.a(.href("#model-\(anchor(model.name))"), .text(model.name))),
                        .td(.text(percent(model.clean.accuracy))),
                        .forEach(columns) { column in
                            .td(.text(model.worstCase.first { $0.norm == column.norm && $0.epsilon == column.epsilon }.map { percent($0.accuracy.accuracy) } ?? "–"))
                        },
                        .td(.class(model.checks.allSatisfy(\.passed) ? "pass" : "fail"),
                            .text("\(model.checks.filter(\.passed).count) of \(model.checks.count) passed"))
                    )
                }
            )
        )
    }

    static func modelSection(_ model: BenchReport.ModelResult, report: BenchReport, card: ModelCard?, grid: ExampleGrid?,
                             documentation: String) -> Node<HTML.BodyContext> {
        .section(
            .id("model-\(anchor(model.name))"),
            .class("model"),
            .h2(.text("\(model.name)")),
            .p(.class("meta"), .text("\(model.architecture) · \(model.parameters) parameters · \(model.path) · SHA-256 \(model.sha256)")),
            accuracyTable(model),
            .div(.class("charts"), robustnessCurve(model).node(), .forEach(convergenceCharts(model)) { $0.node() },
                 .forEach(minimalNormCharts(model)) { $0.node() }),
            .unwrap(grid) { grid in
                var named = grid
                named.classNames = (0..<max(10, (report.labels?.max() ?? 0) + 1)).map { className($0, report: report) }
                return named.node()
            },
            perClassTable(model, report: report),
            checksPanel(model, documentation: documentation),
            .unwrap(card) { card in
                .details(.summary("Model card"), .pre(.code(.text((try? String(decoding: card.encoded(), as: UTF8.self)) ?? ""))))
            }
        )
    }

    static func accuracyTable(_ model: BenchReport.ModelResult) -> Node<HTML.BodyContext> {
        .table(
            .class("accuracy"),
            .tr(.th("attack"), .th("ε"), .th("robust accuracy"), .th("95% interval"), .th("success rate"), .th("mean ‖δ‖"), .th("images/s")),
            .tr(.td("clean"), .td("0"), .td(.text(percent(model.clean.accuracy))), .td(.text(interval(model.clean.ci95))),
                .td(""), .td(""), .td("")),
            .forEach(model.attacks) { attack in
                .tr(.td(.text(attack.attack), .attribute(named: "title", value: attributeValue(attack.description))),
                    .td(.text(label(norm: attack.norm, epsilon: attack.epsilon))),
                    .td(.text(percent(attack.accuracy.accuracy))), .td(.text(interval(attack.accuracy.ci95))),
                    .td(.text(percent(attack.successRate))), .td(.text(String(format: "%.4f", attack.meanPerturbation))),
                    .td(.text(String(format: "%.0f", attack.imagesPerSecond))))
            },
            .forEach(model.worstCase) { worst in
                .tr(.class("worst"), .td("worst case"), .td(.text(label(norm: worst.norm, epsilon: worst.epsilon))),
                    .td(.text(percent(worst.accuracy.accuracy))), .td(.text(interval(worst.accuracy.ci95))), .td(""), .td(""), .td(""))
            },
            .forEach(model.certified ?? []) { certified in
                .tr(.class("certified"), .td(.text("certified (\(certified.method))")), .td(.text(label(norm: certified.norm, epsilon: certified.epsilon))),
                    .td(.text(percent(certified.accuracy.accuracy))), .td(.text(interval(certified.accuracy.ci95))), .td(""), .td(""), .td(""))
            }
        )
    }

    /// Accuracy against ε: one series per attack, the worst case per norm (thick) and each
    /// certificate (dashed), all starting at the clean accuracy at ε = 0.
    static func robustnessCurve(_ model: BenchReport.ModelResult) -> LineChart {
        let clean = (x: 0.0, y: model.clean.accuracy), cleanBand = (x: 0.0, lower: model.clean.ci95[0], upper: model.clean.ci95[1])
        var series: [LineChart.Series] = []
        for name in ordered(model.attacks.map(\.attack)) {
            let rows = model.attacks.filter { $0.attack == name }.sorted { $0.epsilon < $1.epsilon }
            series.append(.init(name: name, points: [clean] + rows.map { (Double($0.epsilon), $0.accuracy.accuracy) },
                                band: [cleanBand] + rows.map { (Double($0.epsilon), $0.accuracy.ci95[0], $0.accuracy.ci95[1]) }))
        }
        let norms = ordered(model.worstCase.map { $0.norm?.rawValue ?? "linf" })
        for norm in norms {
            let rows = model.worstCase.filter { ($0.norm?.rawValue ?? "linf") == norm }.sorted { $0.epsilon < $1.epsilon }
            series.append(.init(name: norms.count > 1 ? "worst case \(norm)" : "worst case", points: [clean] + rows.map { (Double($0.epsilon), $0.accuracy.accuracy) },
                                band: [cleanBand] + rows.map { (Double($0.epsilon), $0.accuracy.ci95[0], $0.accuracy.ci95[1]) }, emphasised: true))
        }
        for method in ordered((model.certified ?? []).map { "\($0.method) \($0.norm.rawValue)" }) {
            let rows = (model.certified ?? []).filter { "\($0.method) \($0.norm.rawValue)" == method }.sorted { $0.epsilon < $1.epsilon }
            series.append(.init(name: "certified \(method)", points: [clean] + rows.map { (Double($0.epsilon), $0.accuracy.accuracy) }, dashed: true))
        }
        let worst = model.worstCase.map { "\(label(norm: $0.norm, epsilon: $0.epsilon)): \(percent($0.accuracy.accuracy))" }.joined(separator: ", ")
        return LineChart(title: "\(model.name): accuracy under attack", description: "Robust accuracy of \(model.name) against ε for "
                             + "\(series.count) series (attacks, worst case, certificates), from clean accuracy \(percent(model.clean.accuracy)) at ε = 0; "
                             + "worst case \(worst). Bands are 95% Wilson intervals.",
                         xLabel: "ε (perturbation budget)", yLabel: "accuracy", series: series)
    }

    /// Accuracy against iterations (log scale), one chart per ε, one series per iterative attack.
    static func convergenceCharts(_ model: BenchReport.ModelResult) -> [LineChart] {
        let withCurves = model.attacks.filter { ($0.convergence?.count ?? 0) >= 2 }
        return ordered(withCurves.map { label(norm: $0.norm, epsilon: $0.epsilon) }).map { cell in
            let rows = withCurves.filter { label(norm: $0.norm, epsilon: $0.epsilon) == cell }
            return LineChart(title: "\(model.name): convergence at \(cell)",
                             description: "Robust accuracy of \(model.name) at \(cell) had each iterative attack stopped after a given number of "
                                + "iterations (queries for black-box attacks): flat ends mean converged attacks.",
                             xLabel: "iterations (log scale)", yLabel: "accuracy",
                             series: rows.map { .init(name: $0.attack, points: $0.convergence!.map { (Double($0.iterations), $0.accuracy) }) },
                             logX: true, unitY: false)
        }
    }

    /// For minimum-norm attacks: the fraction of examples whose minimal ‖δ‖ is at most r (an
    /// empirical CDF over the examples classified correctly clean; 1 − accuracy at radius r).
    static func minimalNormCharts(_ model: BenchReport.ModelResult) -> [LineChart] {
        let rows = model.attacks.filter { $0.minimalNorm != nil }
        guard !rows.isEmpty else { return [] }
        let series: [LineChart.Series] = rows.map { attack in
            let norms = attack.minimalNorm!.norms.compactMap { $0 }.filter { $0 > 0 }.map(Double.init).sorted()
            let total = Double(max(attack.minimalNorm!.norms.filter { $0 != 0 }.count, 1))
            let step = max(1, norms.count / 200)
            let points = stride(from: 0, to: norms.count, by: step).map { (x: norms[$0], y: Double($0 + 1) / total) }
            return .init(name: "\(attack.attack) \(label(norm: attack.norm, epsilon: attack.epsilon))", points: points)
        }
        return [LineChart(title: "\(model.name): minimal perturbation", description: "Empirical distribution of the smallest ‖δ‖ that "
                            + "each minimum-norm attack needed to fool \(model.name), over the examples classified correctly clean.",
                          xLabel: "minimal ‖δ‖", yLabel: "fraction fooled within ‖δ‖", series: series)]
    }

    /// Fashion-MNIST's class names (Xiao et al., 2017), for reports on it.
    static let fashionMNISTClasses = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    static func className(_ label: Int, report: BenchReport) -> String {
        let fashion = report.configuration.dataset.name.lowercased().contains("fashion") || report.data.lowercased().contains("fashion")
        return fashion && fashionMNISTClasses.indices.contains(label) ? "\(label) \(fashionMNISTClasses[label])" : "\(label)"
    }

    /// Accuracy per class, clean and in the worst case at each ε (from the per-example outcomes
    /// and the report's labels), shaded by value.
    static func perClassTable(_ model: BenchReport.ModelResult, report: BenchReport) -> Node<HTML.BodyContext> {
        guard let labels = report.labels, !labels.isEmpty else { return .empty }
        let columns = model.metrics.filter { ($0.name == "clean" || $0.name.hasPrefix("worst case")) && $0.outcomeFlags?.count == labels.count }
        let flags = columns.map { $0.outcomeFlags! }
        var members: [Int: [Int]] = [:]
        for (i, label) in labels.enumerated() { members[label, default: []].append(i) }
        let shown = 100
        let classes = Array(members.keys.sorted().prefix(shown))
        return .div(
            .class("per-class"),
            .h3("Accuracy per class"),
            .table(
                .tr(.th("class"), .th("n"), .forEach(columns) { .th(.text($0.name)) }),
                .forEach(classes) { label in
                    let rows = members[label]!
                    return .tr(
                        .td(.text(className(label, report: report))), .td(.text(String(rows.count))),
                        .forEach(flags) { outcome in
                            let value = Double(rows.filter { outcome[$0] }.count) / Double(max(rows.count, 1))
                            return .td(.attribute(named: "style", value: String(format: "background:rgba(0,114,178,%.2f)", 0.08 + 0.55 * value)),
                                       .text(percent(value)))
                        }
                    )
                }
            ),
            .if(members.count > shown, .p(.class("meta"), .text("… and \(members.count - shown) more classes (the first \(shown) are shown)")))
        )
    }

    static func checksPanel(_ model: BenchReport.ModelResult, documentation: String) -> Node<HTML.BodyContext> {
        .div(
            .class("checks"),
            .h3(.text("Sanity checks: \(model.checks.filter(\.passed).count) of \(model.checks.count) passed")),
            .table(
                .tr(.th("check"), .th("result"), .th("finding")),
                .forEach(model.checks) { check in
                    .tr(.class(check.passed ? "pass" : "fail"),
                        .td(documentationLink(documentation, check)),
                        .td(.text(check.passed ? "passed" : "FAILED")),
                        .td(.text(check.message)))
                }
            )
        )
    }

    static func threats(_ report: BenchReport) -> Node<HTML.BodyContext> {
        guard let threats = report.threats, !threats.isEmpty else { return .empty }
        return .section(
            .id("threats"),
            .h2("Threat experiments"),
            .forEach(threats) { threat in
                .group(
                    .h3(.text("\(threat.name) (\(threat.type))")),
                    .table(
                        .tr(.th("subject"), .th("metric"), .th("value"), .th("95% interval")),
                        .forEach(threat.subjects) { subject in
                            .forEach(subject.metrics) { metric in
                                .tr(.td(.text(subject.name)), .td(.text(metric.name)), .td(.text(String(format: "%.4f", metric.value))),
                                    .td(.text(metric.ci95.map(interval) ?? "")))
                            }
                        }
                    )
                )
            }
        )
    }

    static func provenance(_ report: BenchReport) -> Node<HTML.BodyContext> {
        let machine = report.machine
        let configuration = (try? report.configuration.encoded()).map { String(decoding: $0, as: UTF8.self) } ?? ""
        return .section(
            .id("provenance"),
            .h2("Provenance"),
            .table(
                .class("provenance"),
                .tr(.th("created"), .td(.text(report.created))),
                .tr(.th("Bulwark"), .td(.text(report.bulwarkVersion))),
                .tr(.th("data"), .td(.text("\(report.data) (n = \(report.n))"))),
                .tr(.th("data SHA-256"), .td(.text(report.dataSHA256 ?? "not recorded"))),
                .tr(.th("seed"), .td(.text(String(report.configuration.seed)))),
                .tr(.th("machine"), .td(.text("\(machine.hostname): \(machine.cpu), \(machine.cores) cores, \(machine.threads) threads, "
                                              + "\(machine.memoryBytes >> 30) GiB, \(machine.operatingSystem)"))),
                .if(machine.blasKernels != nil, .tr(.th("OpenBLAS kernels"), .td(.text(machine.blasKernels ?? ""))))
            ),
            .details(.summary("Configuration (JSON)"), .pre(.code(.text(configuration))))
        )
    }

    /// The check's link to its documentation, if its `documentation` is a plain relative path
    /// (`docs/sanity-checks.md#bw001`); a report is data from elsewhere, and a `javascript:` or
    /// other URL in it is shown as text, not linked.
    static func documentationLink(_ base: String, _ check: BenchReport.CheckResult) -> Node<HTML.BodyContext> {
        let label = "\(check.id) \(check.title)"
        let path = check.documentation
        guard path.allSatisfy({ $0.isLetter || $0.isNumber || "-_./#".contains($0) }), !path.hasPrefix("/"), !path.contains("..") else {
            return .text(label + " (" + path + ")")
        }
        return .a(.href(attributeValue(base + path)), .text(label))
    }

    // MARK: - Formatting

    /// Text for an attribute value: Plot writes attribute values as given, so every value that
    /// comes from a report (names, descriptions, links) is escaped here.
    static func attributeValue(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }

    static func percent(_ value: Double) -> String { String(format: "%.2f%%", value * 100) }

    static func interval(_ ci: [Double]) -> String {
        ci.count == 2 ? String(format: "%.2f–%.2f%%", ci[0] * 100, ci[1] * 100) : ""
    }

    static func label(norm: Norm?, epsilon: Float) -> String {
        (norm == nil || norm == .linf ? "" : "\(norm!.rawValue) ") + "ε = \(formatEpsilon(epsilon))"
    }

    static func anchor(_ name: String) -> String {
        String(name.map { $0.isLetter || $0.isNumber ? $0 : "-" })
    }

    /// Distinct values in order of first appearance.
    static func ordered(_ values: [String]) -> [String] {
        values.reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
    }

    static let css = """
    body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;color:#1b1b1b}
    h1{margin:8px 0 2px}h2{margin-top:34px;border-bottom:1px solid #ddd;padding-bottom:4px}.subtitle,.meta{color:#555;font-size:13px}
    table{border-collapse:collapse;margin:10px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
    th{background:#f4f4f4}tr.worst td{font-weight:600}tr.certified td{font-style:italic}td.pass,tr.pass td:nth-child(2){color:#00603d}
    td.fail,tr.fail td{color:#a33a00;font-weight:600}.charts{display:flex;flex-wrap:wrap;gap:12px}svg.chart{font-size:11px;background:#fff;
    border:1px solid #eee}svg.chart text{fill:#333}pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px;max-height:420px}
    .grid .cells{display:flex;flex-wrap:wrap;gap:8px}.grid figure{margin:0;padding:4px;border:1px solid #ddd;text-align:center}
    .grid figure.fooled{border-color:#D55E00;background:#fff4ec}.grid img{image-rendering:pixelated;margin:1px}
    .grid figcaption{font-size:11px;color:#333;max-width:260px}
    """
}

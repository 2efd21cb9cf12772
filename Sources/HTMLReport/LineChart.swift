import Foundation
import Plot

/// An SVG line chart built as Plot nodes (so every text and attribute is escaped): series of
/// points with optional interval bands, linear or log₁₀ x axis, [0, 1] or data-fitted y axis,
/// ticks, axis labels, a legend, and a `<title>`/`<desc>` pair as its alt text (`role="img"`).
/// Colours are the Okabe–Ito palette (Okabe & Ito, 2008), distinguishable with the common forms of
/// colour blindness; dashes tell series apart in grey print too. Each series' line is one `<path>`
/// with `class="series"` (the tests count them).
struct LineChart {
    struct Series {
        var name: String
        var points: [(x: Double, y: Double)]
        /// A 95% interval per point (drawn as a translucent band).
        var band: [(x: Double, lower: Double, upper: Double)] = []
        var dashed = false
        /// Thicker line (e.g. the worst case).
        var emphasised = false
    }

    var title: String
    var description: String
    var xLabel: String
    var yLabel: String
    var series: [Series]
    var logX = false
    /// y from 0 to 1 (accuracies); otherwise fitted to the data.
    var unitY = true
    var width = 540.0, height = 330.0

    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
    static let dashes = ["", "6 3", "2 3", "8 3 2 3"]

    private let margin = (left: 52.0, right: 170.0, top: 34.0, bottom: 46.0)

    func node() -> Node<HTML.BodyContext> {
        // Only finite points are drawn (a report is data from elsewhere).
        let all = series.flatMap { $0.points }.filter { $0.x.isFinite && $0.y.isFinite }
        let xs = all.map(\.x).filter { !logX || $0 > 0 }
        guard let xMin = xs.min(), let xMax = xs.max() else {
            return .p(.class("empty"), .text("\(title): no data to plot"))
        }
        let (x0, x1) = logX ? (log10(xMin), log10(max(xMax, xMin * 10))) : (xMin, xMax > xMin ? xMax : xMin + 1)
        let ys = all.map(\.y) + series.flatMap { $0.band.flatMap { [$0.lower, $0.upper] } }.filter(\.isFinite)
        // Fitted: the data's range with a margin, at least 0.05 high (a flat curve stays readable).
        let (lowest, highest) = (ys.min() ?? 0, ys.max() ?? 1)
        let span = max(highest - lowest, 0.05)
        var (y0, y1) = unitY ? (0.0, 1.0) : (max(0, lowest - 0.15 * span), highest + 0.15 * span)
        if !(y0.isFinite && y1.isFinite && y1 > y0) { (y0, y1) = (0, 1) }
        guard x0.isFinite, x1.isFinite, x1 > x0 else { return .p(.class("empty"), .text("\(title): the data cannot be plotted")) }
        let plotWidth = width - margin.left - margin.right, plotHeight = height - margin.top - margin.bottom
        func px(_ x: Double) -> Double { margin.left + ((logX ? log10(x) : x) - x0) / (x1 - x0) * plotWidth }
        func py(_ y: Double) -> Double { margin.top + (1 - (y - y0) / (y1 - y0)) * plotHeight }
        func number(_ v: Double) -> String { String(format: "%.1f", v) }

        var nodes: [Node<HTML.BodyContext>] = [
            .attribute(named: "xmlns", value: "http://www.w3.org/2000/svg"),
            .attribute(named: "viewBox", value: "0 0 \(Int(width)) \(Int(height))"),
            .attribute(named: "width", value: "\(Int(width))"),
            .attribute(named: "height", value: "\(Int(height))"),
            .attribute(named: "role", value: "img"),
            .attribute(named: "class", value: "chart"),
            .element(named: "title", text: title),
            .element(named: "desc", text: description),
            text(title, x: margin.left, y: 20, anchor: "start", weight: "bold"),
        ]
        // Grid and ticks.
        for tick in yTicks(y0, y1) {
            nodes.append(line(margin.left, py(tick), margin.left + plotWidth, py(tick), stroke: "#e3e3e3"))
            nodes.append(text(Self.tickLabel(tick), x: margin.left - 6, y: py(tick) + 4, anchor: "end"))
        }
        for tick in xTicks(xMin, xMax) {
            nodes.append(line(px(tick), margin.top, px(tick), margin.top + plotHeight, stroke: "#eeeeee"))
            nodes.append(text(Self.tickLabel(tick), x: px(tick), y: margin.top + plotHeight + 16, anchor: "middle"))
        }
        nodes.append(line(margin.left, margin.top + plotHeight, margin.left + plotWidth, margin.top + plotHeight, stroke: "#555555"))
        nodes.append(line(margin.left, margin.top, margin.left, margin.top + plotHeight, stroke: "#555555"))
        nodes.append(text(xLabel, x: margin.left + plotWidth / 2, y: height - 8, anchor: "middle"))
        nodes.append(.element(named: "text", nodes: [
            .attribute(named: "transform", value: "translate(14 \(number(margin.top + plotHeight / 2))) rotate(-90)"),
            .attribute(named: "text-anchor", value: "middle"), .attribute(named: "class", value: "axis-label"), .text(yLabel),
        ]))
        // Bands, then lines and markers, then the legend.
        for (index, s) in series.enumerated() where s.band.count >= 2 {
            let band = s.band.filter { $0.x.isFinite && $0.lower.isFinite && $0.upper.isFinite && (!logX || $0.x > 0) }
            let upper = band.map { "\(number(px($0.x))),\(number(py($0.upper)))" }
            let lower = band.reversed().map { "\(number(px($0.x))),\(number(py($0.lower)))" }
            nodes.append(.element(named: "polygon", nodes: [
                .attribute(named: "points", value: (upper + lower).joined(separator: " ")),
                .attribute(named: "fill", value: color(index)), .attribute(named: "fill-opacity", value: "0.14"),
                .attribute(named: "class", value: "band"),
            ]))
        }
        for (index, s) in series.enumerated() {
            let points = s.points.filter { $0.x.isFinite && $0.y.isFinite && (!logX || $0.x > 0) }
            guard !points.isEmpty else { continue }
            let d = points.enumerated().map { "\($0.offset == 0 ? "M" : "L")\(number(px($0.element.x))) \(number(py($0.element.y)))" }.joined(separator: " ")
            var attributes: [Node<HTML.BodyContext>] = [
                .attribute(named: "d", value: d), .attribute(named: "fill", value: "none"),
                .attribute(named: "stroke", value: color(index)), .attribute(named: "stroke-width", value: s.emphasised ? "3" : "1.8"),
                .attribute(named: "class", value: "series"), .attribute(named: "data-series", value: HTMLReport.attributeValue(s.name)),
            ]
            let dash = s.dashed ? "5 4" : Self.dashes[index / Self.palette.count % Self.dashes.count]
            if !dash.isEmpty { attributes.append(.attribute(named: "stroke-dasharray", value: dash)) }
            nodes.append(.element(named: "path", nodes: attributes))
            for point in points {
                nodes.append(.element(named: "circle", nodes: [
                    .attribute(named: "cx", value: number(px(point.x))), .attribute(named: "cy", value: number(py(point.y))),
                    .attribute(named: "r", value: "2.6"), .attribute(named: "fill", value: color(index)),
                    .element(named: "title", text: "\(s.name): \(Self.tickLabel(point.x)) → \(String(format: "%.4f", point.y))"),
                ]))
            }
            let legendY = margin.top + 8 + Double(index) * 18
            let legendX = margin.left + plotWidth + 14
            var legendLine: [Node<HTML.BodyContext>] = [
                .attribute(named: "x1", value: number(legendX)), .attribute(named: "y1", value: number(legendY)),
                .attribute(named: "x2", value: number(legendX + 22)), .attribute(named: "y2", value: number(legendY)),
                .attribute(named: "stroke", value: color(index)), .attribute(named: "stroke-width", value: s.emphasised ? "3" : "2"),
            ]
            if !dash.isEmpty { legendLine.append(.attribute(named: "stroke-dasharray", value: dash)) }
            nodes.append(.element(named: "line", nodes: legendLine))
            nodes.append(text(s.name, x: legendX + 28, y: legendY + 4, anchor: "start"))
        }
        return .element(named: "svg", nodes: nodes)
    }

    private func color(_ index: Int) -> String { Self.palette[index % Self.palette.count] }

    private func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String) -> Node<HTML.BodyContext> {
        .element(named: "line", nodes: [
            .attribute(named: "x1", value: String(format: "%.1f", x1)), .attribute(named: "y1", value: String(format: "%.1f", y1)),
            .attribute(named: "x2", value: String(format: "%.1f", x2)), .attribute(named: "y2", value: String(format: "%.1f", y2)),
            .attribute(named: "stroke", value: stroke),
        ])
    }

    private func text(_ content: String, x: Double, y: Double, anchor: String, weight: String? = nil) -> Node<HTML.BodyContext> {
        var nodes: [Node<HTML.BodyContext>] = [
            .attribute(named: "x", value: String(format: "%.1f", x)), .attribute(named: "y", value: String(format: "%.1f", y)),
            .attribute(named: "text-anchor", value: anchor),
        ]
        if let weight { nodes.append(.attribute(named: "font-weight", value: weight)) }
        nodes.append(.text(content))
        return .element(named: "text", nodes: nodes)
    }

    private func yTicks(_ lower: Double, _ upper: Double) -> [Double] {
        let step = Self.niceStep((upper - lower) / 5)
        return Array(stride(from: (lower / step).rounded(.up) * step, through: upper + step * 1e-9, by: step).prefix(20))
    }

    private func xTicks(_ lower: Double, _ upper: Double) -> [Double] {
        if logX {
            var ticks: [Double] = []
            var decade = pow(10, floor(log10(lower)))
            while decade <= upper * 1.0001 && ticks.count < 40 {
                for m in [1.0, 2, 5] where decade * m >= lower * 0.9999 && decade * m <= upper * 1.0001 { ticks.append(decade * m) }
                decade *= 10
            }
            return ticks
        }
        guard upper > lower else { return [lower] }
        let step = Self.niceStep((upper - lower) / 6)
        return Array(stride(from: (lower / step).rounded(.up) * step, through: upper + step * 1e-9, by: step).prefix(20))
    }

    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        let magnitude = pow(10, floor(log10(raw)))
        let fraction = raw / magnitude
        return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * magnitude
    }

    static func tickLabel(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e6 { return String(Int(value)) }
        var text = String(format: "%.4f", value)
        while text.hasSuffix("0") { text.removeLast() }
        if text.hasSuffix(".") { text.removeLast() }
        return text == "-0" ? "0" : text
    }
}

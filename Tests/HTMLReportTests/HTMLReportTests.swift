import Attacks
import BulwarkSecurity
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import HTMLReport
import NeuralNet
import Robustness
import Testing
import _TestSupport

@Suite("HTML report", .serialized)
struct HTMLReportTests {
    /// A small real bench on the committed sample: two random models, FGSM, PGD-5 and DeepFool (a
    /// minimum-norm attack) at two ε, an IBP certificate; one model has a hostile name.
    static func report() throws -> BenchReport { try fixture().report }

    /// The report and each model's example grid (as `bench --html` makes them).
    static func fixture() throws -> (report: BenchReport, grids: [String: ExampleGrid]) {
        let directory = TestSupport.temporaryDirectory()
        for (model, seed) in [("a", UInt64(1)), ("b", 2)] {
            try ModelFile.save(Sequential(spec: try ModelSpec.parse("784-24-10"), seed: seed), to: "\(directory)/\(model).safetensors")
        }
        var configuration = BenchConfiguration.standard
        configuration.epsilons = [0, 0.05, 0.1]
        configuration.dataset.n = 40
        configuration.dataset.dataDir = TestSupport.sampleDirectory
        configuration.models = [.init(name: "a", path: "a.safetensors"), .init(name: #"<script>alert("b")</script> & co"#, path: "b.safetensors")]
        configuration.attacks = [.init(name: "FGSM", spec: .fgsm(FGSM.Parameters())),
                                 .init(name: #"PGD-5 "x" onmouseover='alert(1)'"#, spec: .pgd(try PGD.Parameters(steps: 5, stepSize: .relative(0.5)))),
                                 .init(name: "DeepFool", spec: .deepFool(try DeepFool.Parameters(norm: .linf, steps: 20)))]
        configuration.certification = [.init(method: .ibp, norm: .linf, epsilons: [0.05, 0.1])]
        configuration.checkExamples = 20
        try configuration.validate()
        let outcome = try BenchJob(configuration: configuration, baseDirectory: directory).run(loader: VerifyingFileLoader(allowUnverified: true), threads: 2)
        var grids: [String: ExampleGrid] = [:]
        for (entry, model) in zip(configuration.models, outcome.report.models) {
            let (attack, epsilon) = try #require(ExampleGrid.choice(for: model, in: configuration))
            let network = try ModelFile.load(contentsOf: directory + "/" + entry.path).network
            grids[model.name] = try ExampleGrid.make(model: model.name, network: network, test: outcome.test, entry: attack, epsilon: epsilon, seed: 0)
        }
        return (outcome.report, grids)
    }

    /// Series the report's plots must have: per model, the robustness curve (attacks, the worst
    /// case, certificates), one convergence chart per ε (its iterative attacks), the minimal-norm
    /// distribution (one series per minimum-norm cell).
    static func expectedSeries(_ report: BenchReport) -> (series: Int, charts: Int) {
        report.models.reduce((0, 0)) { total, model in
            let attacks = Set(model.attacks.map(\.attack)).count
            let certificates = Set((model.certified ?? []).map(\.method)).count
            let withCurves = model.attacks.filter { ($0.convergence?.count ?? 0) >= 2 }
            let convergenceCharts = Set(withCurves.map(\.epsilon)).count
            let minimalNorm = model.attacks.filter { $0.minimalNorm != nil }.count
            return (total.0 + attacks + 1 + certificates + withCurves.count + minimalNorm,
                    total.1 + 1 + convergenceCharts + (minimalNorm > 0 ? 1 : 0))
        }
    }

    static func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    @Test("the page is well-formed XML, self-contained, escapes hostile names, and has every plot series with alt text")
    func structure() throws {
        let report = try Self.report()
        let html = HTMLReport.render(report)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        // Well-formed: Foundation's XML parser reads the whole page (HTML5 written as XML-compatible markup).
        let parser = XMLParser(data: Data(html.utf8))
        let parsed = parser.parse()
        #expect(parsed, "line \(parser.lineNumber): \(parser.parserError.map { "\($0)" } ?? "")")
        // Self-contained: no scripts, no external stylesheets, images or links other than the docs.
        #expect(!html.contains("<script") && !html.contains("<link") && !html.contains("src=\"http") && !html.contains("@import"))
        #expect(html.contains("&lt;script&gt;alert(\"b\")&lt;/script&gt; &amp; co"))
        // Names in attributes (the series' data-series) are escaped too: no attribute injection.
        let injected = try NSRegularExpression(pattern: #"<[^>]*\sonmouseover=['"][^>]*>"#)
        #expect(injected.firstMatch(in: html, range: NSRange(html.startIndex..., in: html)) == nil)
        #expect(html.contains("data-series=\"PGD-5 &quot;x&quot; onmouseover=&#39;alert(1)&#39;\""))
        // A hostile report's documentation link is shown, not linked.
        var hostile = report
        hostile.models[0].checks[0].documentation = "javascript:alert(1)"
        let hostilePage = HTMLReport.render(hostile)
        #expect(!hostilePage.contains("href=\"javascript") && hostilePage.contains("(javascript:alert(1))"))
        let (series, charts) = Self.expectedSeries(report)
        #expect(series >= 14 && charts >= 6)
        #expect(Self.count("class=\"series\"", in: html) == series)
        #expect(Self.count("<svg", in: html) == charts)
        #expect(Self.count("role=\"img\"", in: html) == charts && Self.count("<desc>", in: html) == charts)
        #expect(html.contains("docs/sanity-checks.md#bw001") && html.contains("Provenance") && html.contains(report.dataSHA256!))
        #expect(Self.count("data-series=\"worst case\"", in: html) == report.models.count)
        // Per-class accuracy from the labels and per-example outcomes: a row per class present.
        let classes = Set(report.labels ?? []).count
        #expect(classes >= 5 && Self.count("<h3>Accuracy per class</h3>", in: html) == report.models.count)
        #expect(html.contains("Ankle boot") || html.contains("T-shirt/top") || !report.data.contains("fashion"))
        #expect(XMLParser(data: Data(hostilePage.utf8)).parse())
        // Values no bench produces (the decoder refuses them; the renderer must still not hang or trap).
        var absurd = report
        absurd.models[0].attacks[1].convergence?[0].accuracy = 1e308
        absurd.models[0].attacks[1].convergence?[1].accuracy = .infinity
        absurd.models[0].attacks[0].imagesPerSecond = 1e300
        absurd.labels = (0..<report.n).map { $0 }  // one class per example
        let absurdPage = HTMLReport.render(absurd)
        #expect(absurdPage.contains("<svg") && XMLParser(data: Data(absurdPage.utf8)).parse())
        #expect(absurd.impossibleValue() != nil)
    }

    @Test("example grids: two images per class, clean, adversarial and the amplified perturbation, embedded as PNG")
    func grids() throws {
        let (report, grids) = try Self.fixture()
        let classes = Set(report.labels!).count
        for model in report.models {
            let grid = try #require(grids[model.name])
            // The middle ε of {0.05, 0.1}, and the attack with the lowest accuracy there.
            #expect(grid.epsilon == 0.1 && grid.examples.count == 2 * classes)
            let lowest = model.attacks.filter { $0.epsilon == 0.1 }.map(\.accuracy.correct).min()
            #expect(model.attacks.first { $0.attack == grid.attack && $0.epsilon == 0.1 }?.accuracy.correct == lowest)
            for example in grid.examples {
                #expect(example.clean.width == 84 && example.clean.height == 84 && example.perturbation.channels == 1)
                // The perturbation stays within ±ε: every pixel is a valid grey, and the image decodes.
                #expect(try PNGImage.decode(example.perturbation.encoded()) == example.perturbation)
            }
        }
        let html = HTMLReport.render(report, grids: grids)
        #expect(Self.count("<img", in: html) == 3 * grids.values.map(\.examples.count).reduce(0, +))
        #expect(Self.count("class=\"grid\"", in: html) == report.models.count)
        #expect(XMLParser(data: Data(html.utf8)).parse())
    }

    @Test("PNG round trip: what the encoder writes, the decoder reads back (grey and RGB)")
    func png() throws {
        for channels in [1, 3, 4] {
            let pixels = (0..<(7 * 5 * channels)).map { UInt8(truncatingIfNeeded: $0 * 37 + 11) }
            let image = PNGImage(width: 7, height: 5, channels: channels, pixels: pixels)
            #expect(try PNGImage.decode(image.encoded()) == image)
        }
        #expect(throws: PNGImage.PNGError.self) { try PNGImage.decode(Data("not a png".utf8)) }
        var broken = PNGImage(width: 2, height: 2, channels: 1, pixels: [0, 1, 2, 3]).encoded()
        broken[broken.count - 20] ^= 0xFF
        #expect(throws: PNGImage.PNGError.self) { try PNGImage.decode(broken) }
    }

    /// Debian's chromium, installed by scripts/setup.sh --tests.
    static var chromium: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs chromium headless with a time limit; returns stdout.
    static func runChromium(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromium!)
        process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                             "--user-data-dir=" + TestSupport.temporaryDirectory("chromium-profile")] + arguments
        let outputPath = TestSupport.temporaryDirectory("chromium-output") + "/stdout"
        FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try output.close()
        // Read only what there is (Foundation's file reading leaks a buffer on an empty file).
        let size = (try FileManager.default.attributesOfItem(atPath: outputPath)[.size] as? NSNumber)?.intValue ?? 0
        return size == 0 ? "" : try String(contentsOfFile: outputPath, encoding: .utf8)
    }

    @Test("headless Chromium renders the page: the screenshot is not blank and the DOM has every plot series")
    func chromiumScreenshot() throws {
        guard Self.chromium != nil else {
            Issue.record("chromium is not installed; scripts/setup.sh --tests installs Debian's chromium (apt-get install chromium)")
            return
        }
        // BULWARK_REPORT_PAGE screenshots a given page instead (the README's picture is of the shipped
        // models' page from `bulwark bench --html`; BULWARK_REPORT_SCREENSHOT keeps the picture).
        let environment = ProcessInfo.processInfo.environment
        let directory = TestSupport.temporaryDirectory()
        var page = directory + "/report.html"
        let expected: (series: Int, charts: Int, grids: Int, images: Int)
        if let given = environment["BULWARK_REPORT_PAGE"] {
            page = given
            let source = try String(contentsOfFile: given, encoding: .utf8)
            expected = (Self.count("class=\"series\"", in: source), Self.count("<svg", in: source), Self.count("class=\"grid\"", in: source),
                        Self.count("<img", in: source))
        } else {
            let (report, grids) = try Self.fixture()
            try HTMLReport.render(report, grids: grids).write(toFile: page, atomically: true, encoding: .utf8)
            let (series, charts) = Self.expectedSeries(report)
            expected = (series, charts, grids.count, 3 * grids.values.map(\.examples.count).reduce(0, +))
        }
        let screenshot = environment["BULWARK_REPORT_SCREENSHOT"] ?? directory + "/report.png"
        let height = Int(environment["BULWARK_REPORT_SCREENSHOT_HEIGHT"] ?? "") ?? 2200
        _ = try Self.runChromium(["--screenshot=\(screenshot)", "--window-size=1200,\(height)", "file://\(page)"])
        let image = try PNGImage.decode(Data(contentsOf: URL(fileURLWithPath: screenshot)))
        #expect(image.width == 1200 && image.height == height)
        // Not blank: many pixels differ from the background and many colours appear (plots, text).
        var colours = Set<UInt32>(), inked = 0
        for p in stride(from: 0, to: image.width * image.height, by: 1) {
            let o = p * image.channels
            let (r, g, b) = (image.pixels[o], image.pixels[o + min(1, image.channels - 1)], image.pixels[o + min(2, image.channels - 1)])
            colours.insert(UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b))
            if Int(r) + Int(g) + Int(b) < 600 { inked += 1 }
        }
        #expect(inked > image.width * image.height / 50, "\(inked) inked pixels")
        #expect(colours.count > 40, "\(colours.count) colours")
        // The browser's DOM after parsing: every series path and every chart is there.
        let dom = try Self.runChromium(["--dump-dom", "file://\(page)"])
        #expect(expected.series > 0 && Self.count("class=\"series\"", in: dom) == expected.series)
        #expect(Self.count("<svg", in: dom) == expected.charts)
        #expect(Self.count("class=\"grid\"", in: dom) == expected.grids && Self.count("<img", in: dom) == expected.images)
    }
}

import ArgumentParser
import Foundation
import HTMLReport
import Robustness
import _FileSystem

/// `bulwark report`: work on bench reports: merge the parts of a sharded bench, compare two runs.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Render a bench report as HTML, merge the partial reports of a sharded bench, or compare two reports' results.",
        subcommands: [Html.self, Merge.self, Diff.self],
        defaultSubcommand: Html.self
    )

    struct Html: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "html",
            abstract: "Render a bench report as one self-contained HTML page (SVG plots, tables, sanity checks, provenance).",
            discussion: """
            The page needs no network: styles are inline and plots are inline SVG (colour-blind-safe palette, axis \
            labels, alt text). It holds a summary, and per model its accuracies with 95% intervals, the robustness \
            curve (each attack, the worst case, certificates), convergence curves, minimal-perturbation \
            distributions, the sanity checks and the model card (read from beside the model file when present); then \
            threat experiments and the configuration, data and machine. `bulwark bench --html PATH` writes the same page.

            Examples:
              bulwark report bulwark-report.json --html report.html
              bulwark report html bulwark-report.json --out report.html --docs-url https://example.org/bulwark/
            """
        )

        @Argument(help: ArgumentHelp("The bench report (JSON).", valueName: "report"))
        var report: String

        @Option(name: [.customLong("out"), .customLong("html")], help: ArgumentHelp("Where to write the page (.html).", valueName: "path"))
        var out: String

        @Option(help: ArgumentHelp("Prefix of the sanity checks' documentation links (default: docs/… relative to the repository).", valueName: "url"))
        var docsURL: String = ""

        @Flag(help: "Replace an existing output file of another kind (never one of the command's inputs).")
        var force = false

        func validate() throws {
            guard out.hasSuffix(".html") || out.hasSuffix(".htm") else { throw ValidationError("--out must name an .html file, got '\(out)'") }
        }

        func run() throws {
            try OutputPath.prepare(out, for: "--out", replacing: [.htmlReport], inputs: [report], force: force)
            let decoded = try BenchReport.decode(Data(try FileReader.readAll(report, limit: 1 << 30)), source: report)
            try Self.write(decoded, to: out, grids: [:], documentation: docsURL, modelDirectory: PathText.directory(of: report))
            print("wrote \(out)")
        }

        /// Renders and writes the page atomically, with the cards found beside the models' files
        /// (model paths relative to `modelDirectory`, then to the working directory).
        static func write(_ report: BenchReport, to path: String, grids: [String: ExampleGrid], documentation: String, modelDirectory: String) throws {
            var cards: [String: ModelCard] = [:]
            for model in report.models {
                let candidates = model.path.hasPrefix("/") ? [model.path] : [modelDirectory + "/" + model.path, model.path]
                for candidate in candidates.map(ModelCard.path(forModel:)) where FileManager.default.fileExists(atPath: candidate) {
                    do {
                        let card = try JSONDecoder().decode(ModelCard.self, from: Data(try FileReader.readAll(candidate, limit: 16 << 20)))
                        if card.sha256 == model.sha256 { cards[model.name] = card } else {
                            log.warning("\(candidate) describes another file (SHA-256 \(card.sha256)); not shown for \(model.name)")
                        }
                    } catch {
                        log.warning("\(candidate) is not a readable model card (\(error)); not shown")
                    }
                    break
                }
            }
            try AtomicFile.write(Data(HTMLReport.render(report, cards: cards, grids: grids, documentation: documentation).utf8), to: path)
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "merge",
            abstract: "Assemble the report of a sharded bench from the partial reports of all its shards.",
            discussion: """
            Checks that the parts share the configuration, the test data (content digest), the Bulwark version, \
            and the models (SHA-256), that every shard 0…N−1 is there exactly once and that each \
            part holds exactly its shard's cells; then assembles the worst cases, metrics and sanity checks as an \
            unsharded bench would. The merged report prints, gates and renders like any other.

            Examples:
              bulwark report merge part-0.json part-1.json part-2.json part-3.json --out report.json
              bulwark report merge parts/*.json --out report.json --strict
            """
        )

        @Argument(help: ArgumentHelp("The partial reports (bulwark bench --shard I/N), in any order.", valueName: "part"))
        var parts: [String] = []

        @Option(help: ArgumentHelp("Where to write the merged report (JSON).", valueName: "path"))
        var out: String

        @Flag(help: "Replace an existing output file of another kind (never one of the command's inputs).")
        var force = false

        @Flag(help: "Exit with status 1 when a sanity check of the merged report fails.")
        var strict = false

        func validate() throws {
            guard !parts.isEmpty else { throw ValidationError("give the partial reports of every shard, e.g. part-*.json") }
            guard out.hasSuffix(".json") else { throw ValidationError("--out must name a .json file, got '\(out)'") }
        }

        func run() throws {
            try OutputPath.prepare(out, for: "--out", replacing: [.report], inputs: parts, force: force)
            let decoded = try parts.map { path in
                (source: path, report: try BenchPartialReport.decode(Data(try FileReader.readAll(path, limit: 1 << 30)), source: path))
            }
            let report = try BenchPartialReport.merge(decoded)
            try AtomicFile.write(report.encoded(), to: out)
            print(MarkdownReport.render(report))
            print("\nmerged \(parts.count) parts: \(out)")
            for (model, check) in report.failedChecks {
                log.warning("\(check.id) \(model): \(check.message) (\(check.documentation))")
            }
            if strict && !report.failedChecks.isEmpty {
                throw CLIError.checkFailed("\(report.failedChecks.count) sanity check(s) failed and --strict is set")
            }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "diff",
            abstract: "Compare the results of two bench reports, ignoring when, where and how fast they ran: exit 0 if equal, 1 if not.",
            discussion: """
            Every field is compared except created, machine, seconds and images_per_second. Use it to check that a \
            rerun with the same seed, or a merged sharded run, reproduces a report number for number.

            Example:
              bulwark report diff unsharded.json merged.json
            """
        )

        @Argument(help: ArgumentHelp("The first report.", valueName: "report"))
        var first: String

        @Argument(help: ArgumentHelp("The second report.", valueName: "report"))
        var second: String

        func run() throws {
            let reports = try [first, second].map { path in try BenchReport.decode(Data(try FileReader.readAll(path, limit: 1 << 30)), source: path) }
            let differences = try reports[0].differences(from: reports[1])
            if differences.isEmpty {
                print("\(first) and \(second) hold the same results")
                return
            }
            print("\(first) and \(second) differ:\n" + differences.map { "  \($0)" }.joined(separator: "\n"))
            throw CLIError.checkFailed("the reports' results differ (\(differences.count)\(differences.count == 20 ? "+" : "") difference(s))")
        }
    }
}

import ArgumentParser
import Foundation
import Robustness
import _FileSystem

/// `bulwark gate`: fails CI when robustness regressed. Exit codes: 0 within tolerance, 1 on a
/// regression, 2 on unusable input (unreadable or incomparable reports, bad options).
struct GateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gate",
        abstract: "Compare a bench report with a baseline: exit 0 within tolerance, 1 on a regression, 2 on unusable input.",
        discussion: """
        Every metric of every model is compared (clean accuracy, each attack at each ε, the worst case), each in its \
        own direction (higher or lower is better). Reports with different ε grids, attacks, n or datasets are \
        incomparable (exit 2). Reports of schema bulwark-report/1 are read too.

        Examples:
          bulwark gate --baseline baseline.json --report bulwark-report.json --max-drop 0.01
          bulwark gate --baseline baseline.json --report new.json --junit gate.xml
        """
    )

    @Option(help: ArgumentHelp("Baseline report (JSON from bulwark bench).", valueName: "file"))
    var baseline: String?

    @Option(help: ArgumentHelp("New report (JSON from bulwark bench).", valueName: "file"))
    var report: String?

    @Option(help: "Largest accepted change for the worse of any metric (absolute, e.g. 0.01 = one point of accuracy).")
    var maxDrop: Double = 0.01

    @Option(help: ArgumentHelp("Write JUnit XML for CI systems.", valueName: "path"))
    var junit: String?

    func validate() throws {
        guard baseline != nil, report != nil else { throw ValidationError("give both --baseline BASE.json and --report NEW.json") }
        guard maxDrop >= 0, maxDrop <= 1 else { throw ValidationError("--max-drop must be a number between 0 and 1, got \(maxDrop)") }
    }

    func run() throws {
        do {
            guard let baseline, let report else { throw CLIError.usage("give both --baseline BASE.json and --report NEW.json") }
            if let junit { try OutputPath.prepare(junit, for: "--junit") }
            let old = try BenchReport.decode(Data(FileReader.readAll(baseline, limit: 256 << 20)), source: baseline)
            let new = try BenchReport.decode(Data(FileReader.readAll(report, limit: 256 << 20)), source: report)
            let result = try Gate.compare(baseline: old, current: new, maxDrop: maxDrop)
            print(Gate.table(result))
            for note in result.notes { print("note: \(note)") }
            if let junit { try AtomicFile.write(Array(Gate.junit(result).utf8), to: junit) }
            if result.passed {
                print("gate: passed (\(result.comparisons.count) metrics within --max-drop \(maxDrop))")
            } else {
                Console.note("gate: \(result.regressions.count) regression(s) beyond --max-drop \(maxDrop)")
                throw ExitCode(1)
            }
        } catch let exit as ExitCode {
            throw exit
        } catch let error as FileSystemError {
            guard case .cannotWrite = error else { throw unusable(error) }
            throw error  // exit 73: an output cannot be written
        } catch {
            throw unusable(error)
        }
    }

    /// Exit 2 (the documented gate status for unusable input), with the error in the JUnit file too.
    private func unusable(_ error: any Error) -> ExitCode {
        Console.note("error: \(error)")
        if let junit { try? AtomicFile.write(Array(Gate.junitError("\(error)").utf8), to: junit) }
        return ExitCode(2)
    }
}

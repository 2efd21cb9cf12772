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
        own direction (higher or lower is better). A metric fails when it got worse by more than --max-drop AND the \
        change is significant: McNemar's exact test on the examples whose outcome changed, Holm-corrected across \
        metrics, at --alpha. A significant rise of a robust accuracy without a rise of clean accuracy is flagged \
        ("an attack got weaker?"; a failure with --fail-on-suspicious). A new report with failed sanity checks fails \
        unless --allow-failed-checks. Reports with different ε grids, attack parameters, n, test data (content \
        digest) or Bulwark major version are incomparable (exit 2). Reports of schema bulwark-report/1 are read too. \
        Threat reports (bulwark threat poison|membership --report) compare the same way, row by row (backdoor \
        success after a defence, membership AUC, …), if both come from the same experiment settings and data.

        Examples:
          bulwark gate --baseline baseline.json --report bulwark-report.json --max-drop 0.01
          bulwark gate --baseline baseline.json --report new.json --junit gate.xml
          bulwark gate --baseline poison-baseline.json --report poison.json --max-drop 0.02
        """
    )

    @Option(help: ArgumentHelp("Baseline report (JSON from bulwark bench).", valueName: "file"))
    var baseline: String?

    @Flag(help: "Replace an existing output file of another kind (never one of the command's inputs).")
    var force = false

    @Option(help: ArgumentHelp("New report (JSON from bulwark bench).", valueName: "file"))
    var report: String?

    @Option(help: "Largest accepted change for the worse of any metric (absolute, e.g. 0.01 = one point of accuracy).")
    var maxDrop: Double = 0.01

    @Option(help: "Significance level of the paired tests (Holm-corrected across metrics).")
    var alpha: Double = 0.05

    @Flag(help: "Fail when a robust accuracy rose significantly without clean accuracy rising (an attack got weaker?).")
    var failOnSuspicious = false

    @Flag(help: "Pass even if the new report has failed sanity checks.")
    var allowFailedChecks = false

    @Option(help: ArgumentHelp("Write JUnit XML for CI systems.", valueName: "path"))
    var junit: String?

    func validate() throws {
        guard baseline != nil, report != nil else { throw ValidationError("give both --baseline BASE.json and --report NEW.json") }
        guard maxDrop >= 0, maxDrop <= 1 else { throw ValidationError("--max-drop must be a number between 0 and 1, got \(maxDrop)") }
        guard alpha > 0, alpha < 1 else { throw ValidationError("--alpha must be a number between 0 and 1 (e.g. 0.05), got \(alpha)") }
    }

    func run() throws {
        do {
            guard let baseline, let report else { throw CLIError.usage("give both --baseline BASE.json and --report NEW.json") }
            if let junit { try OutputPath.prepare(junit, for: "--junit", replacing: [.junit], inputs: [baseline, report], force: force) }
            let oldData = Data(try FileReader.readAll(baseline, limit: 256 << 20))
            let newData = Data(try FileReader.readAll(report, limit: 256 << 20))
            let policy = Gate.Policy(maxDrop: maxDrop, alpha: alpha, failOnSuspicious: failOnSuspicious, allowFailedChecks: allowFailedChecks)
            let isThreat = [oldData, newData].map { ThreatReport.declaredSchema($0) == ThreatReport.schema }
            let isBench = [oldData, newData].map { ThreatReport.declaredSchema($0).map(BenchReport.readableSchemas.contains) ?? false }
            let result: Gate.Result
            if isThreat[0] != isThreat[1] && (isBench[0] || isBench[1]) {
                throw CLIError.unusableInput("one report is a threat report (bulwark threat … --report) and the other a bench report; "
                                             + "compare reports of the same kind")
            } else if isThreat[0] || isThreat[1] {
                // A file that is neither kind is read as a threat report, whose error names the problem.
                result = try Gate.compare(baseline: ThreatReport.decode(oldData, source: baseline),
                                          current: ThreatReport.decode(newData, source: report), policy: policy)
            } else {
                result = try Gate.compare(baseline: BenchReport.decode(oldData, source: baseline),
                                          current: BenchReport.decode(newData, source: report), policy: policy)
            }
            print(Gate.table(result))
            for note in result.notes { print("note: \(note)") }
            for check in result.failedChecks {
                print("\(result.checksFail ? "failed check" : "failed check (allowed)"): \(check)")
            }
            for c in result.comparisons where c.status == .insignificantDrop {
                print("note: \(c.model) \(c.metric) dropped by \(String(format: "%.4f", -(c.change ?? 0))), beyond --max-drop but not significant (p = \(c.adjustedPValue.map { String(format: "%.3g", $0) } ?? "–"), Holm)")
            }
            for c in result.suspicious {
                print("warning: \(c.model) \(c.metric) rose significantly without clean accuracy rising: an attack got weaker?")
            }
            if let junit { try AtomicFile.write(Array(Gate.junit(result).utf8), to: junit) }
            if result.passed {
                print("gate: passed (\(result.comparisons.count) metrics: no significant drop beyond --max-drop \(maxDrop) at α = \(alpha))")
            } else {
                var reasons: [String] = []
                if !result.regressions.isEmpty {
                    reasons.append("\(result.regressions.count) regression(s) (significant drops beyond --max-drop \(maxDrop), drops without outcomes to test, or missing metrics)")
                }
                if result.checksFail { reasons.append("\(result.failedChecks.count) failed sanity check(s) in the new report (--allow-failed-checks to accept)") }
                if failOnSuspicious && !result.suspicious.isEmpty { reasons.append("\(result.suspicious.count) suspicious rise(s)") }
                Console.note("gate: failed: " + reasons.joined(separator: "; "))
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

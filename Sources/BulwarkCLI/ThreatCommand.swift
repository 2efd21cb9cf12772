import ArgumentParser
import Foundation
import Robustness
import TensorCore
import _FileSystem

/// `bulwark threat`: threats beyond evasion (poisoning, membership inference).
struct ThreatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "threat",
        abstract: "Threats beyond evasion: data poisoning with defences, membership inference, model extraction.",
        subcommands: [ThreatPoisonCommand.self, ThreatMembershipCommand.self, ThreatExtractCommand.self]
    )
}

/// `--report`: a threat experiment's results as a `ThreatReport` that `bulwark gate` compares.
enum ThreatReportFile {
    /// Checks the path before the experiment runs.
    static func prepare(_ path: String, inputs: [String], force: Bool) throws {
        try OutputPath.prepare(path, for: "--report", replacing: [.report], inputs: inputs, force: force)
    }

    static func write(_ path: String, experiment: String, settings: some Encodable, seed: UInt64, data: String,
                      train: LabeledData, test: LabeledData, groups: [(name: String, metrics: [Metric])]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let settingsValue = try JSONDecoder().decode(JSONValue.self, from: encoder.encode(settings))
        let report = ThreatReport(created: ISO8601DateFormatter().string(from: Date()), experiment: experiment, settings: settingsValue,
                                  seed: seed, data: data, dataSHA256: ThreatReport.dataDigest(train: train, test: test),
                                  subjects: groups.map { ThreatReport.Subject(name: $0.name, metrics: $0.metrics) })
        try AtomicFile.write(report.encoded(), to: path)
        log.info("threat report written to \(path)")
    }
}

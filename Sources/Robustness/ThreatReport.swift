import Foundation
import Training
import TensorCore
import BulwarkSecurity
import _FileSystem

/// The JSON report of a threat experiment (`bulwark threat poison|membership --report`, schema
/// `bulwark-threat-report/1`): what ran (the experiment, its settings, seed and data), and one
/// subject per row (a poison rate, a membership target) with its results as generic `Metric`s,
/// which `bulwark gate` compares exactly as it compares bench reports (same tolerance, the same
/// paired tests where per-example outcomes are recorded).
///
/// ```json
/// {"schema": "bulwark-threat-report/1", "experiment": "poison", "settings": {…}, "seed": 0,
///  "subjects": [{"name": "backdoor rate=0.1", "metrics": [{"name": "attack success rate", "value": 0.98, "better": "lower", …}]}]}
/// ```
public struct ThreatReport: Codable, Equatable, Sendable {
    public static let schema = "bulwark-threat-report/1"

    public var schema: String
    public var bulwarkVersion: String
    public var created: String
    /// `poison` or `membership`.
    public var experiment: String
    /// The experiment's settings (attack, rates, defences, recipe; or the membership
    /// configuration), canonical JSON: two reports compare only if these are equal.
    public var settings: JSONValue
    public var seed: UInt64
    public var data: String
    /// SHA-256 of the training and test examples' contents (`LabeledData.contentDigest` of each,
    /// hashed together): reports on other data are refused, whatever the files were called.
    public var dataSHA256: String
    public var subjects: [Subject]

    public struct Subject: Codable, Equatable, Sendable {
        public var name: String
        public var metrics: [Metric]

        public init(name: String, metrics: [Metric]) {
            self.name = name
            self.metrics = metrics
        }
    }

    public init(bulwarkVersion: String = BulwarkVersion.current, created: String, experiment: String, settings: JSONValue, seed: UInt64,
                data: String, dataSHA256: String, subjects: [Subject]) {
        schema = Self.schema
        self.bulwarkVersion = bulwarkVersion
        self.created = created
        self.experiment = experiment
        self.settings = settings
        self.seed = seed
        self.data = data
        self.dataSHA256 = dataSHA256
        self.subjects = subjects
    }

    enum CodingKeys: String, CodingKey {
        case schema, created, experiment, settings, seed, data, subjects
        case bulwarkVersion = "bulwark_version", dataSHA256 = "data_sha256"
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Reads a report, checking its schema and values.
    /// - Throws: `BenchError.invalidReport` naming the file and the problem.
    public static func decode(_ data: Data, source: String) throws -> ThreatReport {
        let report: ThreatReport
        do {
            report = try StrictJSON.decodeRejectingUnknownFields(ThreatReport.self, from: data)
        } catch {
            throw BenchError.invalidReport(path: source, problem: "it does not parse as a threat report (\(decodingErrorText(error)))")
        }
        guard report.schema == schema else {
            throw BenchError.invalidReport(path: source, problem: "its schema is '\(report.schema)', this Bulwark reads \(schema)")
        }
        if let problem = report.impossibleValue() {
            throw BenchError.invalidReport(path: source, problem: "it holds an impossible value: \(problem)")
        }
        return report
    }

    /// The first value no experiment could have produced, if any.
    public func impossibleValue() -> String? {
        guard !subjects.isEmpty else { return "it lists no subjects" }
        for subject in subjects {
            for metric in subject.metrics {
                if let problem = metric.impossibleValue() { return "\(subject.name) metric \(metric.name) \(problem)" }
            }
        }
        return nil
    }

    /// Why two threat reports cannot be compared (empty if they can).
    public static func incompatibilities(baseline: ThreatReport, current: ThreatReport) -> [String] {
        var reasons: [String] = []
        if baseline.experiment != current.experiment { reasons.append("experiments differ (\(baseline.experiment) vs \(current.experiment))") }
        if baseline.settings != current.settings { reasons.append("the experiments' settings differ") }
        if baseline.dataSHA256 != current.dataSHA256 {
            reasons.append("the data differs (content sha256 \(baseline.dataSHA256.prefix(12))… vs \(current.dataSHA256.prefix(12))…)")
        }
        if Gate.majorVersion(baseline.bulwarkVersion) != Gate.majorVersion(current.bulwarkVersion) {
            reasons.append("Bulwark major versions differ (\(baseline.bulwarkVersion) vs \(current.bulwarkVersion))")
        }
        return reasons
    }

    /// The digest a threat report records for its training and test examples.
    public static func dataDigest(train: LabeledData, test: LabeledData) -> String {
        FileDigest.sha256(Array((train.contentDigest + test.contentDigest).utf8))
    }

    /// Which schema a report file declares (`bulwark-report/…` or `bulwark-threat-report/…`), if any.
    public static func declaredSchema(_ data: Data) -> String? {
        struct Header: Decodable { let schema: String }
        return (try? JSONDecoder().decode(Header.self, from: data))?.schema
    }
}

extension Metric {
    /// Why this metric cannot be a measurement (nil if it can).
    public func impossibleValue() -> String? {
        guard value.isFinite else { return "is \(value)" }
        if let count = n {
            guard count > 0, (0...1).contains(value) else { return "is \(value) over n = \(count) (a proportion lies in [0, 1])" }
        }
        if let ci = ci95 {
            guard ci.count == 2, ci[0] <= value + 1e-9, value <= ci[1] + 1e-9 else { return "has the interval \(ci), which does not contain \(value)" }
        }
        return nil
    }
}

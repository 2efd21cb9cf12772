import Foundation
import TensorCore
import _FileSystem

/// What one shard of a bench (`bulwark bench --shard I/N`) produced (schema
/// `bulwark-partial-report/1`): the configuration, the data's digest, every model's identity and
/// clean outcomes, and the results of the shard's cells with their per-example data.
/// `merge` checks that a set of parts belongs together and assembles the report an unsharded run
/// gives.
public struct BenchPartialReport: Codable, Equatable, Sendable {
    public static let schema = "bulwark-partial-report/1"

    public var schema: String
    public var bulwarkVersion: String
    public var created: String
    public var machine: BenchReport.Machine
    public var configuration: BenchConfiguration
    public var data: String
    public var dataSHA256: String
    public var n: Int
    /// The test examples' labels.
    public var labels: [Int]
    public var shard: BenchShard
    public var models: [BenchRunner.ModelInfo]
    public var cells: [BenchCellResult]

    public init(bulwarkVersion: String = BulwarkVersion.current, created: String, machine: BenchReport.Machine,
                configuration: BenchConfiguration, data: String, dataSHA256: String, n: Int, labels: [Int], shard: BenchShard,
                models: [BenchRunner.ModelInfo], cells: [BenchCellResult]) {
        schema = Self.schema
        self.bulwarkVersion = bulwarkVersion
        self.created = created
        self.machine = machine
        self.configuration = configuration
        self.data = data
        self.dataSHA256 = dataSHA256
        self.n = n
        self.labels = labels
        self.shard = shard
        self.models = models
        self.cells = cells
    }

    enum CodingKeys: String, CodingKey {
        case schema, created, machine, configuration, data, n, labels, shard, models, cells
        case bulwarkVersion = "bulwark_version", dataSHA256 = "data_sha256"
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Reads a partial report, checking its schema.
    /// - Throws: `BenchError.invalidReport` naming the file and the problem.
    public static func decode(_ data: Data, source: String) throws -> BenchPartialReport {
        struct Header: Decodable { let schema: String }
        guard let header = try? JSONDecoder().decode(Header.self, from: data) else {
            throw BenchError.invalidReport(path: source, problem: "it is not a JSON object with a \"schema\"")
        }
        guard header.schema == schema else {
            let hint = BenchReport.readableSchemas.contains(header.schema) ? " (it is a complete report, not a shard's part)" : ""
            throw BenchError.invalidReport(path: source, problem: "its schema is '\(header.schema)'\(hint); report merge reads \(schema), "
                                           + "written by bulwark bench --shard I/N")
        }
        do {
            return try StrictJSON.decodeRejectingUnknownFields(BenchPartialReport.self, from: data)
        } catch {
            throw BenchError.invalidReport(path: source, problem: "it does not parse (\(decodingErrorText(error)))")
        }
    }

    /// The report of the unsharded bench, from all N parts of a sharded one (in any order).
    /// - Throws: `BenchError.invalidReport` when the parts do not belong together (configuration,
    ///   data, Bulwark version, models or shard count differ; the thread count may, as results do
    ///   not depend on it), when a shard is missing or
    ///   given twice, or when a part's cells are not exactly its shard's.
    public static func merge(_ parts: [(source: String, report: BenchPartialReport)]) throws -> BenchReport {
        guard let first = parts.first else { throw BenchError.invalidConfiguration("report merge needs the partial reports of every shard") }
        let reference = first.report
        func refuse(_ source: String, _ problem: String) -> BenchError { .invalidReport(path: source, problem: problem) }
        for (source, part) in parts.dropFirst() {
            let other = "than \(first.source)"
            guard part.configuration == reference.configuration else { throw refuse(source, "it has a different configuration \(other)") }
            guard part.dataSHA256 == reference.dataSHA256, part.n == reference.n, part.labels == reference.labels else {
                throw refuse(source, "it was run on different test data \(other) (data SHA-256 \(part.dataSHA256), n = \(part.n))")
            }
            guard part.bulwarkVersion == reference.bulwarkVersion else {
                throw refuse(source, "it was made by Bulwark \(part.bulwarkVersion), \(first.source) by \(reference.bulwarkVersion); rerun every shard with one version")
            }
            guard part.shard.count == reference.shard.count else {
                throw refuse(source, "it is a shard of \(part.shard.count), \(first.source) of \(reference.shard.count)")
            }
            for model in part.models {
                guard let known = reference.models.first(where: { $0.name == model.name }), known == model else {
                    throw refuse(source, "its model '\(model.name)' differs \(other) (SHA-256 \(model.sha256)): the model file changed between shards")
                }
            }
        }
        let count = reference.shard.count
        var seen: [Int: String] = [:]
        for (source, part) in parts {
            if let earlier = seen[part.shard.index] {
                throw refuse(source, "shard \(part.shard) is given twice (also \(earlier)): the parts overlap")
            }
            seen[part.shard.index] = source
            guard part.n >= 1, part.models.allSatisfy({ $0.clean.n == part.n && $0.clean.outcomeFlags?.count == part.n }) else {
                throw refuse(source, "its models' clean outcomes do not cover its n = \(part.n) examples")
            }
            for cell in part.cells {
                if let problem = cell.problem(n: part.n) { throw refuse(source, "cell '\(cell.cell)': \(problem)") }
            }
            let expected = part.shard.cells(of: part.configuration)
            let held = part.cells.map(\.cell)
            guard Set(held) == Set(expected), held.count == expected.count else {
                let extra = held.filter { !expected.contains($0) }, missing = expected.filter { !held.contains($0) }
                throw refuse(source, "its cells are not those of shard \(part.shard)"
                             + (extra.isEmpty ? "" : "; it holds \(extra.map(\.description).joined(separator: ", ")), which are other shards'")
                             + (missing.isEmpty ? "" : "; it lacks \(missing.map(\.description).joined(separator: ", "))"))
            }
        }
        let absent = (0..<count).filter { seen[$0] == nil }
        guard absent.isEmpty else {
            throw BenchError.invalidReport(path: first.source, problem: "shard(s) \(absent.map { "\($0)/\(count)" }.joined(separator: ", ")) are missing: "
                                           + "merge needs all \(count) parts")
        }
        let configuration = reference.configuration
        let cells = parts.flatMap(\.report.cells)
        let runner = BenchRunner(configuration: configuration)
        let models = configuration.models.compactMap { entry in reference.models.first { $0.name == entry.name } }
        guard models.count == configuration.models.count else {
            throw refuse(first.source, "it lacks the identity of a configured model (\(configuration.models.map(\.name).joined(separator: ", ")))")
        }
        let results = models.map { model in runner.assemble(model, cells: cells.filter { $0.cell.model == model.name }, n: reference.n) }
        let threats = configuration.threats.compactMap { threat in
            cells.first { $0.cell == .threat(name: threat.name) }?.threat
        }
        var report = BenchReport(bulwarkVersion: reference.bulwarkVersion, created: ISO8601DateFormatter().string(from: Date()), machine: reference.machine,
                                 configuration: configuration, data: reference.data, dataSHA256: reference.dataSHA256, n: reference.n,
                                 models: results, threats: configuration.threats.isEmpty ? nil : threats)
        report.labels = reference.labels
        if let problem = report.impossibleValue() { throw refuse(first.source, "the merged report would hold an impossible value: \(problem)") }
        return report
    }
}

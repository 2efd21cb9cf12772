import Attacks
import BulwarkSecurity
import Certification
import Foundation
import NeuralNet
@testable import Robustness
import TensorCore
import Testing
import _FileSystem
import _TestSupport

@Suite("Sharded bench: cells, partial reports, merge")
struct BenchShardTests {
    /// Two small random models on the committed sample (28×28 images, so BW005's Square runs too),
    /// two attacks over two ε, an IBP certificate.
    static func setup(_ name: String = #function) throws -> BenchJob {
        let directory = TestSupport.temporaryDirectory(name)
        for (model, seed) in [("a", UInt64(1)), ("b", 2)] {
            try ModelFile.save(Sequential(spec: try ModelSpec.parse("784-24-10"), seed: seed), to: "\(directory)/\(model).safetensors")
        }
        var configuration = BenchConfiguration.standard
        configuration.epsilons = [0, 0.05, 0.1]
        configuration.dataset.n = 40
        configuration.dataset.dataDir = TestSupport.sampleDirectory
        configuration.models = [.init(name: "a", path: "a.safetensors"), .init(name: "b", path: "b.safetensors")]
        configuration.attacks = [.init(name: "FGSM", spec: .fgsm(FGSM.Parameters())),
                                 .init(name: "PGD-5", spec: .pgd(try PGD.Parameters(steps: 5, stepSize: .relative(0.5))))]
        configuration.certification = [.init(method: .ibp, norm: .linf, epsilons: [0.05])]
        configuration.checkExamples = 20
        try configuration.validate()
        return BenchJob(configuration: configuration, baseDirectory: directory)
    }

    static var loader: VerifyingFileLoader { VerifyingFileLoader(allowUnverified: true) }

    static func parts(_ job: BenchJob, count: Int) throws -> [(source: String, report: BenchPartialReport)] {
        try (0..<count).map { index in
            let shard = try BenchShard(index: index, count: count)
            // Through JSON, as the parts travel between machines.
            let part = try job.run(shard: shard, loader: loader, threads: 2)
            return (source: "part-\(index).json", report: try BenchPartialReport.decode(part.encoded(), source: "part-\(index).json"))
        }
    }

    @Test("I/N is parsed and checked; every N splits the cells into disjoint shards that cover them all")
    func partition() throws {
        #expect(try BenchShard(parsing: "0/4") == BenchShard(index: 0, count: 4))
        for bad in ["4/4", "-1/2", "1/0", "a/b", "1", "1/2/3", ""] {
            let error = #expect(throws: WorkShard.Invalid.self) { try BenchShard(parsing: bad) }
            #expect("\(error!)".contains("I/N") || "\(error!)".contains("0 ≤ I < N"), "\(bad): \(error!)")
        }
        let configuration = try Self.setup().configuration
        let cells = configuration.cells()
        // 2 models × (2 attacks × 2 ε + 1 certificate + checks).
        #expect(cells.count == 12 && Set(cells).count == 12)
        for count in 1...13 {
            let shards = try (0..<count).map { try BenchShard(index: $0, count: count).cells(of: configuration) }
            #expect(shards.flatMap { $0 }.count == cells.count)
            #expect(Set(shards.flatMap { $0 }) == Set(cells))
        }
        // Cells round-trip through JSON.
        let decoded = try JSONDecoder().decode([BenchCell].self, from: JSONEncoder().encode(cells))
        #expect(decoded == cells)
    }

    @Test("the merged parts give the unsharded report number for number, in any order, and it gates as equal")
    func mergeEqualsUnsharded() throws {
        let job = try Self.setup()
        let full = try job.run(loader: Self.loader, threads: 2).report
        let parts = try Self.parts(job, count: 3)
        let merged = try BenchPartialReport.merge(parts)
        #expect(try full.differences(from: merged) == [])
        #expect(full.labels?.count == 40 && merged.labels == full.labels)
        #expect(try BenchPartialReport.merge(parts.reversed()).differences(from: full) == [])
        #expect(try BenchPartialReport.merge([parts[1], parts[2], parts[0]]).differences(from: full) == [])
        #expect(merged.models.map(\.checks.count) == full.models.map(\.checks.count))
        #expect(merged.models.allSatisfy { $0.checks.contains { $0.id == "BW005" && !$0.message.contains("skipped") } })
        let gate = try Gate.compare(baseline: full, current: merged, policy: .init(maxDrop: 0))
        #expect(gate.passed && gate.regressions.isEmpty)
        // A single shard is the whole bench.
        #expect(try BenchPartialReport.merge(Self.parts(job, count: 1)).differences(from: full) == [])

        // differences() finds a changed number.
        var changed = merged
        changed.models[1].attacks[2].accuracy.correct += 1
        #expect(try changed.differences(from: full).contains { $0.hasPrefix("$.models[1].attacks[2].accuracy.correct") })
    }

    @Test("merge refuses missing, repeated, foreign or tampered parts, naming the problem")
    func mergeRefuses() throws {
        let job = try Self.setup()
        let parts = try Self.parts(job, count: 3)
        func refusal(_ given: [(source: String, report: BenchPartialReport)]) -> String {
            let error = #expect(throws: BenchError.self) { try BenchPartialReport.merge(given) }
            return error.map { "\($0)" } ?? ""
        }
        #expect(refusal(Array(parts.prefix(2))).contains("2/3 are missing"))
        #expect(refusal([parts[0], parts[1], parts[1], parts[2]]).contains("given twice"))

        var reseeded = parts[2]
        reseeded.report.configuration.seed += 1
        #expect(refusal([parts[0], parts[1], reseeded]).contains("different configuration"))

        var otherData = parts[1]
        otherData.report.dataSHA256 = String(repeating: "f", count: 64)
        #expect(refusal([parts[0], otherData, parts[2]]).contains("different test data"))

        var relabelled = parts[1]
        relabelled.report.labels[0] = (relabelled.report.labels[0] + 1) % 10
        #expect(refusal([parts[0], relabelled, parts[2]]).contains("different test data"))

        // Another thread count is fine: attack results do not depend on it.
        var threads = parts[1]
        threads.report.machine.threads = 1
        #expect(try BenchPartialReport.merge([parts[0], threads, parts[2]]).models.count == 2)

        var version = parts[1]
        version.report.bulwarkVersion = "0.0.1"
        #expect(refusal([parts[0], version, parts[2]]).contains("one version"))

        var model = parts[2]
        model.report.models[0].sha256 = String(repeating: "0", count: 64)
        #expect(refusal([parts[0], parts[1], model]).contains("model file changed"))

        // A cell moved from one part to another: both parts are no longer their shards.
        var (gainer, loser) = (parts[0], parts[1])
        gainer.report.cells.append(loser.report.cells.removeLast())
        #expect(refusal([gainer, parts[1], parts[2]]).contains("other shards'"))
        #expect(refusal([parts[0], loser, parts[2]]).contains("it lacks"))

        // Hostile per-example records: a short fooled_at, outcomes of the wrong length, a missing result.
        var short = parts[1]
        let iterative = try #require(short.report.cells.firstIndex { $0.fooledAt != nil })
        short.report.cells[iterative].fooledAt!.removeLast()
        #expect(refusal([parts[0], short, parts[2]]).contains("fooled_at has 39 entries, not 40"))
        var truncated = parts[1]
        let attack = try #require(truncated.report.cells.firstIndex { $0.metric != nil })
        truncated.report.cells[attack].metric!.n = 39
        #expect(refusal([parts[0], truncated, parts[2]]).contains("one outcome per example"))
        let withChecks = try #require(parts.firstIndex { $0.report.cells.contains { $0.checks != nil } })
        var halfChecks = parts
        let checksCell = try #require(halfChecks[withChecks].report.cells.firstIndex { $0.checks != nil })
        halfChecks[withChecks].report.cells[checksCell].checks!.randomness = nil
        #expect(refusal(halfChecks).contains("some of the model's checks"))
        var absurd = parts[1]
        let curve = try #require(absurd.report.cells.firstIndex { $0.attack?.convergence != nil })
        absurd.report.cells[curve].attack!.convergence![0].accuracy = 1e308
        #expect(refusal([parts[0], absurd, parts[2]]).contains("convergence point"))

        var empty = parts[2]
        empty.report.cells[0].attack = nil
        empty.report.cells[0].certified = nil
        empty.report.cells[0].checks = nil
        #expect(refusal([parts[0], parts[1], empty]).contains("it has no"))

        var regrouped = parts[0]
        regrouped.report.shard = try BenchShard(index: 0, count: 4)
        #expect(refusal([regrouped, parts[1], parts[2]]).contains("is a shard of 3, part-0.json of 4"))
        #expect(refusal([]).contains("every shard"))
    }

    @Test("a partial report is recognised as a report; a complete report is not accepted as a part")
    func files() throws {
        let job = try Self.setup()
        let directory = job.baseDirectory
        let part = try job.run(shard: try BenchShard(index: 1, count: 2), loader: Self.loader, threads: 2)
        try AtomicFile.write(part.encoded(), to: directory + "/part.json")
        #expect(FileKind.of(directory + "/part.json") == .partialReport)
        // A shard read from a file is checked like one given on the command line.
        var json = try #require(try JSONSerialization.jsonObject(with: part.encoded()) as? [String: Any])
        json["shard"] = ["index": 0, "count": 0]
        let zero = #expect(throws: BenchError.self) { try BenchPartialReport.decode(JSONSerialization.data(withJSONObject: json), source: "zero.json") }
        #expect("\(zero!)".contains("0 ≤ I < N"), "\(zero!)")
        let full = try job.run(loader: Self.loader, threads: 2).report
        let error = #expect(throws: BenchError.self) { try BenchPartialReport.decode(full.encoded(), source: "full.json") }
        #expect("\(error!)".contains("complete report"))
        var trainJob = job
        trainJob.trainMissing = true
        #expect(throws: BenchError.self) { try trainJob.run(shard: BenchShard(index: 0, count: 2), loader: Self.loader, threads: 2) }
    }
}

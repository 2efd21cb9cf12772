import Attacks
import Benchmark
import Datasets
import Foundation
import NeuralNet
import TensorCore

// Attack loops on the shipped models (../models, made by `bulwark bench --cards`).
//
// - "PGD-10 on a batch of 128": one `perturb` call, sharded in two, 10 steps (11 forward and 10
//   backward passes) per input; the malloc count must equal the "empty" benchmark's (zero per step).
// - "PGD-10 over the test set": images/s over the 10,000 Fashion-MNIST test images (the committed
//   1,000-image sample if the Debian package is missing), as `bulwark attack` runs it. PGD stops
//   attacking an input once it is fooled, so the robust model is the harder (slower) case.

private func repositoryRoot() -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
}

private func loadModel(_ name: String) throws -> Sequential {
    try ModelFile.load(contentsOf: repositoryRoot() + "/models/\(name)").network
}

private func testSet() throws -> LabeledData {
    let directory = MNISTFormat.hasSplit(.test, in: DataSource.debianDirectory)
        ? DataSource.debianDirectory : repositoryRoot() + "/" + DataSource.sampleDirectory
    return try MNISTFormat.load(directory: directory, split: .test)
}

let attackBenchmarks: @Sendable () -> Void = {
    for (label, file) in [("standard", "mlp-standard.safetensors"), ("PGD-trained", "mlp-pgd.safetensors")] {
        Benchmark("PGD-10 on a batch of 128, \(label) model, sharded") { benchmark in
            let network = try loadModel(file)
            let data = try testSet().prefix(128)
            let shards = WorkerPool.defaultShardCount
            let attack = try PGD(epsilon: 0.1, steps: 10)
            let rows = 128 / shards
            network.reserve(rows: rows, shards: shards)
            let workspaces = (0..<shards).map { _ in attack.makeWorkspace(rows: rows, features: 784) }
            let output = FloatBuffer(count: 128 * 784)
            var features = data.features
            let labels = SendablePointer<Int>(.allocate(capacity: 128))
            for i in 0..<128 { labels.pointer[i] = data.labels[i] }
            let generators = SendablePointer<RandomGenerator>(.allocate(capacity: shards))
            generators.pointer.initialize(repeating: RandomGenerator(seed: 1), count: shards)
            let box = Workspaces(workspaces)
            features.withMatrix { clean in
                let body: @Sendable (Int) -> Void = { s in
                    let part = WorkerPool.shardRange(128, part: s, parts: shards)
                    try? attack.perturb(clean.rows(part), labels: labels.pointer + part.lowerBound, targets: nil,
                                        into: output.matrix(rows: 128, columns: 784).rows(part), classifier: network,
                                        shard: s, workspace: box.items[s], generator: &generators.pointer[s])
                }
                WorkerPool.dedicating {  // as `bulwark attack` runs it
                    network.pool.run(shards: shards, body)  // warm-up outside the measurement
                    benchmark.startMeasurement()
                    for _ in benchmark.scaledIterations { network.pool.run(shards: shards, body) }
                    benchmark.stopMeasurement()
                }
                blackHole(output.pointer[0])
            }
        }

        Benchmark("PGD-10 over the test set, \(label) model (images/s = 10,000 / time)",
                  configuration: .init(metrics: [.wallClock, .throughput], warmupIterations: 1, scalingFactor: .one,
                                       maxDuration: .seconds(20), maxIterations: 10, thresholds: [:])) { benchmark in
            let network = try loadModel(file)
            let data = try testSet()
            let runner = AttackRunner(classifier: network, batchSize: 500)
            let attack = try PGD(epsilon: 0.1, steps: 10)
            benchmark.startMeasurement()
            try WorkerPool.dedicating {
                for _ in benchmark.scaledIterations { blackHole(try runner.run(attack, on: data, seed: 0).adversarialCorrect) }
            }
        }
    }
}

/// The shards' workspaces, handed to the shard bodies (shard s touches only item s).
private final class Workspaces: @unchecked Sendable {
    let items: [PGD.Workspace]
    init(_ items: [PGD.Workspace]) { self.items = items }
}

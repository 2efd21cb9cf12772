import Foundation
import NeuralNet
import TensorCore

/// Helpers shared by the test targets.
public enum TestSupport {
    /// The repository root (found from this file's location).
    public static let repositoryRoot: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }()

    /// The committed Fashion-MNIST sample.
    public static var sampleDirectory: String { repositoryRoot + "/datasets/fashion-mnist-sample" }

    /// A fresh temporary directory, removed by the caller with `removeItem` if wanted.
    /// Runs `/usr/bin/env ARGUMENTS` (in `directory`), returning its exit status and what it printed
    /// on standard output and error together.
    public static func run(_ arguments: [String], in directory: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    public static func temporaryDirectory(_ name: String = #function) -> String {
        let path = NSTemporaryDirectory() + "bulwark-tests-\(name.filter(\.isLetter))-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Uniform values in [lower, upper) from a seeded generator.
    public static func randomValues(_ count: Int, seed: UInt64, in lower: Float = -1, _ upper: Float = 1) -> [Float] {
        var generator = RandomGenerator(seed: seed)
        return (0..<count).map { _ in generator.nextFloat(in: lower, upper) }
    }

    public static func randomTensor(rows: Int, columns: Int, seed: UInt64, in lower: Float = -1, _ upper: Float = 1) -> Tensor {
        Tensor(shape: [rows, columns], scalars: randomValues(rows * columns, seed: seed, in: lower, upper))
    }

    /// True if |a − b| ≤ absolute + relative·max(|a|, |b|) elementwise.
    public static func close(_ a: [Float], _ b: [Float], relative: Float = 1e-4, absolute: Float = 1e-5) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= absolute + relative * max(abs($0), abs($1)) }
    }

    /// The largest elementwise |a − b| / (absolute + relative·max(|a|, |b|)); ≤ 1 means close.
    public static func worstError(_ a: [Float], _ b: [Float], relative: Float, absolute: Float) -> Float {
        zip(a, b).map { abs($0 - $1) / (absolute + relative * max(abs($0), abs($1))) }.max() ?? 0
    }

    /// Small labelled data with a learnable rule (class = argmax of a fixed projection).
    public static func syntheticData(count: Int, features: Int, classes: Int, seed: UInt64) -> LabeledData {
        let x = randomTensor(rows: count, columns: features, seed: seed, in: 0, 1)
        let projection = randomValues(features * classes, seed: seed &+ 1)
        var labels: [Int] = []
        for i in 0..<count {
            var best = 0
            var bestScore = -Float.infinity
            for c in 0..<classes {
                var score: Float = 0
                for f in 0..<features { score += (x[i, f] - 0.5) * projection[f * classes + c] }
                if score > bestScore { bestScore = score; best = c }
            }
            labels.append(best)
        }
        return LabeledData(features: x, labels: labels, classCount: classes)
    }
}

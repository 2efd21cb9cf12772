import Foundation
import NeuralNet
import TensorCore

/// Suspected adversarial inputs by prediction instability: adversarial examples found by gradient
/// attacks sit close to a decision boundary, so small random noise flips their prediction far more
/// often than a clean input's (Hu et al. 2019; Roth et al. 2019, "The Odds are Odd"). Each row is
/// classified `draws` more times with uniform noise in [−σ, σ] (clipped to [0, 1]); a row whose
/// prediction changes in at least `threshold` draws is flagged.
public struct NoiseInstabilityDetector: Codable, Sendable, Equatable {
    public let sigma: Float
    public let draws: Int
    /// Changed draws at which a row is flagged (draws + 1: never).
    public var threshold: Int

    public init(sigma: Float, draws: Int, threshold: Int) {
        (self.sigma, self.draws, self.threshold) = (sigma, draws, threshold)
    }

    /// Rows whose noisy copies go through the model together (bounds the copies' memory:
    /// 64 rows × 64 draws × 784 values is 12.8 MB).
    static let chunkRows = 64

    /// How many of the noisy draws of each row change its prediction (`predicted`).
    public func changes(of input: MatrixRef, predicted: [Int], model: any InferenceModel, generator: inout RandomGenerator) throws -> [Int] {
        var counts = [Int](repeating: 0, count: input.rows)
        var start = 0
        while start < input.rows {
            let end = min(input.rows, start + Self.chunkRows)
            let part = try changes(ofChunk: input.rows(start..<end), predicted: Array(predicted[start..<end]), model: model, generator: &generator)
            counts.replaceSubrange(start..<end, with: part)
            start = end
        }
        return counts
    }

    private func changes(ofChunk input: MatrixRef, predicted: [Int], model: any InferenceModel, generator: inout RandomGenerator) throws -> [Int] {
        let rows = input.rows, width = input.columns, classes = model.classCount
        var noisy = [Float](repeating: 0, count: rows * draws * width)
        for d in 0..<draws {
            for r in 0..<rows {
                let source = input.row(r)
                let offset = (d * rows + r) * width
                for j in 0..<width {
                    noisy[offset + j] = min(1, max(0, source[j] + generator.nextFloat(in: -sigma, sigma)))
                }
            }
        }
        var logits = [Float](repeating: 0, count: rows * draws * classes)
        try noisy.withUnsafeMutableBufferPointer { x in
            try logits.withUnsafeMutableBufferPointer { z in
                try model.logits(MatrixRef(x.baseAddress!, rows: rows * draws, columns: width),
                                 into: MatrixRef(z.baseAddress!, rows: rows * draws, columns: classes))
            }
        }
        var counts = [Int](repeating: 0, count: rows)
        for d in 0..<draws {
            for r in 0..<rows {
                let row = (d * rows + r) * classes
                var best = 0
                for k in 1..<classes where logits[row + k] > logits[row + best] { best = k }
                if best != predicted[r] { counts[r] += 1 }
            }
        }
        return counts
    }
}

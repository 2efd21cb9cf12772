import Foundation
import NeuralNet
import ServingCore
import TensorCore
import Testing
import _TestSupport

@Suite("Anomaly detectors")
struct DetectorTests {
    /// Correlated features around three class centres.
    func features(n: Int, d: Int, seed: UInt64) -> (values: [Float], labels: [Int]) {
        var generator = RandomGenerator(seed: seed)
        var values: [Float] = [], labels: [Int] = []
        for i in 0..<n {
            let c = i % 3
            let shared = generator.nextGaussian()
            for j in 0..<d { values.append(Float(c * (j % 2 == 0 ? 2 : -1)) + 0.8 * shared + 0.5 * generator.nextGaussian() * Float(j + 1)) }
            labels.append(c)
        }
        return (values, labels)
    }

    /// The regularised inverse covariance by Gauss–Jordan elimination in Float64, and the direct
    /// score min_c (f − μ_c)ᵀ Σ⁻¹ (f − μ_c): an independent reference.
    func referenceScores(fit: [Float], labels: [Int], d: Int, queries: [Float], ridge: Double = 1e-3) -> [Double] {
        let n = labels.count
        var means = [[Double]](repeating: [Double](repeating: 0, count: d), count: 3), counts = [0, 0, 0]
        for i in 0..<n { counts[labels[i]] += 1; for j in 0..<d { means[labels[i]][j] += Double(fit[i * d + j]) } }
        for c in 0..<3 { for j in 0..<d { means[c][j] /= Double(counts[c]) } }
        var sigma = [[Double]](repeating: [Double](repeating: 0, count: d), count: d)
        for i in 0..<n {
            for a in 0..<d { for b in 0..<d {
                sigma[a][b] += (Double(fit[i * d + a]) - means[labels[i]][a]) * (Double(fit[i * d + b]) - means[labels[i]][b]) / Double(n)
            } }
        }
        let lambda = ridge * (0..<d).reduce(0) { $0 + sigma[$1][$1] } / Double(d)
        for j in 0..<d { sigma[j][j] += lambda }
        var inverse = (0..<d).map { i in (0..<d).map { $0 == i ? 1.0 : 0.0 } }
        for p in 0..<d {
            let pivot = sigma[p][p]
            for j in 0..<d { sigma[p][j] /= pivot; inverse[p][j] /= pivot }
            for r in 0..<d where r != p {
                let factor = sigma[r][p]
                for j in 0..<d { sigma[r][j] -= factor * sigma[p][j]; inverse[r][j] -= factor * inverse[p][j] }
            }
        }
        return stride(from: 0, to: queries.count, by: d).map { start in
            (0..<3).map { c in
                let diff = (0..<d).map { Double(queries[start + $0]) - means[c][$0] }
                return (0..<d).reduce(0.0) { sum, a in sum + diff[a] * (0..<d).reduce(0.0) { $0 + inverse[a][$1] * diff[$1] } }
            }.min()!
        }
    }

    @Test("Mahalanobis scores equal the direct Float64 formula (Cholesky-whitened form, no cancellation)")
    func mahalanobisMatchesReference() throws {
        let d = 8
        var (fit, labels) = features(n: 600, d: d, seed: 1)
        var (queries, _) = features(n: 50, d: d, seed: 2)
        queries[5] += 40  // one far outlier
        let detector = try fit.withUnsafeMutableBufferPointer { buffer in
            try MahalanobisDetector.fit(features: MatrixRef(buffer.baseAddress!, rows: 600, columns: d), labels: labels, classCount: 3)
        }
        let scores = queries.withUnsafeMutableBufferPointer { detector.scores(MatrixRef($0.baseAddress!, rows: 50, columns: d)) }
        let reference = referenceScores(fit: fit, labels: labels, d: d, queries: queries)
        for (score, expected) in zip(scores, reference) {
            #expect(abs(Double(score) - expected) <= 1e-3 * max(1, expected), "\(score) vs \(expected)")
        }
        #expect(scores[0] == scores.max())  // the outlier (row 0, feature 5)
    }

    @Test("thresholds keep the calibration false-positive rate at or below the target")
    func thresholds() {
        let scores: [Float] = (1...1000).map(Float.init)
        let t = AnomalyDetectors.threshold(for: scores, falsePositiveRate: 0.01)
        #expect(scores.filter { $0 > t }.count == 10)
        #expect(AnomalyDetectors.threshold(for: [3, 1, 2], falsePositiveRate: 0.01) == 3)  // flags nothing when 1% < one example
        let changes = Array(repeating: 0, count: 95) + [1, 1, 2, 3, 8]
        #expect(AnomalyDetectors.threshold(for: changes, draws: 8, falsePositiveRate: 0.02) == 3)
        #expect(AnomalyDetectors.threshold(for: changes, draws: 8, falsePositiveRate: 0.0) == 9)
    }

    @Test("the noise detector counts prediction changes: none far from the boundary, about half on it")
    func noiseChanges() throws {
        // A linear two-class model on 2 features: class 1 iff x0 > x1.
        let network = Sequential(spec: try ModelSpec(inputWidth: 2, layers: [.dense(2)]))
        for (i, v) in [Float(1), 0, 0, 1, 0, 0].enumerated() { network.parameters.pointer[i] = v }  // weight [[1,0],[0,1]], bias 0
        let model = network.inferenceModel()
        let detector = NoiseInstabilityDetector(sigma: 0.05, draws: 64, threshold: 8)
        var inputs: [Float] = [0.9, 0.1, 0.5, 0.5]  // far from the boundary; on it
        var generator = RandomGenerator(seed: 3)
        let counts = try inputs.withUnsafeMutableBufferPointer { x in
            try detector.changes(of: MatrixRef(x.baseAddress!, rows: 2, columns: 2), predicted: [0, 0], model: model, generator: &generator)
        }
        #expect(counts[0] == 0)
        #expect((16...48).contains(counts[1]), "\(counts)")
    }
}

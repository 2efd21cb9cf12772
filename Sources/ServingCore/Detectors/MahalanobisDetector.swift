import CBLAS
import Foundation
import TensorCore

/// Out-of-distribution score in the penultimate layer (Lee et al. 2018, "A Simple Unified
/// Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks"): the smallest
/// Mahalanobis distance from an input's features f to the class means μ_c under one shared
/// covariance Σ, s(f) = min_c (f − μ_c)ᵀ Σ⁻¹ (f − μ_c). A score above `threshold` is flagged.
///
/// Σ is accumulated in Float64 and regularised (ReLU features have dead units, so Σ is singular):
/// Σ + λI with λ = `ridge` · trace(Σ)/d. With Σ⁻¹ = L Lᵀ (Cholesky, LAPACKE `dpotrf`), the score is
/// ‖Lᵀf − Lᵀμ_c‖²: one GEMM per batch (F·L) and squared differences, with no cancellation between
/// large terms (tested against the direct Float64 formula).
public struct MahalanobisDetector: Codable, Sendable, Equatable {
    public let featureWidth: Int
    public let classCount: Int
    /// L, row-major d × d (lower triangular: Σ⁻¹ = L Lᵀ).
    public let whitening: [Float]
    /// Lᵀμ_c per class, row-major classCount × d.
    public let whitenedMeans: [Float]
    public var threshold: Float

    enum CodingKeys: String, CodingKey {
        case featureWidth = "feature_width", classCount = "classes", whitening, whitenedMeans = "whitened_means", threshold
    }

    public struct FitError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Fits class means and the shared covariance on `features` (rows × d) with true `labels`.
    /// - Throws: `FitError` if a class has no example or the covariance cannot be factorised.
    public static func fit(features: MatrixRef, labels: [Int], classCount: Int, ridge: Double = 1e-3) throws -> MahalanobisDetector {
        let (n, d) = (features.rows, features.columns)
        var means = [Double](repeating: 0, count: classCount * d)
        var counts = [Int](repeating: 0, count: classCount)
        for i in 0..<n {
            let c = labels[i]
            counts[c] += 1
            for j in 0..<d { means[c * d + j] += Double(features[i, j]) }
        }
        for c in 0..<classCount {
            guard counts[c] > 0 else { throw FitError(description: "class \(c) has no example among the \(n) used to fit the detector; use more examples") }
            for j in 0..<d { means[c * d + j] /= Double(counts[c]) }
        }
        // Σ = (1/n) Σ_i (f_i − μ_{y_i})(f_i − μ_{y_i})ᵀ, centred rows in Float64, one SYRK.
        var centred = [Double](repeating: 0, count: n * d)
        for i in 0..<n {
            for j in 0..<d { centred[i * d + j] = Double(features[i, j]) - means[labels[i] * d + j] }
        }
        var covariance = [Double](repeating: 0, count: d * d)
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, Int32(d), Int32(n), 1 / Double(n), centred, Int32(d), 0, &covariance, Int32(d))
        let trace = (0..<d).reduce(0) { $0 + covariance[$1 * d + $1] }
        let lambda = max(ridge * trace / Double(d), 1e-12)
        for j in 0..<d { covariance[j * d + j] += lambda }
        // Σ⁻¹ from the Cholesky factor of Σ, then the Cholesky factor L of Σ⁻¹.
        guard LAPACKE_dpotrf(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "L")), Int32(d), &covariance, Int32(d)) == 0,
              LAPACKE_dpotri(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "L")), Int32(d), &covariance, Int32(d)) == 0 else {
            throw FitError(description: "the feature covariance is not positive definite even after regularisation")
        }
        for i in 0..<d { for j in (i + 1)..<d { covariance[i * d + j] = covariance[j * d + i] } }  // full symmetric Σ⁻¹
        guard LAPACKE_dpotrf(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "L")), Int32(d), &covariance, Int32(d)) == 0 else {
            throw FitError(description: "the inverse covariance could not be factorised")
        }
        var whitening = [Float](repeating: 0, count: d * d)
        for i in 0..<d { for j in 0...i { whitening[i * d + j] = Float(covariance[i * d + j]) } }
        // Lᵀμ_c as rows: (μ_c)ᵀ L.
        var whitenedMeans = [Float](repeating: 0, count: classCount * d)
        for c in 0..<classCount {
            for j in 0..<d {
                var sum = 0.0
                for i in j..<d { sum += means[c * d + i] * covariance[i * d + j] }
                whitenedMeans[c * d + j] = Float(sum)
            }
        }
        return MahalanobisDetector(featureWidth: d, classCount: classCount, whitening: whitening, whitenedMeans: whitenedMeans,
                                   threshold: .infinity)
    }

    /// The score of every row of `features` (rows × d).
    public func scores(_ features: MatrixRef) -> [Float] {
        let rows = features.rows, d = featureWidth
        var whitened = [Float](repeating: 0, count: rows * d)
        var result = [Float](repeating: 0, count: rows)
        whitening.withUnsafeBufferPointer { l in
            whitened.withUnsafeMutableBufferPointer { z in
                let zRef = MatrixRef(z.baseAddress!, rows: rows, columns: d)
                BLAS.gemm(features, times: MatrixRef(UnsafeMutablePointer(mutating: l.baseAddress!), rows: d, columns: d), into: zRef)
                for r in 0..<rows {
                    var best = Float.infinity
                    for c in 0..<classCount {
                        var sum: Float = 0
                        for j in 0..<d {
                            let difference = zRef[r, j] - whitenedMeans[c * d + j]
                            sum += difference * difference
                        }
                        best = min(best, sum)
                    }
                    result[r] = best
                }
            }
        }
        return result
    }
}

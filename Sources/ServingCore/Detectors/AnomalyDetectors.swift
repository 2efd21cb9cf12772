import Foundation
import NeuralNet
import TensorCore
import _FileSystem

/// The detectors fitted for one model (`bulwark serve fit-detectors`), stored as JSON beside it
/// and loaded with it (`--detectors NAME=FILE`). The service counts and logs what they flag per
/// request; answers do not change, so an attacker learns nothing from them.
public struct AnomalyDetectors: Codable, Sendable, Equatable {
    public static let format = "bulwark-detectors/1"
    public var format: String
    /// The SHA-256 of the model file they were fitted on: they are refused for any other.
    public var modelSHA256: String
    /// The false-positive rate the thresholds were set at, on held-out clean data.
    public var targetFalsePositiveRate: Double
    public var mahalanobis: MahalanobisDetector?
    public var noise: NoiseInstabilityDetector?
    /// Model-extraction detection per key (PRADA), δ fitted on benign query streams.
    public var extraction: PRADADetector?

    enum CodingKeys: String, CodingKey {
        case format, modelSHA256 = "model_sha256", targetFalsePositiveRate = "target_fpr", mahalanobis, noise, extraction
    }

    public init(modelSHA256: String, targetFalsePositiveRate: Double, mahalanobis: MahalanobisDetector?, noise: NoiseInstabilityDetector?,
                extraction: PRADADetector? = nil) {
        format = Self.format
        (self.modelSHA256, self.targetFalsePositiveRate, self.mahalanobis, self.noise, self.extraction) =
            (modelSHA256, targetFalsePositiveRate, mahalanobis, noise, extraction)
    }

    /// What the detectors found in one batch: the kinds flagged for each row.
    public struct Findings: Sendable, Equatable {
        public var outOfDistribution: [Bool]
        public var unstable: [Bool]
        public var count: Int { outOfDistribution.filter { $0 }.count + unstable.filter { $0 }.count }
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Parses and checks a detector file against the model it will run with.
    public static func decode(_ bytes: [UInt8], source: String, model: any InferenceModel, modelSHA256: String) throws -> AnomalyDetectors {
        let detectors: AnomalyDetectors
        do {
            detectors = try StrictJSON.decodeRejectingUnknownFields(AnomalyDetectors.self, from: bytes)
        } catch {
            throw Invalid(description: "\(source) is not a detector file: \(decodingErrorText(error))")
        }
        guard detectors.format == format else { throw Invalid(description: "\(source): format '\(detectors.format)' is not \(format)") }
        guard detectors.modelSHA256 == modelSHA256 else {
            throw Invalid(description: "\(source) was fitted on the model with SHA-256 \(detectors.modelSHA256), not this one (\(modelSHA256)); fit it again with bulwark serve fit-detectors")
        }
        if let m = detectors.mahalanobis {
            let width = (model as? any FeatureExtractingModel)?.featureWidth
            guard let width, m.featureWidth == width, m.classCount == model.classCount,
                  m.whitening.count == width * width, m.whitenedMeans.count == m.classCount * width,
                  m.whitening.allSatisfy(\.isFinite), m.whitenedMeans.allSatisfy(\.isFinite), !m.threshold.isNaN else {
                throw Invalid(description: "\(source): the Mahalanobis detector does not fit this model's features")
            }
        }
        if let n = detectors.noise {
            guard n.sigma.isFinite, n.sigma > 0, n.sigma <= 1, (1...64).contains(n.draws), (1...(n.draws + 1)).contains(n.threshold) else {
                throw Invalid(description: "\(source): the noise detector needs 0 < sigma ≤ 1, 1 ≤ draws ≤ 64 and 1 ≤ threshold ≤ draws + 1")
            }
        }
        if let problem = detectors.extraction?.problem { throw Invalid(description: "\(source): the extraction detector's \(problem)") }
        return detectors
    }

    /// Runs every detector on a batch whose logits and (if needed) features are computed.
    public func inspect(input: MatrixRef, logits: MatrixRef, features: MatrixRef?, model: any InferenceModel,
                        generator: inout RandomGenerator) throws -> Findings {
        let rows = input.rows
        var findings = Findings(outOfDistribution: Array(repeating: false, count: rows), unstable: Array(repeating: false, count: rows))
        if let mahalanobis, let features {
            findings.outOfDistribution = mahalanobis.scores(features).map { $0 > mahalanobis.threshold }
        }
        if let noise {
            let predicted = (0..<rows).map { r in (0..<logits.columns).max { logits[r, $0] < logits[r, $1] }! }  // first index on ties
            findings.unstable = try noise.changes(of: input, predicted: predicted, model: model, generator: &generator).map { $0 >= noise.threshold }
        }
        return findings
    }

    /// The threshold above which a fraction `rate` of `scores` lies (the (1 − rate) quantile; the
    /// smallest value that keeps the clean false-positive rate at or below `rate`).
    public static func threshold(for scores: [Float], falsePositiveRate rate: Double) -> Float {
        let sorted = scores.sorted()
        guard !sorted.isEmpty else { return .infinity }
        let allowed = Int((rate * Double(sorted.count)).rounded(.down))  // scores strictly above the threshold
        return allowed == 0 ? sorted[sorted.count - 1] : sorted[sorted.count - 1 - allowed]
    }

    /// The smallest count of changed draws that flags at most a fraction `rate` of `changes`.
    public static func threshold(for changes: [Int], draws: Int, falsePositiveRate rate: Double) -> Int {
        for t in 1...(draws + 1) where Double(changes.filter { $0 >= t }.count) <= rate * Double(changes.count) { return t }
        return draws + 1
    }
}

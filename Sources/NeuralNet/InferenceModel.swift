import Foundation
import TensorCore

/// What a deployed or black-box model offers: logits (and probabilities) for a batch of any size.
///
/// Implementations are `Sendable` and safe to call from many concurrent tasks; they keep no
/// gradient buffers and have no notion of shards. A loaded network (`InferenceNetwork`), a
/// query-counting wrapper, or a remote model behind HTTP implement it; score-based and
/// decision-based attacks need nothing else. Calls are synchronous: an adapter for a remote model
/// blocks its calling thread (never call it on an event loop).
public protocol InferenceModel: Sendable {
    var inputWidth: Int { get }
    var classCount: Int { get }
    /// Writes the logits (rows, classCount) of `input` (rows, inputWidth) into `output`.
    /// - Throws: `InferenceError` if the shapes do not fit, or what a remote model's transport throws.
    func logits(_ input: MatrixRef, into output: MatrixRef) throws
}

/// A model that can also hand out its penultimate activations (the input of its last layer), for
/// feature-space detectors such as the Mahalanobis out-of-distribution score.
public protocol FeatureExtractingModel: InferenceModel {
    var featureWidth: Int { get }
    /// Logits as `logits(_:into:)`, and the last layer's input rows into `features` (rows, featureWidth).
    func logits(_ input: MatrixRef, into output: MatrixRef, features: MatrixRef?) throws
}

/// Why an inference call was refused.
public enum InferenceError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(expected: String, actual: String)

    public var description: String {
        switch self {
        case .shapeMismatch(let expected, let actual):
            return "the model expects \(expected), got \(actual)"
        }
    }
}

extension InferenceModel {
    /// Logits (rows, classCount) of `inputs` (rows, inputWidth), any number of rows.
    public func logits(_ inputs: Tensor) throws -> Tensor {
        guard inputs.rank == 2 || inputs.rank == 1 else {
            throw InferenceError.shapeMismatch(expected: "a batch (rows, \(inputWidth))", actual: "shape \(inputs.shape)")
        }
        let rows = inputs.matrixShape.rows
        var result = Tensor(zeros: [rows, classCount])
        try inputs.withReadOnlyMatrix { x in try result.withMatrix { try logits(x, into: $0) } }
        return result
    }

    /// Softmax probabilities (rows, classCount), computed stably (max subtracted before exp).
    public func probabilities(_ inputs: Tensor) throws -> Tensor {
        var result = try logits(inputs)
        let (rows, columns) = result.matrixShape
        for i in 0..<rows {
            var maximum = -Float.infinity
            for j in 0..<columns { maximum = max(maximum, result[i, j]) }
            var sum: Float = 0
            for j in 0..<columns {
                let e = Foundation.exp(result[i, j] - maximum)
                result[i, j] = e
                sum += e
            }
            for j in 0..<columns { result[i, j] /= sum }
        }
        return result
    }

    /// The predicted class (argmax of the logits; first index on ties) of every row.
    public func predictions(_ inputs: Tensor) throws -> [Int] {
        var result = try logits(inputs)
        var predicted = [Int](repeating: 0, count: result.matrixShape.rows)
        result.withMatrix { z in predicted.withUnsafeMutableBufferPointer { Kernels.argmaxRows(z, into: $0.baseAddress!) } }
        return predicted
    }

    /// Fraction of `data` classified correctly.
    public func accuracy(on data: LabeledData) throws -> Proportion {
        let predicted = try predictions(data.features)
        return Proportion(successes: zip(predicted, data.labels).filter { $0 == $1 }.count, trials: data.count)
    }
}

import Foundation
import NeuralNet
import TensorCore

/// The victim as a model thief sees it: a prediction API that answers a batch of inputs with what
/// its output policy lets out, counts every input as one query, and never answers past the budget
/// (Tramèr et al., 2016; Orekondy et al., 2019). Wraps any `InferenceModel`: a local model file, or
/// a client of a remote service.
public final class ExtractionOracle: @unchecked Sendable {
    /// What the API returns per input.
    public enum OutputPolicy: Equatable, Sendable, CustomStringConvertible {
        /// The full probability vector.
        case probabilities
        /// The predicted class only (as a one-hot vector).
        case label
        /// The k largest probabilities, the others 0.
        case topK(Int)
        /// Probabilities rounded to `decimals` decimal places.
        case rounded(decimals: Int)

        public var description: String {
            switch self {
            case .probabilities: "probabilities"
            case .label: "label"
            case .topK(let k): "top-\(k)"
            case .rounded(let decimals): "rounded to \(decimals) decimals"
            }
        }

        /// Whether answers carry more than the label.
        public var returnsProbabilities: Bool { self != .label }
    }

    public let model: any InferenceModel
    public let policy: OutputPolicy
    /// Queries (input rows) the thief may send.
    public let budget: Int
    private let lock = NSLock()
    private var used = 0

    /// - Throws: `ThreatError.invalidParameter` for a budget below 1 or a bad policy parameter.
    public init(_ model: any InferenceModel, policy: OutputPolicy = .probabilities, budget: Int) throws {
        guard budget >= 1 else { throw ThreatError.invalidParameter(name: "budget", value: "\(budget)", requirement: "must be at least 1 query") }
        switch policy {
        case .topK(let k) where !(1...model.classCount).contains(k):
            throw ThreatError.invalidParameter(name: "top-k", value: "\(k)", requirement: "must be between 1 and the \(model.classCount) classes")
        case .rounded(let decimals) where !(0...8).contains(decimals):
            throw ThreatError.invalidParameter(name: "decimals", value: "\(decimals)", requirement: "must be between 0 and 8")
        default: break
        }
        self.model = model
        self.policy = policy
        self.budget = budget
    }

    /// Queries answered so far (each input row is one).
    public var queriesUsed: Int { lock.withLock { used } }
    public var queriesLeft: Int { lock.withLock { budget - used } }

    /// The answers (rows, classes) to `inputs` (rows, inputWidth) under the output policy.
    /// - Throws: `ThreatError.invalidParameter` if the rows would pass the budget (nothing is
    ///   sent then), `InferenceError` or the transport's error from the model.
    public func query(_ inputs: Tensor) throws -> Tensor {
        let rows = inputs.shape[0]
        try lock.withLock {
            guard rows <= budget - used else {
                throw ThreatError.invalidParameter(name: "queries", value: "\(used) + \(rows)",
                                                   requirement: "would pass the budget of \(budget); \(budget - used) left")
            }
            used += rows
        }
        let logits = try model.logits(inputs)
        return Self.apply(policy, toLogits: logits)
    }

    /// The policy's answer for each row of logits (softmax in Float64 from the log-sum-exp).
    static func apply(_ policy: OutputPolicy, toLogits logits: Tensor) -> Tensor {
        let (rows, k) = (logits.shape[0], logits.shape[1])
        var out = [Float](repeating: 0, count: rows * k)
        for r in 0..<rows {
            let z = (0..<k).map { Double(logits.scalars[r * k + $0]) }
            let top = z.max()!
            let sum = z.reduce(0) { $0 + exp($1 - top) }
            let p = z.map { exp($0 - top) / sum }
            let order = p.indices.sorted { p[$0] > p[$1] }
            for j in 0..<k {
                let value: Double = switch policy {
                case .probabilities: p[j]
                case .label: j == order[0] ? 1 : 0
                case .topK(let count): order.prefix(count).contains(j) ? p[j] : 0
                case .rounded(let decimals): (p[j] * pow(10, Double(decimals))).rounded() / pow(10, Double(decimals))
                }
                out[r * k + j] = Float(value)
            }
        }
        return Tensor(shape: [rows, k], scalars: out)
    }
}

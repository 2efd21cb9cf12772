import Foundation
import NeuralNet
import TensorCore

/// A prediction API as a model thief reaches it: a batch of inputs in, one answer per input out,
/// shaped by the API's output policy. A local model (`LocalPredictionAPI`) or a client of a
/// running `bulwark serve` (the ServingClient target).
public protocol PredictionAPI: AnyObject, Sendable {
    var inputWidth: Int { get }
    var classCount: Int { get }
    /// What the API releases per input.
    var policy: OutputPolicy { get }
    /// One answer per row of `inputs` (rows, inputWidth).
    func answers(_ inputs: Tensor) throws -> [OutputPolicy.Answer]
    /// Queries answered when the API first showed that it had flagged the client (a service that
    /// throttles or blocks suspected extraction), or nil.
    var detectedAfterQueries: Int? { get }
}

extension PredictionAPI {
    public var detectedAfterQueries: Int? { nil }
}

/// A local model behind an output policy, its `noise` drawn from a seeded stream.
public final class LocalPredictionAPI: PredictionAPI, @unchecked Sendable {
    public let model: any InferenceModel
    public let policy: OutputPolicy
    private let lock = NSLock()
    private var generator: RandomGenerator

    /// - Throws: `ThreatError.invalidParameter` for a top-k beyond the model's classes.
    public init(_ model: any InferenceModel, policy: OutputPolicy = .full, seed: UInt64 = 0) throws {
        if case .topK(let k) = policy, !(1...model.classCount).contains(k) {
            throw ThreatError.invalidParameter(name: "top-k", value: "\(k)", requirement: "must be between 1 and the \(model.classCount) classes")
        }
        (self.model, self.policy) = (model, policy)
        generator = RandomGenerator(seed: seed, stream: .outputPolicyNoise)
    }

    public var inputWidth: Int { model.inputWidth }
    public var classCount: Int { model.classCount }

    public func answers(_ inputs: Tensor) throws -> [OutputPolicy.Answer] {
        let logits = try model.logits(inputs)
        let k = logits.shape[1]
        return lock.withLock {
            (0..<logits.shape[0]).map { r in policy.answer(logits: logits.scalars[(r * k)..<((r + 1) * k)], generator: &generator) }
        }
    }
}

/// The victim as a model thief sees it: a prediction API whose every input counts as one query,
/// never answered past the budget (Tramèr et al., 2016; Orekondy et al., 2019).
public final class ExtractionOracle: @unchecked Sendable {
    /// A batch's answers: the predicted classes, and the released probabilities (rows, classes)
    /// unless the API returns labels only (top-k: 0 beyond the k classes).
    public struct Answers: Sendable {
        public var labels: [Int]
        public var probabilities: Tensor?
    }

    public let api: any PredictionAPI
    /// Queries (input rows) the thief may send.
    public let budget: Int
    /// Called with every answered batch (a detector watching the stream, as the service would).
    public var monitor: (@Sendable (Tensor, [Int]) -> Void)?
    private let lock = NSLock()
    private var used = 0

    /// - Throws: `ThreatError.invalidParameter` for a budget below 1.
    public init(_ api: any PredictionAPI, budget: Int) throws {
        guard budget >= 1 else { throw ThreatError.invalidParameter(name: "budget", value: "\(budget)", requirement: "must be at least 1 query") }
        self.api = api
        self.budget = budget
    }

    /// An oracle around a local model behind `policy` (its noise seeded by `seed`).
    public convenience init(_ model: any InferenceModel, policy: OutputPolicy = .full, budget: Int, seed: UInt64 = 0) throws {
        try self.init(try LocalPredictionAPI(model, policy: policy, seed: seed), budget: budget)
    }

    public var policy: OutputPolicy { api.policy }
    public var inputWidth: Int { api.inputWidth }
    public var classCount: Int { api.classCount }

    /// Queries answered so far (each input row is one).
    public var queriesUsed: Int { lock.withLock { used } }
    public var queriesLeft: Int { lock.withLock { budget - used } }

    /// The answers to `inputs` (rows, inputWidth).
    /// - Throws: `ThreatError.invalidParameter` if the rows would pass the budget (nothing is
    ///   sent then); the API's errors.
    public func query(_ inputs: Tensor) throws -> Answers {
        let rows = inputs.shape[0]
        try lock.withLock {
            guard rows <= budget - used else {
                throw ThreatError.invalidParameter(name: "queries", value: "\(used) + \(rows)",
                                                   requirement: "would pass the budget of \(budget); \(budget - used) left")
            }
            used += rows
        }
        let answers = try api.answers(inputs)
        guard answers.count == rows else {
            throw ThreatError.dataMismatch("the API answered \(answers.count) of \(rows) inputs")
        }
        let labels = answers.map(\.predicted)
        monitor?(inputs, labels)
        guard policy.releasesProbabilities else { return Answers(labels: labels, probabilities: nil) }
        let k = classCount
        var scalars = [Float](repeating: 0, count: rows * k)
        for (r, answer) in answers.enumerated() {
            guard let p = answer.probabilities, p.count == k else {
                throw ThreatError.dataMismatch("answer \(r) has no probability vector of \(k) classes under the policy \(policy)")
            }
            for j in 0..<k { scalars[r * k + j] = Float(p[j]) }
        }
        return Answers(labels: labels, probabilities: Tensor(shape: [rows, k], scalars: scalars))
    }
}

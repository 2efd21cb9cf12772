import NeuralNet
import TensorCore

/// A model an attacker can only query: the `DifferentiableClassifier` view of an `InferenceModel`
/// (a loaded network frozen for serving, a query-counting wrapper, a remote model), for
/// score-based black-box attacks (Square). Every call is a batch of queries through
/// `InferenceModel.logits` alone, counted per row in `queries`; nothing of the model's inside is
/// used (no incremental first layer, no gradients).
///
/// It has no gradients: `logitsGradient` gives scratch and `inputGradient` zeros, and both record
/// an error, so `AttackRunner` refuses a gradient attack on it before it starts and fails the run
/// if one asks anyway. An error from the model (a remote model's transport) is recorded the same
/// way, with zero logits in place; `AttackRunner` throws it after the batch (`rethrow()`).
public final class QueryOnlyClassifier: DifferentiableClassifier, @unchecked Sendable {
    public let model: any InferenceModel
    public let pool: WorkerPool
    public var inputWidth: Int { model.inputWidth }
    public var classCount: Int { model.classCount }
    /// Per shard: the logits of its last call and gradient scratch (each shard grows only its own).
    private var scratch: [Scratch] = []
    private let counter = Locked(0)
    private let failure = ShardFailure()

    public init(_ model: any InferenceModel, pool: WorkerPool = .shared) {
        self.model = model
        self.pool = pool
    }

    /// Rows sent to the model so far (each is one query).
    public var queries: Int { counter.withLock { $0 } }

    /// Throws (and forgets) the first error recorded since the last call.
    public func rethrow() throws { try failure.rethrow() }

    public func reserve(rows: Int, shards: Int) {
        while scratch.count < shards { scratch.append(Scratch()) }
        for shard in scratch { shard.fit(rows: rows, width: max(classCount, inputWidth)) }
    }

    public func logits(_ input: MatrixRef, shard: Int) -> MatrixRef {
        precondition(shard >= 0 && shard < scratch.count, "shard \(shard) was not reserved (\(scratch.count) shards)")
        let buffers = scratch[shard]
        buffers.fit(rows: input.rows, width: max(classCount, inputWidth))
        buffers.rows = input.rows
        let output = buffers.logits.matrix(rows: input.rows, columns: classCount)
        counter.withLock { $0 += input.rows }
        do {
            try model.logits(input, into: output)
        } catch {
            failure.record(error)
            output.base.update(repeating: 0, count: output.count)
        }
        return output
    }

    public func logitsGradient(shard: Int) -> MatrixRef {
        failure.record(AttackError.invalidParameter(name: "model", value: "query-only",
                                                    requirement: "a gradient attack needs the model's weights; only score-based attacks (square) run on queries"))
        return scratch[shard].gradient.matrix(rows: scratch[shard].rows, columns: classCount)
    }

    public func inputGradient(shard: Int) -> MatrixRef {
        _ = logitsGradient(shard: shard)
        let gradient = scratch[shard].gradient.matrix(rows: scratch[shard].rows, columns: inputWidth)
        gradient.base.update(repeating: 0, count: gradient.count)
        return gradient
    }

    private final class Scratch {
        var logits = FloatBuffer(count: 1), gradient = FloatBuffer(count: 1)
        var rows = 0

        func fit(rows: Int, width: Int) {
            guard logits.count < rows * width else { return }
            logits = FloatBuffer(count: rows * width)
            gradient = FloatBuffer(count: rows * width)
        }
    }
}

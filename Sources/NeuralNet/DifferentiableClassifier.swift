import TensorCore

/// What white-box attacks and training see of a model: logits for a part (shard) of a batch, and
/// the gradient of any function of the logits with respect to the input. Everything runs in
/// evaluation mode (dropout off).
///
/// Calls are per shard: different shards may run concurrently on `pool`, one shard may not. This is
/// the fast, allocation-free contract for attack loops; a model that can only answer queries (a
/// black box, a query counter, a remote model) implements `InferenceModel` instead.
public protocol DifferentiableClassifier: AnyObject, Sendable {
    var inputWidth: Int { get }
    var classCount: Int { get }
    /// Threads that run the shards of a batch.
    var pool: WorkerPool { get }
    /// Makes room for `shards` shards of up to `rows` examples (call before running shards concurrently).
    func reserve(rows: Int, shards: Int)
    /// Logits (rows, classes) of `input` (rows, inputWidth); valid until the shard's next call.
    func logits(_ input: MatrixRef, shard: Int) -> MatrixRef
    /// Where the caller writes ∂J/∂logits for the shard's last `logits` call.
    func logitsGradient(shard: Int) -> MatrixRef
    /// ∂J/∂input (rows, inputWidth) for the shard's last `logits` call, from the written ∂J/∂logits.
    /// Row i is the gradient of example i's term alone.
    func inputGradient(shard: Int) -> MatrixRef
}

extension Sequential: DifferentiableClassifier {
    public func logits(_ input: MatrixRef, shard: Int) -> MatrixRef {
        forward(input, mode: .evaluation, shard: shard)
    }

    public func inputGradient(shard: Int) -> MatrixRef {
        backward(parameterGradients: .skip, computeInputGradient: true, shard: shard)!
    }
}

extension DifferentiableClassifier {
    /// Predicted classes for every row of `features`, in evaluation mode, in chunks of `batchSize`
    /// split into shards on the classifier's pool.
    /// - Precondition: `features` has `inputWidth` columns (callers check data against the model).
    public func predictions(on features: Tensor, batchSize: Int = 1000) -> [Int] {
        let (rows, columns) = features.matrixShape
        precondition(columns == inputWidth, "data has \(columns) features, the model \(inputWidth)")
        let shards = WorkerPool.defaultShardCount
        reserve(rows: (batchSize + shards - 1) / shards, shards: shards)
        var result = [Int](repeating: 0, count: rows)
        features.withReadOnlyMatrix { x in
            result.withUnsafeMutableBufferPointer { buffer in
                // Created once; reads the chunk from `state` for each chunk, so the loop allocates nothing.
                let state = ShardLoopState((start: 0, chunk: 0, output: SendablePointer(buffer.baseAddress!)))
                let body: @Sendable (Int) -> Void = { s in
                    let (start, chunk, out) = state.value
                    let part = WorkerPool.shardRange(chunk, part: s, parts: shards)
                    guard !part.isEmpty else { return }
                    let view = x.rows((start + part.lowerBound)..<(start + part.upperBound))
                    Kernels.argmaxRows(self.logits(view, shard: s), into: out.pointer + start + part.lowerBound)
                }
                while state.value.start < rows {
                    state.value.chunk = min(batchSize, rows - state.value.start)
                    pool.run(shards: shards, body)
                    state.value.start += state.value.chunk
                }
            }
        }
        return result
    }

    /// Number of examples of `data` classified correctly.
    public func correctPredictions(on data: LabeledData, batchSize: Int = 1000) -> Int {
        zip(predictions(on: data.features, batchSize: batchSize), data.labels).reduce(0) { $0 + ($1.0 == $1.1 ? 1 : 0) }
    }

    /// Fraction of `data` classified correctly, in evaluation mode.
    public func accuracy(on data: LabeledData, batchSize: Int = 1000) -> Double {
        data.count == 0 ? 0 : Double(correctPredictions(on: data, batchSize: batchSize)) / Double(data.count)
    }
}

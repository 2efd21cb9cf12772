import TensorCore

/// What attacks see of a model: logits for a batch, and the gradient of any function of the logits
/// with respect to the input. Everything runs in evaluation mode (dropout off).
///
/// Calls are per shard: different shards may run concurrently on `pool`, one shard may not.
public protocol Classifier: AnyObject {
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

extension Sequential: Classifier {
    public func logits(_ input: MatrixRef, shard: Int) -> MatrixRef {
        forward(input, mode: .evaluation, shard: shard)
    }

    public func inputGradient(shard: Int) -> MatrixRef {
        backward(parameterGradients: .skip, computeInputGradient: true, shard: shard)!
    }
}

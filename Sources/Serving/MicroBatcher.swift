import Foundation
import NeuralNet
import TensorCore

/// Dynamic micro-batching for one model name: requests queue here, and one thread runs everything
/// that queued while it was busy (up to `maxBatchRows`) as one GEMM batch, after waiting at most
/// `window` for more to arrive. Inference never runs on the server's event loops.
///
/// Jobs carry the model they were admitted with, so a reload in between puts old and new jobs in
/// separate batches and in-flight requests finish on the model they started with. The queue is
/// bounded (`maxQueueRows`): beyond it, requests are shed with 503 at once rather than waiting
/// without bound.
public final class MicroBatcher: @unchecked Sendable {  // mutable state only under `condition`
    public struct Limits: Sendable {
        public var maxBatchRows: Int
        public var maxQueueRows: Int
        public var window: Duration

        public init(maxBatchRows: Int = 256, maxQueueRows: Int = 4096, window: Duration = .microseconds(200)) {
            (self.maxBatchRows, self.maxQueueRows, self.window) = (maxBatchRows, maxQueueRows, window)
        }
    }

    private struct Job {
        let model: any InferenceModel
        let modelID: ObjectIdentifier?
        let input: PredictInput
        let continuation: CheckedContinuation<[Float], any Error>
    }

    private let limits: Limits
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var queuedRows = 0
    private var stopped = false
    private var thread: Thread?
    /// Called with the rows of every batch run (metrics).
    private let onBatch: @Sendable (Int) -> Void

    public init(name: String, limits: Limits, onBatch: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.limits = limits
        self.onBatch = onBatch
        let thread = Thread { [unowned self] in run() }
        thread.name = "bulwark-batch-\(name)"
        self.thread = thread
        thread.start()
    }

    /// Rows waiting to run.
    public var queueRows: Int {
        condition.lock()
        defer { condition.unlock() }
        return queuedRows
    }

    /// The logits (rows × classes, row-major) of `input` under `model`.
    /// - Throws: `Problem.overloaded` when the queue is full or the batcher has stopped.
    public func logits(of input: PredictInput, model: any InferenceModel) async throws -> [Float] {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            defer { condition.unlock() }
            guard !stopped else {
                continuation.resume(throwing: Problem.overloaded("the service is shutting down"))
                return
            }
            guard queuedRows + input.rows <= limits.maxQueueRows else {
                continuation.resume(throwing: Problem.overloaded("\(queuedRows) rows are queued for inference (the limit is \(limits.maxQueueRows)); retry after a second"))
                return
            }
            let id = (model as AnyObject?).map(ObjectIdentifier.init)
            queue.append(Job(model: model, modelID: id, input: input, continuation: continuation))
            queuedRows += input.rows
            condition.signal()
        }
    }

    /// Runs what is queued, then stops the thread; later requests get 503.
    public func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
        while thread?.isFinished == false { usleep(1000) }
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty && !stopped { condition.wait() }
            if queue.isEmpty && stopped {
                condition.unlock()
                return
            }
            // Wait briefly for more rows to join, unless a full batch is already here.
            if limits.window > .zero && queuedRows < limits.maxBatchRows && !stopped {
                let deadline = Date().addingTimeInterval(Double(limits.window.components.attoseconds) * 1e-18 + Double(limits.window.components.seconds))
                while queuedRows < limits.maxBatchRows && !stopped && condition.wait(until: deadline) {}
            }
            var batch: [Job] = []
            var rows = 0
            let modelID = queue[0].modelID
            while let job = queue.first, job.modelID == modelID,
                  batch.isEmpty || rows + job.input.rows <= limits.maxBatchRows {
                batch.append(queue.removeFirst())
                rows += job.input.rows
            }
            queuedRows -= rows
            condition.unlock()
            execute(batch, rows: rows)
        }
    }

    private func execute(_ batch: [Job], rows: Int) {
        let model = batch[0].model
        let classes = model.classCount, width = model.inputWidth
        var logits = [Float](repeating: 0, count: rows * classes)
        do {
            try logits.withUnsafeMutableBufferPointer { output in
                let y = MatrixRef(output.baseAddress!, rows: rows, columns: classes)
                if batch.count == 1 {
                    // One request: its parsed rows are the input matrix, no packing copy.
                    try batch[0].input.values.withUnsafeBufferPointer { x in  // read only: `logits` never writes its input
                        try model.logits(MatrixRef(UnsafeMutablePointer(mutating: x.baseAddress!), rows: rows, columns: width), into: y)
                    }
                } else {
                    var packed = [Float]()
                    packed.reserveCapacity(rows * width)
                    for job in batch { packed.append(contentsOf: job.input.values) }
                    try packed.withUnsafeMutableBufferPointer { x in
                        try model.logits(MatrixRef(x.baseAddress!, rows: rows, columns: width), into: y)
                    }
                }
            }
        } catch {
            for job in batch { job.continuation.resume(throwing: error) }
            return
        }
        onBatch(rows)
        var offset = 0
        for job in batch {
            let count = job.input.rows * classes
            job.continuation.resume(returning: Array(logits[offset..<(offset + count)]))
            offset += count
        }
    }
}

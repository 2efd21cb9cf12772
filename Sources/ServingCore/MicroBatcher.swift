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

    /// What one request gets back: its logits, and what the model's detectors flagged.
    public struct Output: Sendable {
        /// rows × classes, row-major.
        public let logits: [Float]
        public let findings: AnomalyDetectors.Findings?
    }

    private struct Job {
        let model: any InferenceModel
        let generation: UInt64
        let detectors: AnomalyDetectors?
        let input: PredictInput
        let continuation: CheckedContinuation<Output, any Error>
    }

    private let limits: Limits
    private let condition = NSCondition()
    private var queue: [Job] = []
    private var queuedRows = 0
    private var stopped = false
    private var thread: Thread?
    /// Noise for the instability detector (used only on the batcher's thread).
    private var generator = RandomGenerator(seed: UInt64.random(in: 0...UInt64.max))
    /// Called with the rows and the inference time of every batch run (metrics).
    private let onBatch: @Sendable (Int, Duration) -> Void

    public init(name: String, limits: Limits, onBatch: @escaping @Sendable (Int, Duration) -> Void = { _, _ in }) {
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

    /// The logits (rows × classes, row-major) of `input` under the served model, and what its
    /// detectors flag.
    /// - Throws: `ServeError.overloaded` when the queue is full or the batcher has stopped.
    public func run(_ input: PredictInput, on served: ServedModel) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            defer { condition.unlock() }
            guard !stopped else {
                continuation.resume(throwing: ServeError.overloaded("the service is shutting down"))
                return
            }
            guard queuedRows + input.rows <= limits.maxQueueRows else {
                continuation.resume(throwing: ServeError.overloaded("\(queuedRows) rows are queued for inference (the limit is \(limits.maxQueueRows)); retry after a second"))
                return
            }
            queue.append(Job(model: served.model, generation: served.generation, detectors: served.detectors, input: input,
                             continuation: continuation))
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
            let generation = queue[0].generation
            while let job = queue.first, job.generation == generation,
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
        let model = batch[0].model, detectors = batch[0].detectors
        let classes = model.classCount, width = model.inputWidth
        var logits = [Float](repeating: 0, count: rows * classes)
        let featureModel = detectors?.mahalanobis == nil ? nil : model as? any FeatureExtractingModel
        var features = [Float](repeating: 0, count: featureModel.map { rows * $0.featureWidth } ?? 0)
        var findings: AnomalyDetectors.Findings?
        let start = ContinuousClock.now
        do {
            // One request: its parsed rows are the input matrix, no packing copy.
            let packed = batch.count == 1 ? batch[0].input.values : batch.flatMap(\.input.values)
            try packed.withUnsafeBufferPointer { x in  // read only: `logits` never writes its input
                let input = MatrixRef(UnsafeMutablePointer(mutating: x.baseAddress!), rows: rows, columns: width)
                try logits.withUnsafeMutableBufferPointer { output in
                    let y = MatrixRef(output.baseAddress!, rows: rows, columns: classes)
                    try features.withUnsafeMutableBufferPointer { f in
                        let featureRef = featureModel.map { MatrixRef(f.baseAddress!, rows: rows, columns: $0.featureWidth) }
                        if let featureModel {
                            try featureModel.logits(input, into: y, features: featureRef)
                        } else {
                            try model.logits(input, into: y)
                        }
                        if let detectors {
                            findings = try detectors.inspect(input: input, logits: y, features: featureRef, model: model, generator: &generator)
                        }
                    }
                }
            }
        } catch {
            for job in batch { job.continuation.resume(throwing: error) }
            return
        }
        onBatch(rows, ContinuousClock.now - start)
        var offset = 0
        for job in batch {
            let count = job.input.rows * classes
            let rowRange = (offset / classes)..<(offset / classes + job.input.rows)
            let own = findings.map {
                AnomalyDetectors.Findings(outOfDistribution: Array($0.outOfDistribution[rowRange]), unstable: Array($0.unstable[rowRange]))
            }
            job.continuation.resume(returning: Output(logits: Array(logits[offset..<(offset + count)]), findings: own))
            offset += count
        }
    }
}

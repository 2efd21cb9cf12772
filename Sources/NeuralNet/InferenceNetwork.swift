import TensorCore

/// A network frozen for inference: immutable weights, evaluation mode, no gradient buffers, and
/// safe to share between any number of concurrent callers (a server's requests).
///
/// Each call leases activation scratch from a small pool (created on demand in power-of-two size
/// classes, returned after the call, at most 16 kept), so concurrent calls never share memory and a
/// steady stream of calls on the calling thread allocates nothing (package-benchmark checks it). A batch is processed in chunks of `chunkRows` rows, each split into
/// `WorkerPool.defaultShardCount` shards exactly as `DifferentiableClassifier.predictions` splits
/// it, so both paths run the same GEMMs on the same rows and give the same logits. With a `pool`,
/// the shards of a chunk run on it (when it is free; otherwise on the calling thread); without one,
/// everything runs on the calling thread, which is what a server with its own concurrency wants.
public final class InferenceNetwork: FeatureExtractingModel {
    public let spec: ModelSpec
    private let layers: [any Layer]
    private let parameterRanges: [Range<Int>]
    /// The weights, never written after `init`.
    private let parameters: FloatBuffer
    private let pool: WorkerPool?
    private let scratchPool = Locked<[Scratch]>([])

    /// Rows per chunk (two shards of `chunkRows / 2`).
    public static let chunkRows = 1000

    public var inputWidth: Int { spec.inputWidth }
    public var classCount: Int { spec.classCount }
    public var parameterCount: Int { parameters.count }
    /// Width of the last layer's input (the penultimate activations).
    public var featureWidth: Int { layers.last?.inputWidth ?? inputWidth }

    /// - Precondition: `parameters` has the spec's parameter count (callers build it from a checked file).
    init(spec: ModelSpec, layers: [any Layer], parameters: [Float], pool: WorkerPool?) {
        self.spec = spec
        self.layers = layers
        parameterRanges = spec.parameterRanges(of: layers)
        precondition(parameters.count == (parameterRanges.last?.upperBound ?? 0), "parameter count does not match the spec")
        self.parameters = FloatBuffer(parameters)
        self.pool = pool
    }

    public func logits(_ input: MatrixRef, into output: MatrixRef) throws {
        try logits(input, into: output, features: nil)
    }

    public func logits(_ input: MatrixRef, into output: MatrixRef, features: MatrixRef?) throws {
        if let features, features.rows != input.rows || features.columns != featureWidth {
            throw InferenceError.shapeMismatch(expected: "features of \(input.rows)×\(featureWidth)", actual: "\(features.rows)×\(features.columns)")
        }
        guard input.columns == inputWidth else {
            throw InferenceError.shapeMismatch(expected: "\(inputWidth) features per row", actual: "\(input.columns)")
        }
        guard output.rows == input.rows, output.columns == classCount else {
            throw InferenceError.shapeMismatch(expected: "an output of \(input.rows)×\(classCount)",
                                               actual: "\(output.rows)×\(output.columns)")
        }
        let shards = WorkerPool.defaultShardCount
        var start = 0
        while start < input.rows {
            let chunk = min(Self.chunkRows, input.rows - start)
            let (x, y) = (input.rows(start..<(start + chunk)), output.rows(start..<(start + chunk)))
            let f = features?.rows(start..<(start + chunk))
            if let pool, chunk > 1 {
                pool.run(shards: shards) { s in self.forward(shard: s, of: shards, x, into: y, features: f) }
            } else {
                for s in 0..<shards { forward(shard: s, of: shards, x, into: y, features: f) }
            }
            start += chunk
        }
    }

    /// The logits of shard `s` of a chunk, with scratch leased for the call.
    private func forward(shard s: Int, of shards: Int, _ x: MatrixRef, into y: MatrixRef, features: MatrixRef?) {
        let part = WorkerPool.shardRange(x.rows, part: s, parts: shards)
        guard !part.isEmpty else { return }
        let scratch = lease(rows: part.count)
        defer { giveBack(scratch) }
        var generator = RandomGenerator(seed: 0)  // evaluation mode draws nothing
        var current = x.rows(part)
        for l in layers.indices {
            if l == layers.count - 1, let features { features.rows(part).copy(from: current) }
            let output = scratch.outputs[l].matrix(rows: part.count, columns: layers[l].outputWidth)
            layers[l].forward(LayerBuffers(input: current, output: output,
                                           parameters: parameters.pointer + parameterRanges[l].lowerBound,
                                           scratch: scratch.scratch[l].matrix(rows: part.count, columns: layers[l].scratchWidth)),
                              mode: .evaluation, generator: &generator)
            current = output
        }
        y.rows(part).copy(from: current)
    }

    private func lease(rows: Int) -> Scratch {
        let leased = scratchPool.withLock { free -> Scratch? in
            guard let index = free.lastIndex(where: { $0.capacity >= rows }) else { return nil }
            return free.remove(at: index)
        }
        // New scratch holds the next power of two of rows (at most a shard of a chunk), so calls of
        // varying sizes share a few size classes and a steady stream of calls allocates nothing.
        let shardRows = (Self.chunkRows + WorkerPool.defaultShardCount - 1) / WorkerPool.defaultShardCount
        return leased ?? Scratch(layers: layers, capacity: min(max(1, rows).nextPowerOfTwo, max(rows, shardRows)))
    }

    /// Scratch buffers kept for reuse at most (more concurrent calls allocate and free their own).
    static let maximumFreeScratch = 16

    private func giveBack(_ scratch: Scratch) {
        scratchPool.withLock { free in
            if free.count < Self.maximumFreeScratch {
                free.append(scratch)
            } else if let smallest = free.indices.min(by: { free[$0].capacity < free[$1].capacity }),
                      free[smallest].capacity < scratch.capacity {
                free[smallest] = scratch  // keep the larger one
            }
        }
    }

    /// Activation memory for one forward pass of up to `capacity` rows.
    private final class Scratch: @unchecked Sendable {  // leased to one call at a time through `scratchPool`
        let capacity: Int
        let outputs: [FloatBuffer]
        let scratch: [FloatBuffer]

        init(layers: [any Layer], capacity: Int) {
            self.capacity = capacity
            outputs = layers.map { FloatBuffer(count: capacity * $0.outputWidth) }
            scratch = layers.map { FloatBuffer(count: capacity * $0.scratchWidth) }
        }
    }
}

extension Int {
    /// The smallest power of two ≥ self (self ≥ 1).
    var nextPowerOfTwo: Int { self <= 1 ? 1 : 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount) }
}

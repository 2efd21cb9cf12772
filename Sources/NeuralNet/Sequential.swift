import Foundation
import TensorCore

/// A feed-forward network: layers applied in order, with every parameter, gradient and activation
/// in buffers allocated once. The model that trains and that white-box attacks differentiate
/// (`DifferentiableClassifier`); `inferenceModel()` gives the thread-safe, gradient-free view a
/// server shares.
///
/// Memory layout (llm.c style):
/// - `parameters`: one flat buffer; layer `l` owns `parameterRanges[l]`, and a dense layer stores
///   `weight` (out, in) then `bias` (out), so the flat buffer is PyTorch's `state_dict` order.
/// - each shard (a part of a batch run on its own core) has a workspace with each layer's output
///   (rows, width), each layer's scratch, and two ping-pong gradient buffers (rows, max width); it
///   grows only when a larger batch arrives, so steady-state steps do not allocate.
/// - parameter gradients exist only once training asks for them (`reserve(…, parameterGradients:
///   true)` or the first backward pass that computes them): shard 0 writes into `gradients`, shard
///   s > 0 into its own buffer, which `reduceShardGradients` adds in. Attacks never allocate them.
///
/// Views returned by `forward` and `backward` point into the shard's workspace and stay valid until
/// its next call. `backward` uses the input given to the shard's last `forward`, which the caller
/// keeps alive.
///
/// Concurrency (`@unchecked Sendable`): different shards may run concurrently, one shard may not.
/// A shard's workspace and gradient buffer are touched only by the job running that shard (the
/// worker pool runs each shard on one thread); `parameters` are read by shard jobs and written only
/// between jobs, or by jobs that update disjoint ranges (the optimizer step); `reserve`, `pool`,
/// the dropout generators and the packed weights are set only while no shard job runs. Checked
/// with ThreadSanitizer.
public final class Sequential: @unchecked Sendable {
    public let spec: ModelSpec
    public let layers: [any Layer]
    public let parameters: FloatBuffer
    public let parameterRanges: [Range<Int>]
    private var shards: [ShardContext]
    /// Per layer, the dense weights packed by `withPackedWeights` (empty outside it).
    private(set) var packedWeights: [PackedDenseWeights?] = []
    /// Whether `withPackedWeights` is running (the parameters must not change then).
    public var hasPackedWeights: Bool { !packedWeights.isEmpty }
    /// Threads that run the shards of a batch (`WorkerPool.shared` unless set).
    public var pool: WorkerPool = .shared

    public var inputWidth: Int { spec.inputWidth }
    public var classCount: Int { spec.classCount }
    public var parameterCount: Int { parameters.count }
    public var shardCount: Int { shards.count }
    /// Parameter gradients of shard 0 (after `reduceShardGradients`, of the whole batch); allocated
    /// on first use.
    public var gradients: FloatBuffer { shards[0].parameterGradients(count: parameters.count) }
    /// The parameter gradients of `shard` (allocated on first use): what `backward` writes for that
    /// shard, before `reduceShardGradients` sums them into shard 0's. An objective that needs
    /// per-example gradients (DP-SGD's clipping) reads and rewrites its shard's buffer here.
    public func parameterGradients(shard index: Int) -> FloatBuffer {
        shards[index].parameterGradients(count: parameters.count)
    }

    /// Whether any shard has allocated parameter gradients (inference and attacks never do).
    public var hasParameterGradients: Bool { shards.contains { $0.gradients != nil } }

    /// A network with parameters initialised from `seed` (He or Xavier as `scheme` says; by default
    /// the one that suits the spec's activation).
    public convenience init(spec: ModelSpec, seed: UInt64, scheme: InitializationScheme? = nil) {
        self.init(spec: spec)
        var generator = RandomGenerator(seed: seed, stream: .initialization)
        for (layer, range) in zip(layers, parameterRanges) {
            layer.initialize(UnsafeMutableBufferPointer(rebasing: parameters.buffer[range]),
                             scheme: scheme ?? spec.defaultInitialization, using: &generator)
        }
    }

    /// A network with all parameters zero (to be filled from a file).
    public init(spec: ModelSpec) {
        self.spec = spec
        layers = spec.makeLayers()
        parameterRanges = spec.parameterRanges(of: layers)
        parameters = FloatBuffer(count: parameterRanges.last?.upperBound ?? 0)
        shards = [ShardContext(layers: layers)]
    }

    /// Makes room for `shardCount` shards of up to `rows` examples each. Call it before running
    /// shards concurrently (it adds shards), and before a timed loop to keep allocation out of it.
    public func reserve(rows: Int, shards shardCount: Int = 1) {
        reserve(rows: rows, shards: shardCount, parameterGradients: false)
    }

    /// `reserve(rows:shards:)`, and with `parameterGradients` the shards' gradient buffers too
    /// (training does this, so that its first step does not allocate them).
    public func reserve(rows: Int, shards shardCount: Int, parameterGradients: Bool) {
        while shards.count < shardCount {
            shards.append(ShardContext(layers: layers))
        }
        for shard in shards where rows > shard.workspace.capacity {
            shard.workspace = Workspace(layers: layers, capacity: max(rows, 1))
        }
        if parameterGradients {
            for shard in shards.prefix(shardCount) { _ = shard.parameterGradients(count: parameters.count) }
        }
    }

    /// The dropout generator of a shard; the trainer reseeds it every epoch.
    public func setDropoutGenerator(_ generator: RandomGenerator, shard: Int = 0) {
        shards[shard].dropoutGenerator = generator
    }

    private func buffers(_ l: Int, input: MatrixRef, rows: Int, shard: ShardContext) -> LayerBuffers {
        LayerBuffers(
            input: input,
            output: shard.workspace.outputs[l].matrix(rows: rows, columns: layers[l].outputWidth),
            parameters: parameters.pointer + parameterRanges[l].lowerBound,
            scratch: shard.workspace.scratch[l].matrix(rows: rows, columns: layers[l].scratchWidth),
            packedWeights: packedWeights.isEmpty ? nil : packedWeights[l])
    }

    /// Runs `body` with every dense layer's weights packed for `PackedMatrix` products, which
    /// forward passes and input gradients then use instead of OpenBLAS (parameter gradients still
    /// use it). For attacks: the parameters must not change while `body` runs. Nothing is packed
    /// when the CPU lacks the vector kernel or `BULWARK_PACKED_WEIGHTS=off` is set; nested calls
    /// pack once. Call it while no shard job runs.
    public func withPackedWeights<T>(_ body: () throws -> T) rethrows -> T {
        guard Self.packsWeights, packedWeights.isEmpty else { return try body() }
        packedWeights = layers.indices.map { l in (layers[l] as? Dense)?.packWeights(parameters.pointer + parameterRanges[l].lowerBound) }
        defer { packedWeights = [] }
        return try body()
    }

    /// Whether `withPackedWeights` packs: a fast kernel, not turned off (to measure what packing
    /// saves, or to get OpenBLAS's rounding).
    static let packsWeights = PackedMatrix.isFast && ProcessInfo.processInfo.environment["BULWARK_PACKED_WEIGHTS"] != "off"

    /// Runs the network on a batch (rows, inputWidth) and returns the logits (rows, classes).
    @discardableResult
    public func forward(_ input: MatrixRef, mode: Mode, shard index: Int = 0) -> MatrixRef {
        precondition(input.columns == inputWidth, "input has \(input.columns) features, the network expects \(inputWidth)")
        precondition(index >= 0 && index < shards.count, "shard \(index) was not reserved (\(shards.count) shards)")
        let shard = shards[index]
        if input.rows > shard.workspace.capacity { shard.workspace = Workspace(layers: layers, capacity: input.rows) }
        let rows = input.rows
        var current = input
        for l in layers.indices {
            let b = buffers(l, input: current, rows: rows, shard: shard)
            layers[l].forward(b, mode: mode, generator: &shard.dropoutGenerator)
            current = b.output
        }
        shard.lastInput = input
        shard.lastRows = rows
        return current
    }

    /// Reruns layers `first`… of the shard's last forward pass in evaluation mode from the stored
    /// output of layer `first − 1` (after a caller changed it in place) and returns the logits.
    func forward(fromLayer first: Int, shard index: Int) -> MatrixRef {
        let shard = shards[index]
        precondition(first >= 1 && first <= layers.count && shard.lastInput != nil, "forward(fromLayer:) needs a forward pass first")
        let rows = shard.lastRows
        var current = shard.workspace.outputs[first - 1].matrix(rows: rows, columns: layers[first - 1].outputWidth)
        for l in first..<layers.count {
            let b = buffers(l, input: current, rows: rows, shard: shard)
            layers[l].forward(b, mode: .evaluation, generator: &shard.dropoutGenerator)
            current = b.output
        }
        return current
    }

    /// The output of layer `l` from the shard's last forward pass (rows, width), e.g. to inspect
    /// pre-activations.
    public func layerOutput(_ l: Int, shard index: Int = 0) -> MatrixRef {
        shards[index].workspace.outputs[l].matrix(rows: shards[index].lastRows, columns: layers[l].outputWidth)
    }

    /// Where the caller writes ∂L/∂logits (rows of the shard's last forward pass, classes) before `backward`.
    public func logitsGradient(shard index: Int = 0) -> MatrixRef {
        shards[index].workspace.gradientA.matrix(rows: shards[index].lastRows, columns: classCount)
    }

    /// Back-propagates the shard's `logitsGradient` through the layers of its last forward pass.
    /// - Parameters:
    ///   - parameterGradients: skip, overwrite or add into the shard's parameter gradients.
    ///   - computeInputGradient: also compute ∂L/∂x, as attacks need.
    /// - Returns: ∂L/∂x (rows, inputWidth) if requested, else nil.
    @discardableResult
    public func backward(parameterGradients: ParameterGradients, computeInputGradient: Bool, shard index: Int = 0) -> MatrixRef? {
        let shard = shards[index]
        guard let input = shard.lastInput else { preconditionFailure("backward() called before forward()") }
        let rows = shard.lastRows
        let gradientBase: UnsafeMutablePointer<Float>? = parameterGradients == .skip
            ? nil : shard.parameterGradients(count: parameters.count).pointer
        var outputGradient = logitsGradient(shard: index)
        var target = shard.workspace.gradientB
        var other = shard.workspace.gradientA
        for l in layers.indices.reversed() {
            let layerInput = l == 0 ? input : shard.workspace.outputs[l - 1].matrix(rows: rows, columns: layers[l].inputWidth)
            let needInputGradient = l > 0 || computeInputGradient
            let inputGradient = needInputGradient ? target.matrix(rows: rows, columns: layers[l].inputWidth) : nil
            let destination: GradientDestination = switch (parameterGradients, gradientBase) {
            case (.overwrite, let base?): .overwrite(base + parameterRanges[l].lowerBound)
            case (.accumulate, let base?): .accumulate(base + parameterRanges[l].lowerBound)
            default: .none
            }
            layers[l].backward(buffers(l, input: layerInput, rows: rows, shard: shard), outputGradient: outputGradient,
                               inputGradient: inputGradient, parameterGradients: destination)
            guard let inputGradient else { return nil }
            outputGradient = inputGradient
            swap(&target, &other)
        }
        return outputGradient
    }

    /// Each example's squared norm of ∂L/∂θ over all layers, for the shard's last forward pass and
    /// the ∂L/∂logits the caller wrote into `logitsGradient`, added into `norms` (one entry per row,
    /// zeroed by the caller): one reverse pass of input gradients, no parameter gradients and no
    /// per-example gradients (Goodfellow, 2015). DP-SGD clips with it.
    /// - Note: the pass reuses the gradient buffers, so `logitsGradient` is overwritten; keep a copy.
    public func addPerExampleGradientNormsSquared(shard index: Int = 0, into norms: UnsafeMutablePointer<Double>) {
        let shard = shards[index]
        guard let input = shard.lastInput else { preconditionFailure("per-example norms need a forward pass first") }
        let rows = shard.lastRows
        var outputGradient = logitsGradient(shard: index)
        var target = shard.workspace.gradientB
        var other = shard.workspace.gradientA
        for l in layers.indices.reversed() {
            let layerInput = l == 0 ? input : shard.workspace.outputs[l - 1].matrix(rows: rows, columns: layers[l].inputWidth)
            let b = buffers(l, input: layerInput, rows: rows, shard: shard)
            layers[l].addPerExampleGradientNormsSquared(b, outputGradient: outputGradient, into: norms)
            guard l > 0 else { return }
            let inputGradient = target.matrix(rows: rows, columns: layers[l].inputWidth)
            layers[l].backward(b, outputGradient: outputGradient, inputGradient: inputGradient, parameterGradients: .none)
            outputGradient = inputGradient
            swap(&target, &other)
        }
    }

    /// Zeroes the parameter gradients of `shard` (all of them, or only `range`).
    public func zeroGradients(shard index: Int = 0, range: Range<Int>? = nil) {
        let gradients = shards[index].parameterGradients(count: parameters.count)
        let range = range ?? 0..<gradients.count
        (gradients.pointer + range.lowerBound).update(repeating: 0, count: range.count)
    }

    /// Adds the parameter gradients of shards 1..<`count` into shard 0's, over `range` (so several
    /// threads can each reduce a part).
    /// - Precondition: those shards have parameter gradients (`reserve(…, parameterGradients: true)`).
    public func reduceShardGradients(count: Int, range: Range<Int>) {
        guard let total = shards[0].gradients?.pointer else { preconditionFailure("shard 0 has no parameter gradients") }
        for s in 1..<max(count, 1) {
            guard let part = shards[s].gradients?.pointer else { preconditionFailure("shard \(s) has no parameter gradients") }
            Kernels.axpy(1, part + range.lowerBound, total + range.lowerBound, count: range.count)
        }
    }

    /// Predicted classes for `input`, in evaluation mode, written to `predictions` (rows entries).
    public func predict(_ input: MatrixRef, into predictions: UnsafeMutablePointer<Int>, shard: Int = 0) {
        Kernels.argmaxRows(forward(input, mode: .evaluation, shard: shard), into: predictions)
    }

    /// The parameter tensors with PyTorch `nn.Sequential` state-dict keys (`0.weight`, `0.bias`, …).
    public var namedParameters: [(key: String, shape: [Int], range: Range<Int>)] {
        spec.namedParameters(of: layers, ranges: parameterRanges)
    }

    /// A thread-safe snapshot of the current weights for inference (see `InferenceNetwork`).
    public func inferenceModel(pool: WorkerPool? = nil) -> InferenceNetwork {
        InferenceNetwork(spec: spec, layers: layers, parameters: parameters.array, pool: pool)
    }
}

extension ModelSpec {
    /// The flat-buffer range of each layer's parameters.
    func parameterRanges(of layers: [any Layer]) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var offset = 0
        for layer in layers {
            ranges.append(offset..<(offset + layer.parameterCount))
            offset += layer.parameterCount
        }
        return ranges
    }

    /// Parameter tensors with PyTorch `nn.Sequential` state-dict keys.
    func namedParameters(of layers: [any Layer], ranges: [Range<Int>]) -> [(key: String, shape: [Int], range: Range<Int>)] {
        var result: [(String, [Int], Range<Int>)] = []
        for (index, layer) in layers.enumerated() {
            var offset = ranges[index].lowerBound
            for shape in layer.parameterShapes {
                result.append(("\(index).\(shape.name)", shape.shape, offset..<(offset + shape.count)))
                offset += shape.count
            }
        }
        return result
    }
}

/// One shard's working memory and state (confined to the job that runs the shard).
private final class ShardContext {
    var workspace: Workspace
    /// Parameter gradients, once training asks for them.
    var gradients: FloatBuffer?
    var dropoutGenerator = RandomGenerator(seed: 0, stream: .dropout)
    var lastInput: MatrixRef?
    var lastRows = 0

    init(layers: [any Layer]) {
        workspace = Workspace(layers: layers, capacity: 0)
    }

    func parameterGradients(count: Int) -> FloatBuffer {
        if let gradients { return gradients }
        let created = FloatBuffer(count: count)
        gradients = created
        return created
    }
}

/// Activations, scratch and gradient buffers for batches of up to `capacity` rows.
private struct Workspace {
    let capacity: Int
    let outputs: [FloatBuffer]   // layer l: (capacity, outputWidth_l)
    let scratch: [FloatBuffer]   // layer l: (capacity, scratchWidth_l)
    let gradientA: FloatBuffer   // (capacity, max width)
    let gradientB: FloatBuffer   // (capacity, max width)

    init(layers: [any Layer], capacity: Int) {
        self.capacity = capacity
        outputs = layers.map { FloatBuffer(count: capacity * $0.outputWidth) }
        scratch = layers.map { FloatBuffer(count: capacity * $0.scratchWidth) }
        let widest = layers.reduce(0) { max($0, $1.inputWidth, $1.outputWidth) }
        gradientA = FloatBuffer(count: capacity * widest)
        gradientB = FloatBuffer(count: capacity * widest)
    }
}

extension RandomStream {
    /// Weight initialisation.
    public static let initialization = RandomStream(id: 1, name: "initialization")
    /// Each epoch's shuffle of the training set.
    public static let shuffle = RandomStream(id: 3, name: "shuffle")
    /// Dropout masks, per epoch and shard.
    public static let dropout = RandomStream(id: 4, name: "dropout")
    /// A training objective's own draws (adversarial training's random starts), per epoch and shard.
    public static let trainingObjective = RandomStream(id: 6, name: "training objective")
}

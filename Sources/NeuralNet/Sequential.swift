import TensorCore

/// A feed-forward network: layers applied in order, with every parameter, gradient and activation
/// in buffers allocated once.
///
/// Memory layout (llm.c style):
/// - `parameters`, `gradients`: one flat buffer each; layer `l` owns `parameterRanges[l]`, and a
///   dense layer stores `weight` (out, in) then `bias` (out), so the flat buffer is PyTorch's
///   `state_dict` order.
/// - each shard (a part of a batch run on its own core) has a workspace with each layer's output
///   (rows, width), each layer's scratch, and two ping-pong gradient buffers (rows, max width); it
///   grows only when a larger batch arrives, so steady-state steps do not allocate. Shard 0 writes
///   parameter gradients into `gradients`, shard s > 0 into its own buffer, which
///   `reduceShardGradients` adds in.
///
/// Views returned by `forward` and `backward` point into the shard's workspace and stay valid until
/// its next call. `backward` uses the input given to the shard's last `forward`, which the caller
/// keeps alive. Different shards may run concurrently; one shard may not.
public final class Sequential {
    public let spec: ModelSpec
    public let layers: [any Layer]
    public let parameters: FloatBuffer
    public let parameterRanges: [Range<Int>]
    private var shards: [ShardContext]
    /// Threads that run the shards of a batch (`WorkerPool.shared` unless set).
    public var pool: WorkerPool = .shared

    public var inputWidth: Int { spec.inputWidth }
    public var classCount: Int { spec.classCount }
    public var parameterCount: Int { parameters.count }
    public var shardCount: Int { shards.count }
    /// Parameter gradients of shard 0 (after `reduceShardGradients`, of the whole batch).
    public var gradients: FloatBuffer { shards[0].gradients }

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
        var ranges: [Range<Int>] = []
        var offset = 0
        for layer in layers {
            ranges.append(offset..<(offset + layer.parameterCount))
            offset += layer.parameterCount
        }
        parameterRanges = ranges
        parameters = FloatBuffer(count: offset)
        shards = [ShardContext(layers: layers, parameterCount: offset)]
    }

    /// Makes room for `shardCount` shards of up to `rows` examples each. Call it before running
    /// shards concurrently (it adds shards), and before a timed loop to keep allocation out of it.
    public func reserve(rows: Int, shards shardCount: Int = 1) {
        while shards.count < shardCount {
            shards.append(ShardContext(layers: layers, parameterCount: parameters.count))
        }
        for shard in shards where rows > shard.workspace.capacity {
            shard.workspace = Workspace(layers: layers, capacity: max(rows, 1))
        }
    }

    /// The dropout generator of a shard; the trainer reseeds it every epoch.
    public func setDropoutGenerator(_ generator: RandomGenerator, shard: Int = 0) {
        shards[shard].dropoutGenerator = generator
    }

    private func buffers(_ l: Int, input: MatrixRef, rows: Int, shard: ShardContext) -> LayerBuffers {
        let range = parameterRanges[l]
        return LayerBuffers(
            input: input,
            output: shard.workspace.outputs[l].matrix(rows: rows, columns: layers[l].outputWidth),
            parameters: parameters.pointer + range.lowerBound,
            gradients: shard.gradients.pointer + range.lowerBound,
            scratch: shard.workspace.scratch[l].matrix(rows: rows, columns: layers[l].scratchWidth))
    }

    /// Runs the network on a batch (rows, inputWidth) and returns the logits (rows, classes).
    @discardableResult
    public func forward(_ input: MatrixRef, mode: Mode, shard index: Int = 0) -> MatrixRef {
        precondition(input.columns == inputWidth, "input has \(input.columns) features, the network expects \(inputWidth)")
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
        var outputGradient = logitsGradient(shard: index)
        var target = shard.workspace.gradientB
        var other = shard.workspace.gradientA
        for l in layers.indices.reversed() {
            let layerInput = l == 0 ? input : shard.workspace.outputs[l - 1].matrix(rows: rows, columns: layers[l].inputWidth)
            let needInputGradient = l > 0 || computeInputGradient
            let inputGradient = needInputGradient ? target.matrix(rows: rows, columns: layers[l].inputWidth) : nil
            layers[l].backward(buffers(l, input: layerInput, rows: rows, shard: shard), outputGradient: outputGradient,
                               inputGradient: inputGradient, parameterGradients: parameterGradients)
            guard let inputGradient else { return nil }
            outputGradient = inputGradient
            swap(&target, &other)
        }
        return outputGradient
    }

    /// Zeroes the parameter gradients of `shard` (all of them, or only `range`).
    public func zeroGradients(shard index: Int = 0, range: Range<Int>? = nil) {
        let gradients = shards[index].gradients
        let range = range ?? 0..<gradients.count
        (gradients.pointer + range.lowerBound).update(repeating: 0, count: range.count)
    }

    /// Adds the parameter gradients of shards 1..<`count` into shard 0's, over `range` (so several
    /// threads can each reduce a part).
    public func reduceShardGradients(count: Int, range: Range<Int>) {
        let total = shards[0].gradients.pointer
        for s in 1..<max(count, 1) {
            Kernels.axpy(1, shards[s].gradients.pointer + range.lowerBound, total + range.lowerBound, count: range.count)
        }
    }

    /// Predicted classes for `input`, in evaluation mode, written to `predictions` (rows entries).
    public func predict(_ input: MatrixRef, into predictions: UnsafeMutablePointer<Int>, shard: Int = 0) {
        Kernels.argmaxRows(forward(input, mode: .evaluation, shard: shard), into: predictions)
    }

    /// The parameter tensors with PyTorch `nn.Sequential` state-dict keys (`0.weight`, `0.bias`, …).
    public var namedParameters: [(key: String, shape: [Int], range: Range<Int>)] {
        var result: [(String, [Int], Range<Int>)] = []
        for (index, layer) in layers.enumerated() {
            var offset = parameterRanges[index].lowerBound
            for shape in layer.parameterShapes {
                result.append(("\(index).\(shape.name)", shape.shape, offset..<(offset + shape.count)))
                offset += shape.count
            }
        }
        return result
    }
}

/// One shard's working memory and state.
private final class ShardContext {
    var workspace: Workspace
    let gradients: FloatBuffer
    var dropoutGenerator = RandomGenerator(seed: 0, stream: .dropout)
    var lastInput: MatrixRef?
    var lastRows = 0

    init(layers: [any Layer], parameterCount: Int) {
        workspace = Workspace(layers: layers, capacity: 0)
        gradients = FloatBuffer(count: parameterCount)
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

import TensorCore

/// Forward passes of a `Sequential` whose first layer is `Dense`, for inputs that differ from a
/// known point in a few features (sparse-update attacks, e.g. Square): the first layer's
/// pre-activations h = W₁x + b₁ are kept per row and updated by h += Δⱼ·W₁[:, j] for each changed
/// feature j (on a transposed copy of W₁, so each update is one contiguous row), and only the later
/// layers run in full. For a window of s² changed pixels this replaces 784·256 multiply-adds of the
/// first layer by 256·s².
///
/// Holds scratch for `rows` rows: the current points' pre-activations, the candidates', and the
/// later layers' activations. One instance per shard; it reads the network's weights (call
/// `refreshWeights` after they change).
public final class IncrementalForward {
    public let network: Sequential
    public let capacity: Int
    /// The first layer.
    let dense: Dense
    let inputWidth: Int
    /// First layer's outputs (hidden units).
    let width: Int
    /// (inputWidth, width): W₁ᵀ.
    let transposedWeights: FloatBuffer
    let current: FloatBuffer, candidates: FloatBuffer
    let outputs: [FloatBuffer], scratch: [FloatBuffer]

    /// nil when the first layer is not `Dense`.
    public init?(_ network: Sequential, rows: Int) {
        guard let dense = network.layers.first as? Dense else { return nil }
        self.network = network
        self.dense = dense
        capacity = max(rows, 1)
        inputWidth = dense.inputWidth
        width = dense.outputWidth
        transposedWeights = FloatBuffer(count: inputWidth * width)
        current = FloatBuffer(count: capacity * width)
        candidates = FloatBuffer(count: capacity * width)
        outputs = network.layers.dropFirst().map { FloatBuffer(count: max(rows, 1) * $0.outputWidth) }
        scratch = network.layers.dropFirst().map { FloatBuffer(count: max(rows, 1) * $0.scratchWidth) }
        refreshWeights()
    }

    /// Whether this instance serves `network` with at least `rows` rows.
    public func fits(_ network: Sequential, rows: Int) -> Bool { self.network === network && capacity >= rows }

    /// Copies W₁ᵀ from the network's current weights.
    public func refreshWeights() {
        let w = network.parameters.pointer + network.parameterRanges[0].lowerBound  // (width, inputWidth)
        for o in 0..<width {
            for j in 0..<inputWidth { transposedWeights.pointer[j * width + o] = w[o * inputWidth + j] }
        }
    }

    /// Sets the current points' pre-activations from `x` (rows ≤ capacity, inputWidth): exact.
    public func firstLayer(_ x: MatrixRef) {
        network.firstLayerOutputs(x, into: current.matrix(rows: x.rows, columns: width), shard: 0)
    }

    /// Starts row `i`'s candidate at its current point.
    public func beginCandidate(row i: Int) {
        (candidates.pointer + i * width).update(from: current.pointer + i * width, count: width)
    }

    /// Row `i`'s candidate differs from the current point by `delta` in `feature`.
    public func addToCandidate(row i: Int, feature j: Int, delta: Float) {
        let h = candidates.pointer + i * width, column = transposedWeights.pointer + j * width
        for o in 0..<width { h[o] += delta * column[o] }
    }

    /// Row `i`'s candidate becomes its current point.
    public func acceptCandidate(row i: Int) {
        (current.pointer + i * width).update(from: candidates.pointer + i * width, count: width)
    }

    /// Moves row `i`'s current point to slot `j` (compaction).
    public func moveRow(_ i: Int, to j: Int) {
        (current.pointer + j * width).update(from: current.pointer + i * width, count: width)
    }

    /// The logits of the first `rows` current points or candidates; valid until the next call.
    public func logits(rows m: Int, fromCandidates: Bool) -> MatrixRef {
        var input = (fromCandidates ? candidates : current).matrix(rows: m, columns: width)
        var generator = RandomGenerator(seed: 0)  // evaluation mode draws nothing
        for (k, layer) in network.layers.dropFirst().enumerated() {
            let l = k + 1
            let output = outputs[k].matrix(rows: m, columns: layer.outputWidth)
            layer.forward(LayerBuffers(input: input, output: output, parameters: network.parameters.pointer + network.parameterRanges[l].lowerBound,
                                       scratch: scratch[k].matrix(rows: m, columns: layer.scratchWidth)),
                          mode: .evaluation, generator: &generator)
            input = output
        }
        return input
    }
}

import TensorCore

/// Forward passes of a `Sequential` whose first layer is `Dense`, for inputs that differ from a
/// known point in a few features (sparse-update attacks, e.g. Square): the first layer's
/// pre-activations h = W₁x + b₁ are kept per row and updated by h += Σⱼ Δⱼ·W₁[:, j] over the
/// changed features j (on a transposed copy of W₁, so each term is one contiguous row). For a
/// window of s² changed pixels this replaces 784·256 multiply-adds of the first layer by 256·s².
///
/// When the first layer is followed by ReLU and a second `Dense`, that layer's pre-activations
/// h₂ = W₂·relu(h) + b₂ are kept too and updated by W₂·(relu(h′) − relu(h)) over the hidden units
/// whose ReLU output changed: the inactive units (about 70% in the shipped models) cost nothing,
/// so the 256·256 multiply-adds of the second layer shrink to about a third. The layers after it
/// run in full.
///
/// Holds scratch for `rows` rows: the current points' pre-activations, the candidates', and the
/// later layers' activations. One instance per shard; it reads the network's weights (call
/// `refreshWeights` after they change). Rounding makes the updated values drift from a full
/// forward pass: callers refresh with `firstLayer` now and then and confirm decisions exactly.
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
    /// The second dense layer's incremental state, when layers 1 and 2 are ReLU and Dense.
    let second: SecondLayer?
    let outputs: [FloatBuffer], scratch: [FloatBuffer]

    /// The pre-activations of a dense layer that follows the first one through a ReLU.
    final class SecondLayer {
        /// Its outputs.
        let width: Int
        /// (first layer's width, width): W₂ᵀ.
        let transposedWeights: FloatBuffer
        let current: FloatBuffer, candidates: FloatBuffer
        let index: UnsafeMutablePointer<Int>, change: FloatBuffer

        init(width: Int, inputWidth: Int, rows: Int) {
            self.width = width
            transposedWeights = FloatBuffer(count: inputWidth * width)
            current = FloatBuffer(count: rows * width)
            candidates = FloatBuffer(count: rows * width)
            index = .allocate(capacity: inputWidth)
            change = FloatBuffer(count: inputWidth)
        }

        deinit { index.deallocate() }
    }

    /// nil when the first layer is not `Dense`. `secondLayer: false` recomputes every layer after
    /// the first in full (to measure what the second layer's update saves).
    public init?(_ network: Sequential, rows: Int, secondLayer: Bool = true) {
        guard let dense = network.layers.first as? Dense else { return nil }
        self.network = network
        self.dense = dense
        capacity = max(rows, 1)
        inputWidth = dense.inputWidth
        width = dense.outputWidth
        transposedWeights = FloatBuffer(count: inputWidth * width)
        current = FloatBuffer(count: capacity * width)
        candidates = FloatBuffer(count: capacity * width)
        let layers = network.layers
        if secondLayer, layers.count >= 3, layers[1] is ReLU, let next = layers[2] as? Dense {
            second = SecondLayer(width: next.outputWidth, inputWidth: width, rows: capacity)
        } else {
            second = nil
        }
        outputs = layers.dropFirst().map { FloatBuffer(count: max(rows, 1) * $0.outputWidth) }
        scratch = layers.dropFirst().map { FloatBuffer(count: max(rows, 1) * $0.scratchWidth) }
        refreshWeights()
    }

    /// Whether this instance serves `network` with at least `rows` rows.
    public func fits(_ network: Sequential, rows: Int) -> Bool { self.network === network && capacity >= rows }

    /// Copies W₁ᵀ (and W₂ᵀ) from the network's current weights.
    public func refreshWeights() {
        Self.transpose(network.parameters.pointer + network.parameterRanges[0].lowerBound, rows: width, columns: inputWidth,
                       into: transposedWeights.pointer)
        if let second {
            Self.transpose(network.parameters.pointer + network.parameterRanges[2].lowerBound, rows: second.width, columns: width,
                           into: second.transposedWeights.pointer)
        }
    }

    /// out[j·rows + o] = w[o·columns + j]: a dense layer's (outputs, inputs) weights, transposed.
    private static func transpose(_ w: UnsafeMutablePointer<Float>, rows: Int, columns: Int, into out: UnsafeMutablePointer<Float>) {
        for o in 0..<rows {
            for j in 0..<columns { out[j * rows + o] = w[o * columns + j] }
        }
    }

    /// Sets the current points' pre-activations from `x` (rows ≤ capacity, inputWidth): exact.
    public func firstLayer(_ x: MatrixRef) {
        let h = current.matrix(rows: x.rows, columns: width)
        network.firstLayerOutputs(x, into: h, shard: 0)
        if let second {
            _ = runLayers(1..<3, from: h, rows: x.rows, lastInto: second.current.matrix(rows: x.rows, columns: second.width))
        }
    }

    /// Row `i`'s candidate: its current point changed by `changes[t]` in feature `features[t]`, for
    /// t < `count` (one pass over the row's pre-activations, which stay in registers).
    public func setCandidate(row i: Int, features: UnsafePointer<Int>, changes: UnsafePointer<Float>, count: Int) {
        Kernels.rowsUpdate(base: current.pointer + i * width, into: candidates.pointer + i * width, transposedWeights: transposedWeights.pointer,
                           outputs: width, index: features, change: changes, count: count)
    }

    /// Row `i`'s candidate becomes its current point.
    public func acceptCandidate(row i: Int) {
        (current.pointer + i * width).update(from: candidates.pointer + i * width, count: width)
        if let second {
            (second.current.pointer + i * second.width).update(from: second.candidates.pointer + i * second.width, count: second.width)
        }
    }

    /// Moves row `i`'s current point to slot `j` (compaction).
    public func moveRow(_ i: Int, to j: Int) {
        (current.pointer + j * width).update(from: current.pointer + i * width, count: width)
        if let second {
            (second.current.pointer + j * second.width).update(from: second.current.pointer + i * second.width, count: second.width)
        }
    }

    /// The logits of the first `rows` current points or candidates; valid until the next call.
    public func logits(rows m: Int, fromCandidates: Bool) -> MatrixRef {
        guard let second else {
            return runLayers(1..<network.layers.count, from: (fromCandidates ? candidates : current).matrix(rows: m, columns: width), rows: m)
        }
        if fromCandidates {
            for i in 0..<m {
                Kernels.reluChangeUpdate(after: candidates.pointer + i * width, before: current.pointer + i * width, width: width,
                                         transposedWeights: second.transposedWeights.pointer, outputs: second.width,
                                         base: second.current.pointer + i * second.width, into: second.candidates.pointer + i * second.width,
                                         index: second.index, change: second.change.pointer)
            }
        }
        let h2 = (fromCandidates ? second.candidates : second.current).matrix(rows: m, columns: second.width)
        return runLayers(3..<network.layers.count, from: h2, rows: m)
    }

    /// Runs `layers` (indices into the network, after the first) on `input`; the last one writes to
    /// `lastInto` if given. Returns the last output (`input` itself for an empty range).
    private func runLayers(_ layers: Range<Int>, from input: MatrixRef, rows m: Int, lastInto: MatrixRef? = nil) -> MatrixRef {
        var input = input
        var generator = RandomGenerator(seed: 0)  // evaluation mode draws nothing
        for l in layers {
            let layer = network.layers[l]
            let output = l == layers.upperBound - 1 ? lastInto ?? outputs[l - 1].matrix(rows: m, columns: layer.outputWidth)
                                                    : outputs[l - 1].matrix(rows: m, columns: layer.outputWidth)
            layer.forward(LayerBuffers(input: input, output: output, parameters: network.parameters.pointer + network.parameterRanges[l].lowerBound,
                                       scratch: scratch[l - 1].matrix(rows: m, columns: layer.scratchWidth),
                                       packedWeights: network.hasPackedWeights ? network.packedWeights[l] : nil),
                          mode: .evaluation, generator: &generator)
            input = output
        }
        return input
    }
}

import TensorCore

/// A classifier whose first layer is affine, h = W₁x + b₁ (a `Dense` layer). On such a model the
/// first layer's output at a point of a segment is the same blend of its outputs at the ends:
/// h(x₀ + β(x − x₀)) = (1 − β)·h(x₀) + β·h(x). An attack that moves rows of its last forward pass
/// toward known points (FAB's step back toward the clean input) can then blend first-layer outputs
/// and recompute only the later layers, instead of a second full forward pass.
public protocol AffineFirstLayerClassifier: DifferentiableClassifier {
    /// The first layer's output width, or nil if the first layer is not affine (then the other
    /// requirements must not be used).
    var affineFirstLayerWidth: Int? { get }
    /// h = W₁x + b₁ for the rows of `input` into `output` (rows, affineFirstLayerWidth). Uses the
    /// shard's scratch: call it before the shard's next `logits`, not between `logits` and
    /// `inputGradient`.
    func firstLayerOutputs(_ input: MatrixRef, into output: MatrixRef, shard: Int)
    /// The first layer's outputs of the shard's last forward pass, to be changed in place; then
    /// `refreshAfterFirstLayer(shard:)`.
    func lastFirstLayerOutputs(shard: Int) -> MatrixRef
    /// Recomputes every later layer of the shard's last forward pass from its (changed) first-layer
    /// outputs and returns the new logits; `logitsGradient` and `inputGradient` then refer to the
    /// points those outputs belong to.
    func refreshAfterFirstLayer(shard: Int) -> MatrixRef
}

extension Sequential: AffineFirstLayerClassifier {
    public var affineFirstLayerWidth: Int? { (layers.first as? Dense)?.outputWidth }

    public func firstLayerOutputs(_ input: MatrixRef, into output: MatrixRef, shard: Int) {
        guard let dense = layers.first as? Dense else { preconditionFailure("the first layer is not Dense") }
        // Through the layer itself, so that inside `withPackedWeights` it uses the same product as
        // the forward passes it is blended with.
        var generator = RandomGenerator(seed: 0)  // a dense layer draws nothing
        dense.forward(LayerBuffers(input: input, output: output, parameters: parameters.pointer + parameterRanges[0].lowerBound,
                                   scratch: MatrixRef(output.base, rows: input.rows, columns: 0),
                                   packedWeights: packedWeights.first ?? nil),
                      mode: .evaluation, generator: &generator)
    }

    public func lastFirstLayerOutputs(shard: Int) -> MatrixRef { layerOutput(0, shard: shard) }

    public func refreshAfterFirstLayer(shard: Int) -> MatrixRef { forward(fromLayer: 1, shard: shard) }
}

import TensorCore

/// Inverted dropout (Srivastava et al., 2014): in training mode each element is zeroed with
/// probability `p` and the survivors scaled by `1/(1−p)`; in evaluation mode it is the identity.
/// PyTorch: `nn.Dropout(p)`. The mask comes from the seeded generator, so runs are reproducible.
public struct Dropout: ElementwiseLayer {
    public let width: Int
    public let probability: Float

    /// - Precondition: 0 ≤ p < 1 (validated with a message when parsed from a spec).
    public init(width: Int, probability: Float) {
        precondition(probability >= 0 && probability < 1, "dropout probability must be in [0, 1), got \(probability)")
        self.width = width
        self.probability = probability
    }
    public var description: String { "Dropout(\(probability))" }
    public var torchModule: String { "nn.Dropout(\(probability))" }
    public var spec: LayerSpec { .dropout(probability: probability) }
    /// The mask (0 or 1/(1−p)) of the last training-mode forward pass.
    public var scratchWidth: Int { width }

    public func forward(_ b: LayerBuffers, mode: Mode, generator: inout RandomGenerator) {
        let (x, y, mask) = (b.input.base, b.output.base, b.scratch.base)
        let count = b.input.count
        guard mode == .training, probability > 0 else {
            y.update(from: x, count: count)
            mask.update(repeating: 1, count: count)
            return
        }
        let keep = 1 - probability
        let scale = 1 / keep
        for i in 0..<count {
            mask[i] = generator.nextUnitFloat() < keep ? scale : 0
            y[i] = x[i] * mask[i]
        }
    }

    public func backward(_ b: LayerBuffers, outputGradient: MatrixRef, inputGradient: MatrixRef?, parameterGradients: GradientDestination) {
        guard let inputGradient else { return }
        Kernels.multiply(outputGradient, by: b.scratch, into: inputGradient)
    }
}

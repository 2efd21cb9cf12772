import TensorCore

/// Leaky ReLU, `y = x` for x > 0 else `slope·x` (Maas et al., 2013). PyTorch: `nn.LeakyReLU(slope)`.
public struct LeakyReLU: ElementwiseLayer {
    public let width: Int
    public let slope: Float

    /// - Precondition: 0 < slope < 1 (validated with a message when parsed from a spec).
    public init(width: Int, slope: Float = 0.01) {
        precondition(slope > 0 && slope < 1, "LeakyReLU slope must be in (0, 1), got \(slope)")
        self.width = width
        self.slope = slope
    }
    public var description: String { "LeakyReLU(\(slope))" }
    public var torchModule: String { "nn.LeakyReLU(\(slope))" }
    public var spec: LayerSpec { .leakyReLU(slope: slope) }

    public func forward(_ b: LayerBuffers, mode: Mode, generator: inout RandomGenerator) {
        Kernels.leakyReLU(b.input, slope: slope, into: b.output)
    }

    public func backward(_ b: LayerBuffers, outputGradient: MatrixRef, inputGradient: MatrixRef?, parameterGradients: GradientDestination) {
        guard let inputGradient else { return }
        Kernels.leakyReLUBackward(output: b.output, outputGradient: outputGradient, slope: slope, into: inputGradient)
    }
}

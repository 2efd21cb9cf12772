import TensorCore

/// Hyperbolic tangent, `y = tanh(x)`, `dy/dx = 1 − y²`. PyTorch: `nn.Tanh()`.
public struct Tanh: ElementwiseLayer {
    public let width: Int
    public init(width: Int) { self.width = width }
    public var description: String { "Tanh" }
    public var torchModule: String { "nn.Tanh()" }
    public var spec: LayerSpec { .tanh }

    public func forward(_ b: LayerBuffers, mode: Mode, generator: inout RandomGenerator) {
        Kernels.tanh(b.input, into: b.output)
    }

    public func backward(_ b: LayerBuffers, outputGradient: MatrixRef, inputGradient: MatrixRef?, parameterGradients: GradientDestination) {
        guard let inputGradient else { return }
        Kernels.tanhBackward(output: b.output, outputGradient: outputGradient, into: inputGradient)
    }
}

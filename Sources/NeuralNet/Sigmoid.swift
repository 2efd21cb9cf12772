import TensorCore

/// Logistic sigmoid, `y = 1/(1 + e^(−x))`, `dy/dx = y(1 − y)`. PyTorch: `nn.Sigmoid()`.
public struct Sigmoid: ElementwiseLayer {
    public let width: Int
    public init(width: Int) { self.width = width }
    public var description: String { "Sigmoid" }
    public var torchModule: String { "nn.Sigmoid()" }
    public var spec: LayerSpec { .sigmoid }

    public func forward(_ b: LayerBuffers, mode: Mode, generator: inout RandomGenerator) {
        Kernels.sigmoid(b.input, into: b.output)
    }

    public func backward(_ b: LayerBuffers, outputGradient: MatrixRef, inputGradient: MatrixRef?, parameterGradients: GradientDestination) {
        guard let inputGradient else { return }
        Kernels.sigmoidBackward(output: b.output, outputGradient: outputGradient, into: inputGradient)
    }
}

import TensorCore

/// Rectified linear unit, `y = max(x, 0)` (Nair & Hinton, 2010). PyTorch: `nn.ReLU()`.
public struct ReLU: ElementwiseLayer {
    public let width: Int
    public init(width: Int) { self.width = width }
    public var description: String { "ReLU" }
    public var torchModule: String { "nn.ReLU()" }
    public var spec: LayerSpec { .relu }

    public func forward(_ b: LayerBuffers, mode: Mode, generator: inout RandomGenerator) {
        Kernels.relu(b.input, into: b.output)
    }

    public func backward(_ b: LayerBuffers, outputGradient: MatrixRef, inputGradient: MatrixRef?, parameterGradients: GradientDestination) {
        guard let inputGradient else { return }
        Kernels.reluBackward(output: b.output, outputGradient: outputGradient, into: inputGradient)
    }
}

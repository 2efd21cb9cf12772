import TensorCore

/// Whether a forward pass trains (dropout active) or evaluates (dropout is the identity).
public enum Mode: Sendable {
    case training, evaluation
}

/// The name and shape of one parameter tensor of a layer, e.g. `weight` (out, in).
public struct ParameterShape: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    public var count: Int { shape.reduce(1, *) }
}

/// The memory a layer works on during one forward/backward pair, owned by `Sequential` (training
/// and attacks) or by an `InferenceNetwork`'s leased scratch (inference).
public struct LayerBuffers {
    /// (batch, inputWidth)
    public let input: MatrixRef
    /// (batch, outputWidth)
    public let output: MatrixRef
    /// This layer's slice of the flat parameter buffer (layout given by `parameterShapes`); layers
    /// only read it.
    public let parameters: UnsafePointer<Float>
    /// (batch, scratchWidth): per-example state kept from forward to backward (e.g. a dropout mask).
    public let scratch: MatrixRef
    /// A dense layer's weights packed for products, while an attack keeps them constant
    /// (`Sequential.withPackedWeights`); nil otherwise.
    public let packedWeights: PackedDenseWeights?

    public init(input: MatrixRef, output: MatrixRef, parameters: UnsafePointer<Float>, scratch: MatrixRef,
                packedWeights: PackedDenseWeights? = nil) {
        self.input = input
        self.output = output
        self.parameters = parameters
        self.scratch = scratch
        self.packedWeights = packedWeights
    }
}

/// What `Sequential.backward` does with the parameter gradients.
public enum ParameterGradients: Sendable, Equatable {
    /// Not computed: attacks need only the input gradient.
    case skip
    /// Written over what the buffer holds: one backward pass per step needs no zeroing pass (the
    /// dW GEMM runs with β = 0), which saves a sweep over every gradient each step.
    case overwrite
    /// Added to what the buffer holds (gradient accumulation over several passes; zero first).
    case accumulate
}

/// Where one layer's `backward` puts ∂L/∂θ: nowhere, over the buffer, or added into it. The
/// pointer is the layer's slice of a flat gradient buffer, laid out as `parameterShapes` says.
public enum GradientDestination {
    case none
    case overwrite(UnsafeMutablePointer<Float>)
    case accumulate(UnsafeMutablePointer<Float>)
}

/// A layer is a forward/backward pair over batch-major matrices.
///
/// Conventions: `backward` overwrites the input gradient and, as `ParameterGradients` says, skips,
/// overwrites or adds into the parameter gradients. (llm.c always adds and zeroes in a separate
/// step; overwriting saves that memory sweep in the common one-pass step, and accumulation stays
/// available.)
public protocol Layer: Sendable, CustomStringConvertible {
    var inputWidth: Int { get }
    var outputWidth: Int { get }
    /// Parameter tensors in storage order; empty for parameter-free layers.
    var parameterShapes: [ParameterShape] { get }
    /// Floats per example kept from forward to backward.
    var scratchWidth: Int { get }
    /// The equivalent PyTorch module, e.g. `nn.Linear(784, 256)`.
    var torchModule: String { get }
    /// The serialisable description of this layer.
    var spec: LayerSpec { get }

    /// Fills this layer's parameters (seeded).
    func initialize(_ parameters: UnsafeMutableBufferPointer<Float>, scheme: InitializationScheme, using generator: inout RandomGenerator)
    /// `output = f(input)`.
    func forward(_ buffers: LayerBuffers, mode: Mode, generator: inout RandomGenerator)
    /// Given ∂L/∂output, writes ∂L/∂input (if `inputGradient` is given) and puts ∂L/∂parameters where
    /// `parameterGradients` says.
    func backward(_ buffers: LayerBuffers, outputGradient: MatrixRef, inputGradient: MatrixRef?, parameterGradients: GradientDestination)
    /// Adds each example's squared norm of ∂L/∂θ for this layer's parameters to `norms` (one entry
    /// per row), without forming per-example gradients (Goodfellow, 2015, "Efficient Per-Example
    /// Gradient Computations"). DP-SGD clips with it. Layers without parameters add nothing.
    func addPerExampleGradientNormsSquared(_ buffers: LayerBuffers, outputGradient: MatrixRef, into norms: UnsafeMutablePointer<Double>)
}

extension Layer {
    public var parameterShapes: [ParameterShape] { [] }
    public var scratchWidth: Int { 0 }
    public var parameterCount: Int { parameterShapes.reduce(0) { $0 + $1.count } }
    public func initialize(_ parameters: UnsafeMutableBufferPointer<Float>, scheme: InitializationScheme, using generator: inout RandomGenerator) {}
    public func addPerExampleGradientNormsSquared(_ buffers: LayerBuffers, outputGradient: MatrixRef, into norms: UnsafeMutablePointer<Double>) {
        precondition(parameterCount == 0, "\(description) has parameters but no per-example gradient norms")
    }
}

/// A parameter-free layer applying the same function to every element.
public protocol ElementwiseLayer: Layer {
    var width: Int { get }
}

extension ElementwiseLayer {
    public var inputWidth: Int { width }
    public var outputWidth: Int { width }
}

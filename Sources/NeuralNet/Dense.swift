import TensorCore

/// Fully connected layer, PyTorch's `nn.Linear`: `Y = X·Wᵀ + b`.
///
/// Parameters: `weight` (out, in), stored as PyTorch stores it, then `bias` (out).
/// ```
/// forward:  Y  = X·Wᵀ + 1·bᵀ                 (sgemm NoTrans × Trans, β = 1 after broadcasting b)
/// backward: dW (+)= dYᵀ·X,  db (+)= Σᵢ dY[i,:],  dX = dY·W     (+= when accumulating)
/// ```
public struct Dense: Layer {
    public let inputWidth: Int
    public let outputWidth: Int

    public init(inputWidth: Int, outputWidth: Int) {
        precondition(inputWidth > 0 && outputWidth > 0, "Dense widths must be positive, got \(inputWidth)→\(outputWidth)")
        self.inputWidth = inputWidth
        self.outputWidth = outputWidth
    }

    public var parameterShapes: [ParameterShape] {
        [ParameterShape(name: "weight", shape: [outputWidth, inputWidth]),
         ParameterShape(name: "bias", shape: [outputWidth])]
    }
    public var description: String { "Dense(\(inputWidth) → \(outputWidth))" }
    public var torchModule: String { "nn.Linear(\(inputWidth), \(outputWidth))" }
    public var spec: LayerSpec { .dense(outputWidth) }

    /// Views of a parameter (or gradient) slice. Parameters are only read through them.
    @inlinable func weight(_ p: UnsafePointer<Float>) -> MatrixRef {
        MatrixRef(UnsafeMutablePointer(mutating: p), rows: outputWidth, columns: inputWidth)  // (out, in)
    }
    @inlinable func bias(_ p: UnsafePointer<Float>) -> UnsafeMutablePointer<Float> {
        UnsafeMutablePointer(mutating: p) + outputWidth * inputWidth  // (out)
    }

    /// He (Kaiming) normal, std √(2/in), for ReLU-family networks (He et al., 2015); Xavier (Glorot)
    /// uniform, ±√(6/(in+out)), for tanh/sigmoid (Glorot & Bengio, 2010). Biases start at zero.
    public func initialize(_ parameters: UnsafeMutableBufferPointer<Float>, scheme: InitializationScheme, using generator: inout RandomGenerator) {
        let weights = outputWidth * inputWidth
        switch scheme {
        case .he:
            let std = (2 / Float(inputWidth)).squareRoot()
            for i in 0..<weights { parameters[i] = std * generator.nextGaussian() }
        case .xavier:
            let limit = (6 / Float(inputWidth + outputWidth)).squareRoot()
            for i in 0..<weights { parameters[i] = generator.nextFloat(in: -limit, limit) }
        }
        for i in weights..<(weights + outputWidth) { parameters[i] = 0 }
    }

    public func forward(_ b: LayerBuffers, mode: Mode, generator: inout RandomGenerator) {
        Kernels.broadcastRows(bias(b.parameters), into: b.output)
        if let packed = b.packedWeights {
            packed.forward.product(b.input, into: b.output, accumulate: true)
        } else {
            BLAS.gemm(b.input, .none, times: weight(b.parameters), .transposed, into: b.output, beta: 1)
        }
    }

    /// The weights in this layer's parameter slice, packed for the forward pass (Wᵀ) and the
    /// input gradient (W).
    public func packWeights(_ parameters: UnsafePointer<Float>) -> PackedDenseWeights {
        PackedDenseWeights(forward: PackedMatrix(weight(parameters), transposed: true),
                           inputGradient: PackedMatrix(weight(parameters), transposed: false))
    }

    public func backward(_ b: LayerBuffers, outputGradient dY: MatrixRef, inputGradient dX: MatrixRef?, parameterGradients: GradientDestination) {
        switch parameterGradients {
        case .none:
            break
        case .overwrite(let g):
            bias(g).update(repeating: 0, count: outputWidth)
            BLAS.gemm(dY, .transposed, times: b.input, .none, into: weight(g), beta: 0)
            Kernels.accumulateColumnSums(of: dY, into: bias(g))
        case .accumulate(let g):
            BLAS.gemm(dY, .transposed, times: b.input, .none, into: weight(g), beta: 1)
            Kernels.accumulateColumnSums(of: dY, into: bias(g))
        }
        if let dX {
            if let packed = b.packedWeights {
                packed.inputGradient.product(dY, into: dX)
            } else {
                BLAS.gemm(dY, .none, times: weight(b.parameters), .none, into: dX)
            }
        }
    }

    /// Example i's gradient is dY_iᵀ·X_i for the weight and dY_i for the bias, so its squared norm
    /// is ‖dY_i‖²·(‖X_i‖² + 1): two row norms instead of an (out × in) outer product.
    public func addPerExampleGradientNormsSquared(_ b: LayerBuffers, outputGradient dY: MatrixRef, into norms: UnsafeMutablePointer<Double>) {
        for i in 0..<dY.rows {
            let outputPart = Double(BLAS.dot(dY.row(i), dY.row(i), count: outputWidth))
            let inputPart = Double(BLAS.dot(b.input.row(i), b.input.row(i), count: inputWidth))
            norms[i] += outputPart * (inputPart + 1)
        }
    }
}

/// A dense layer's weights packed while they stay constant (`Sequential.withPackedWeights`):
/// Wᵀ (in, out) for the forward pass and W (out, in) for the input gradient.
public struct PackedDenseWeights: Sendable {
    public let forward: PackedMatrix
    public let inputGradient: PackedMatrix
}

/// How `Dense` weights are initialised.
public enum InitializationScheme: String, Sendable, Codable, CaseIterable {
    /// He/Kaiming normal (He et al., 2015, "Delving Deep into Rectifiers").
    case he
    /// Xavier/Glorot uniform (Glorot & Bengio, 2010).
    case xavier
}

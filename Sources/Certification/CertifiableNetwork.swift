import Foundation
import NeuralNet
import TensorCore

/// A feed-forward classifier as the certifiers see it: affine maps and element-wise activations in
/// Float64, dropout removed (it is the identity at inference). Weights are copied once, so bounds
/// never depend on later training of the source network.
public struct CertifiableNetwork: Sendable {
    /// An element-wise monotone activation.
    public enum Activation: Sendable, Equatable {
        case relu
        case leakyReLU(slope: Double)
        case tanh
        case sigmoid

        @inlinable public func callAsFunction(_ x: Double) -> Double {
            switch self {
            case .relu: return max(x, 0)
            case .leakyReLU(let slope): return x >= 0 ? x : slope * x
            case .tanh: return Foundation.tanh(x)
            case .sigmoid: return 1 / (1 + exp(-x))
            }
        }

        /// The best Lipschitz constant: 1, except the sigmoid's ¼.
        public var lipschitzConstant: Double { self == .sigmoid ? 0.25 : 1 }

        /// Whether CROWN's linear relaxation here is the piecewise-linear one Bulwark implements.
        public var isPiecewiseLinear: Bool {
            switch self {
            case .relu, .leakyReLU: return true
            case .tanh, .sigmoid: return false
            }
        }

        public var name: String {
            switch self {
            case .relu: return "relu"
            case .leakyReLU: return "leaky_relu"
            case .tanh: return "tanh"
            case .sigmoid: return "sigmoid"
            }
        }
    }

    /// y = W x + b with W stored (out × in), row-major, as in the model file.
    public struct AffineLayer: Sendable {
        public let inputWidth: Int
        public let outputWidth: Int
        public let weight: [Double]
        public let bias: [Double]
        /// |W| element-wise, for interval propagation.
        public let absoluteWeight: [Double]
        /// W in Float32 (exact: the model's weights are Float32), for CROWN's reduced-precision products.
        public let weight32: [Float]
        /// ‖W_i‖₂ of each row i, for an L2 input ball.
        public let rowNorms: [Double]

        public init(inputWidth: Int, outputWidth: Int, weight: [Double], bias: [Double]) {
            precondition(weight.count == inputWidth * outputWidth && bias.count == outputWidth)
            self.inputWidth = inputWidth
            self.outputWidth = outputWidth
            self.weight = weight
            self.bias = bias
            absoluteWeight = weight.map(abs)
            weight32 = weight.map(Float.init)
            rowNorms = (0..<outputWidth).map { i in
                var sum = 0.0
                for j in 0..<inputWidth { sum += weight[i * inputWidth + j] * weight[i * inputWidth + j] }
                return sum.squareRoot()
            }
        }
    }

    public enum Operation: Sendable, Equatable {
        /// An index into `affineLayers`.
        case affine(Int)
        case activation(Activation)
    }

    public let inputWidth: Int
    public let classCount: Int
    public let affineLayers: [AffineLayer]
    /// In order; the last is the affine layer that gives the logits.
    public let operations: [Operation]

    public init(inputWidth: Int, affineLayers: [AffineLayer], operations: [Operation]) {
        guard case .affine(let last)? = operations.last else { preconditionFailure("the last operation must be affine") }
        self.inputWidth = inputWidth
        self.affineLayers = affineLayers
        self.operations = operations
        classCount = affineLayers[last].outputWidth
    }

    /// The network's current weights, in Float64.
    public init(_ network: Sequential) {
        var affine: [AffineLayer] = []
        var operations: [Operation] = []
        var width = network.inputWidth
        let parameters = network.parameters.buffer
        do {
            for (layer, range) in zip(network.spec.layers, network.parameterRanges) {
                switch layer {
                case .dense(let out):
                    let slice = parameters[range]
                    let weightCount = out * width
                    let values = slice.map(Double.init)
                    affine.append(AffineLayer(inputWidth: width, outputWidth: out, weight: Array(values[0..<weightCount]),
                                              bias: Array(values[weightCount...])))
                    operations.append(.affine(affine.count - 1))
                    width = out
                case .relu: operations.append(.activation(.relu))
                case .leakyReLU(let slope): operations.append(.activation(.leakyReLU(slope: Double(slope))))
                case .tanh: operations.append(.activation(.tanh))
                case .sigmoid: operations.append(.activation(.sigmoid))
                case .dropout: break
                }
            }
        }
        self.init(inputWidth: network.inputWidth, affineLayers: affine, operations: operations)
    }

    /// The widest tensor anywhere in the network (input included).
    public var maximumWidth: Int { affineLayers.reduce(inputWidth) { max($0, $1.outputWidth) } }

    /// The activations that CROWN cannot relax, by name (empty if it can certify the network).
    public var activationsCROWNCannotRelax: [String] {
        var names: [String] = []
        for case .activation(let activation) in operations where !activation.isPiecewiseLinear && !names.contains(activation.name) {
            names.append(activation.name)
        }
        return names
    }

    /// Logits of `rows` inputs (rows × inputWidth, row-major) in Float64: the points the bounds are about.
    public func logits(_ inputs: [Double], rows: Int) -> [Double] {
        var current = inputs
        var width = inputWidth
        for operation in operations {
            switch operation {
            case .affine(let index):
                let layer = affineLayers[index]
                var next = [Double](repeating: 0, count: rows * layer.outputWidth)
                for r in 0..<rows {
                    for i in 0..<layer.outputWidth { next[r * layer.outputWidth + i] = layer.bias[i] }
                }
                dgemm(current, rows: rows, inner: width, layer.weight, columns: layer.outputWidth, transposeB: true, into: &next, beta: 1)
                current = next
                width = layer.outputWidth
            case .activation(let activation):
                for j in current.indices { current[j] = activation(current[j]) }
            }
        }
        return current
    }
}

import CBLAS
import Foundation
import NeuralNet
import TensorCore

/// A Float64 copy of a ReLU MLP (`Dense` and `ReLU` layers), with Float64 BLAS: the reference that
/// Float32 attack directions are tested against (cancellation and saturation in Float32 silently
/// weaken attacks; a Float64 pass of the same weights shows by how much).
public struct Float64ReferenceMLP {
    /// Per dense layer: weight (out, in) row-major, bias (out), and whether a ReLU follows.
    public let layers: [(weight: [Double], bias: [Double], inputs: Int, outputs: Int, relu: Bool)]

    /// - Returns: nil if the network has layers other than `Dense` and `ReLU`.
    public init?(_ network: Sequential) {
        var layers: [(weight: [Double], bias: [Double], inputs: Int, outputs: Int, relu: Bool)] = []
        for (index, layer) in network.layers.enumerated() {
            if let dense = layer as? Dense {
                let range = network.parameterRanges[index]
                let values = (range.lowerBound..<range.upperBound).map { Double(network.parameters.pointer[$0]) }
                let weights = dense.inputWidth * dense.outputWidth
                layers.append((Array(values[0..<weights]), Array(values[weights...]), dense.inputWidth, dense.outputWidth, false))
            } else if layer is ReLU, !layers.isEmpty {
                layers[layers.count - 1].relu = true
            } else {
                return nil
            }
        }
        self.layers = layers
    }

    /// The logits of one input, and each layer's pre-activations (for the backward pass).
    public func forward(_ x: [Double]) -> (logits: [Double], preActivations: [[Double]]) {
        var activation = x
        var pre: [[Double]] = []
        for layer in layers {
            var z = layer.bias
            cblas_dgemv(CblasRowMajor, CblasNoTrans, Int32(layer.outputs), Int32(layer.inputs), 1, layer.weight,
                        Int32(layer.inputs), activation, 1, 1, &z, 1)
            pre.append(z)
            activation = layer.relu ? z.map { max($0, 0) } : z
        }
        return (activation, pre)
    }

    /// ∂CE(z, label)/∂x for one input, computed in Float64 with the label term as −Σ_{j≠y} p_j.
    public func crossEntropyInputGradient(_ x: [Double], label: Int) -> [Double] {
        let (logits, pre) = forward(x)
        let m = logits.max()!
        let lse = m + Foundation.log(logits.reduce(0) { $0 + Foundation.exp($1 - m) })
        var gradient = logits.map { Foundation.exp($0 - lse) }
        gradient[label] = -gradient.enumerated().filter { $0.offset != label }.reduce(0) { $0 + $1.element }
        for l in stride(from: layers.count - 1, through: 0, by: -1) {
            let layer = layers[l]
            if layer.relu { for o in 0..<layer.outputs where pre[l][o] <= 0 { gradient[o] = 0 } }
            var input = [Double](repeating: 0, count: layer.inputs)
            cblas_dgemv(CblasRowMajor, CblasTrans, Int32(layer.outputs), Int32(layer.inputs), 1, layer.weight,
                        Int32(layer.inputs), gradient, 1, 0, &input, 1)
            gradient = input
        }
        return gradient
    }

    /// The predicted class of one input.
    public func prediction(_ x: [Double]) -> Int {
        let logits = forward(x).logits
        return logits.indices.max { logits[$0] < logits[$1] }!
    }
}

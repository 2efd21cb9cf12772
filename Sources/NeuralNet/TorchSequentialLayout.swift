/// The architecture of a `torch.nn.Sequential` of `Linear` layers, inferred from the tensor names
/// and shapes of its state dict (a safetensors file written by PyTorch, without Bulwark metadata).
///
/// ```
/// torch.nn.Sequential(Linear(784, 256), ReLU(), Linear(256, 10))  →  keys 0.weight (256, 784), 0.bias,
///                                                                     2.weight (10, 256), 2.bias
/// ```
/// Linear layers sit at the indices that hold a `weight`; a gap of one index between two of them is
/// one parameter-free module (the activation, which the file cannot name), no gap means none.
/// Anything else (other key names, wider gaps, a leading module, a non-matrix weight) is refused
/// with the reason. A missing `bias` (`Linear(bias=False)`) is a zero bias.
public struct TorchSequentialLayout: CustomStringConvertible {
    /// (index in the Sequential, in, out) of each Linear layer, in order.
    public let linears: [(index: Int, input: Int, output: Int)]
    /// `N.bias` keys that the file lacks.
    public let missingBiases: Set<String>

    /// - Throws: `NeuralNetError.invalidModelFile` naming the first thing that does not fit.
    public init(_ file: SafeTensors) throws {
        func fail(_ problem: String) -> NeuralNetError { .invalidModelFile(path: file.source, problem: problem) }
        var weights: [Int: [Int]] = [:], biases: [Int: [Int]] = [:]
        for (key, entry) in file.entries {
            let parts = key.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, let index = Int(parts[0]), index >= 0, index < ModelSpec.maximumDepth,
                  parts[1] == "weight" || parts[1] == "bias"
            else {
                throw fail("it has no Bulwark metadata and its tensor '\(key)' is not a key of a torch.nn.Sequential of "
                    + "Linear layers (N.weight, N.bias); save the Sequential itself, or convert the model to one")
            }
            if parts[1] == "weight" { weights[index] = entry.shape } else { biases[index] = entry.shape }
        }
        guard !weights.isEmpty else { throw fail("it has no Bulwark metadata and no N.weight tensors") }
        var linears: [(Int, Int, Int)] = []
        var missing: Set<String> = []
        for index in weights.keys.sorted() {
            let shape = weights[index]!
            guard shape.count == 2, shape[0] > 0, shape[1] > 0 else {
                throw fail("tensor '\(index).weight' has shape \(shape); a Linear weight is (out, in)")
            }
            if let bias = biases[index] {
                guard bias == [shape[0]] else { throw fail("tensor '\(index).bias' has shape \(bias), expected [\(shape[0])]") }
            } else {
                missing.insert("\(index).bias")
            }
            if let previous = linears.last {
                guard index - previous.0 <= 2 else {
                    throw fail("there are \(index - previous.0 - 1) modules between the Linear layers \(previous.0) and \(index); "
                        + "only one activation (or none) between Linear layers can be inferred")
                }
                guard shape[1] == previous.2 else {
                    throw fail("tensor '\(index).weight' takes \(shape[1]) inputs but layer \(previous.0) gives \(previous.2)")
                }
            } else if index != 0 {
                throw fail("the first Linear layer is at index \(index); modules before it cannot be inferred")
            }
            linears.append((index, shape[1], shape[0]))
        }
        if let orphan = biases.keys.sorted().first(where: { weights[$0] == nil }) {
            throw fail("tensor '\(orphan).bias' has no '\(orphan).weight'")
        }
        self.linears = linears
        missingBiases = missing
    }

    /// Number of hidden activations (Linear layers followed by one parameter-free module).
    public var activationSlots: Int { zip(linears, linears.dropFirst()).filter { $1.index - $0.index == 2 }.count }

    public var description: String {
        "\(linears.count) Linear layers (" + ([linears[0].input] + linears.map(\.output)).map(String.init).joined(separator: "→") + ")"
    }

    /// The spec with `activations` in the hidden slots: one activation for all slots, or one per slot.
    /// - Throws: `NeuralNetError.invalidModelSpec` if the count does not fit or the spec is invalid.
    public func spec(hiddenActivations activations: [Activation]) throws -> ModelSpec {
        let slots = activationSlots
        guard activations.count == 1 || activations.count == slots else {
            throw NeuralNetError.invalidModelSpec("the file has \(slots) activation slots between its Linear layers, "
                + "but \(activations.count) activations were given; give one for all or one per slot")
        }
        var layers: [LayerSpec] = []
        var slot = 0
        for (position, linear) in linears.enumerated() {
            layers.append(.dense(linear.output))
            if position + 1 < linears.count, linears[position + 1].index - linear.index == 2 {
                layers.append(activations[activations.count == 1 ? 0 : slot].layer)
                slot += 1
            }
        }
        return try ModelSpec(inputWidth: linears[0].input, layers: layers)
    }
}

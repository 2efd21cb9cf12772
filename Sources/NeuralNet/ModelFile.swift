import Foundation
import TensorCore
import _FileSystem

/// Bulwark model files: safetensors holding a `Sequential`'s parameters under PyTorch
/// `nn.Sequential` state-dict keys (`0.weight` (out, in), `0.bias`, `2.weight`, …), so
/// ```python
/// model = torch.nn.Sequential(...)            # the `torch` metadata entry spells it out
/// model.load_state_dict(safetensors.torch.load_file(path))
/// ```
/// works unchanged. `__metadata__` carries the architecture (JSON layer list), the seed and the
/// training recipe.
///
/// Files written by PyTorch itself (`safetensors.torch.save_file(model.state_dict(), path)` of a
/// `torch.nn.Sequential` of `Linear` layers) have no architecture entry; they load when the caller
/// names the hidden activations, which the file cannot record (`TorchSequentialLayout`).
///
/// Loading checks the declared architecture against the tensors actually in the file (keys,
/// shapes, dtypes) and the size bounds of `ModelSpec` before it allocates the network.
public enum ModelFile {
    public static let format = "bulwark-model/1"

    /// A network read back from a file with its metadata.
    public struct Loaded {
        public let network: Sequential
        public let metadata: [String: String]
        /// True if the architecture was inferred from a PyTorch file's tensor names and shapes.
        public let inferredArchitecture: Bool
    }

    /// The metadata every model file carries, merged with `extra` (recipe, metrics, …).
    public static func metadata(for network: Sequential, extra: [String: String] = [:]) -> [String: String] {
        var metadata = extra
        metadata["format"] = format
        metadata["architecture"] = network.spec.json
        metadata["spec"] = network.spec.shorthand
        metadata["torch"] = network.spec.torchSequential
        return metadata
    }

    /// The parameters as named safetensors values.
    static func parameterTensors(of network: Sequential) -> [(name: String, value: SafeTensors.Value)] {
        network.namedParameters.map { key, shape, range in
            (key, .float32(shape: shape, values: Array(network.parameters.buffer[range])))
        }
    }

    public static func serialize(_ network: Sequential, metadata extra: [String: String] = [:]) throws -> [UInt8] {
        try SafeTensors.serialize(parameterTensors(of: network), metadata: metadata(for: network, extra: extra))
    }

    /// Writes the model atomically (temporary file, fsync, rename).
    public static func save(_ network: Sequential, metadata extra: [String: String] = [:], to path: String) throws {
        try AtomicFile.write(serialize(network, metadata: extra), to: path)
    }

    /// - Parameter hiddenActivations: for files without Bulwark metadata (written by PyTorch), the
    ///   activation after each hidden `Linear` layer: one for all, or one per hidden layer.
    public static func load(contentsOf path: String, loader: any FileLoading = PlainFileLoader(),
                            hiddenActivations: [Activation]? = nil) throws -> Loaded {
        try load(SafeTensors(contentsOf: path, limit: 1 << 31, loader: loader), hiddenActivations: hiddenActivations)
    }

    /// Rebuilds the network from a parsed file.
    /// - Throws: `NeuralNetError.invalidModelFile` if the architecture is missing or invalid, a key is
    ///   missing or unexpected, a shape differs, or a parameter is not finite.
    public static func load(_ file: SafeTensors, hiddenActivations: [Activation]? = nil) throws -> Loaded {
        func fail(_ problem: String) -> NeuralNetError { .invalidModelFile(path: file.source, problem: problem) }
        let spec: ModelSpec
        var missingBiases: Set<String> = []
        let inferred: Bool
        if let architecture = file.metadata["architecture"] {
            do { spec = try ModelSpec.parse(architecture) } catch { throw fail("its architecture entry is invalid: \(error)") }
            inferred = false
        } else {
            let layout = try TorchSequentialLayout(file)
            guard let hiddenActivations else {
                throw fail("its __metadata__ has no 'architecture' entry. Its tensors look like a torch.nn.Sequential of "
                    + "\(layout.description), but a file cannot record the activations between the Linear layers: "
                    + "name them with --activation (relu, leaky-relu, tanh, sigmoid; one for all, or one per hidden layer "
                    + "separated by commas), or convert the file once with `bulwark import`")
            }
            spec = try layout.spec(hiddenActivations: hiddenActivations)
            missingBiases = layout.missingBiases
            inferred = true
        }
        try checkTensors(of: file, against: spec, missingBiases: missingBiases)
        let network = Sequential(spec: spec)
        try fillParameters(of: network, from: file, missingBiases: missingBiases)
        return Loaded(network: network, metadata: file.metadata, inferredArchitecture: inferred)
    }

    /// Checks keys, shapes and dtypes of the file against the spec before the network is allocated,
    /// so a small file declaring a huge architecture is refused without allocating anything.
    static func checkTensors(of file: SafeTensors, against spec: ModelSpec, missingBiases: Set<String> = [],
                             ignoringKeysWithPrefix otherPrefix: String? = nil) throws {
        func fail(_ problem: String) -> NeuralNetError { .invalidModelFile(path: file.source, problem: problem) }
        let layers = spec.makeLayers()
        let expected = spec.namedParameters(of: layers, ranges: spec.parameterRanges(of: layers))
        let expectedKeys = Set(expected.map(\.key))
        let unexpected = file.entries.keys.filter { key in
            !expectedKeys.contains(key) && !(otherPrefix.map { key.hasPrefix($0) } ?? false)
        }
        if let unexpected = unexpected.sorted().first {
            throw fail("it holds tensor '\(unexpected)', which the architecture \(spec.shorthand) has no place for")
        }
        for (key, shape, _) in expected where !missingBiases.contains(key) {
            guard let entry = file.entries[key] else {
                throw fail("tensor '\(key)' is missing (expected shape \(shape); the architecture \(spec.shorthand) "
                    + "declares \(spec.parameterCount) parameters)")
            }
            guard entry.shape == shape else {
                throw fail("tensor '\(key)' has shape \(entry.shape), the architecture needs \(shape)")
            }
        }
    }

    /// Copies the parameter tensors into `network`, checking keys, shapes and values. Keys starting
    /// with `otherPrefix` (a checkpoint's optimizer state) are left for the caller; `missingBiases`
    /// (a PyTorch `Linear(bias=False)`) are zero.
    static func fillParameters(of network: Sequential, from file: SafeTensors, ignoringKeysWithPrefix otherPrefix: String? = nil,
                               missingBiases: Set<String> = []) throws {
        func fail(_ problem: String) -> NeuralNetError { .invalidModelFile(path: file.source, problem: problem) }
        try checkTensors(of: file, against: network.spec, missingBiases: missingBiases, ignoringKeysWithPrefix: otherPrefix)
        for (key, shape, range) in network.namedParameters {
            if missingBiases.contains(key) {
                (network.parameters.pointer + range.lowerBound).update(repeating: 0, count: range.count)
                continue
            }
            let tensor: Tensor
            do { tensor = try file.floatTensorConverting(key) } catch { throw fail("\(error)") }
            guard tensor.shape == shape else {
                throw fail("tensor '\(key)' has shape \(tensor.shape), the architecture needs \(shape)")
            }
            guard tensor.scalars.allSatisfy(\.isFinite) else {
                throw fail("tensor '\(key)' contains NaN or infinite values (or values too large for Float32)")
            }
            tensor.scalars.withUnsafeBufferPointer { source in
                (network.parameters.pointer + range.lowerBound).update(from: source.baseAddress!, count: range.count)
            }
        }
    }
}

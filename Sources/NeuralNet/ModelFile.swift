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
public enum ModelFile {
    public static let format = "bulwark-model/1"

    /// A network read back from a file with its metadata.
    public struct Loaded {
        public let network: Sequential
        public let metadata: [String: String]
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

    public static func load(contentsOf path: String, loader: any FileLoading = PlainFileLoader()) throws -> Loaded {
        try load(SafeTensors(contentsOf: path, limit: 1 << 31, loader: loader))
    }

    /// Rebuilds the network from a parsed file.
    /// - Throws: `NeuralNetError.invalidModelFile` if the architecture is missing or invalid, a key is
    ///   missing or unexpected, a shape differs, or a parameter is not finite.
    public static func load(_ file: SafeTensors) throws -> Loaded {
        func fail(_ problem: String) -> NeuralNetError { .invalidModelFile(path: file.source, problem: problem) }
        guard let architecture = file.metadata["architecture"] else {
            throw fail("its __metadata__ has no 'architecture' entry (the JSON layer list Bulwark needs to rebuild the network); save models with `bulwark train`")
        }
        let spec: ModelSpec
        do { spec = try ModelSpec.parse(architecture) } catch { throw fail("its architecture entry is invalid: \(error)") }
        let network = Sequential(spec: spec)
        try fillParameters(of: network, from: file)
        return Loaded(network: network, metadata: file.metadata)
    }

    /// Copies the parameter tensors into `network`, checking keys, shapes and values. Keys starting
    /// with `otherPrefix` (a checkpoint's optimizer state) are left for the caller.
    static func fillParameters(of network: Sequential, from file: SafeTensors, ignoringKeysWithPrefix otherPrefix: String? = nil) throws {
        func fail(_ problem: String) -> NeuralNetError { .invalidModelFile(path: file.source, problem: problem) }
        let expected = network.namedParameters
        let expectedKeys = Set(expected.map(\.key))
        let unexpected = file.entries.keys.filter { key in
            !expectedKeys.contains(key) && !(otherPrefix.map { key.hasPrefix($0) } ?? false)
        }
        if let unexpected = unexpected.sorted().first {
            throw fail("it holds tensor '\(unexpected)', which the architecture \(network.spec.shorthand) has no place for")
        }
        for (key, shape, range) in expected {
            guard file.entries[key] != nil else {
                throw fail("tensor '\(key)' is missing (expected shape \(shape))")
            }
            let tensor: Tensor
            do { tensor = try file.floatTensor(key) } catch { throw fail("\(error)") }
            guard tensor.shape == shape else {
                throw fail("tensor '\(key)' has shape \(tensor.shape), the architecture needs \(shape)")
            }
            guard tensor.scalars.allSatisfy(\.isFinite) else {
                throw fail("tensor '\(key)' contains NaN or infinite values")
            }
            tensor.scalars.withUnsafeBufferPointer { source in
                (network.parameters.pointer + range.lowerBound).update(from: source.baseAddress!, count: range.count)
            }
        }
    }
}

import Foundation
import _FileSystem

/// One layer of a model description, without its input width (that follows from the layer before).
public enum LayerSpec: Equatable, Sendable {
    case dense(Int)
    case relu
    case leakyReLU(slope: Float)
    case tanh
    case sigmoid
    case dropout(probability: Float)
}

/// Hidden-layer activation for the `784-256-256-10` shorthand.
public enum Activation: String, Sendable, CaseIterable, Codable {
    case relu, leakyrelu = "leaky-relu", tanh, sigmoid

    var layer: LayerSpec {
        switch self {
        case .relu: return .relu
        case .leakyrelu: return .leakyReLU(slope: 0.01)
        case .tanh: return .tanh
        case .sigmoid: return .sigmoid
        }
    }

    /// The initialisation suited to this activation: He for the ReLU family, Xavier otherwise.
    public var defaultInitialization: InitializationScheme {
        switch self {
        case .relu, .leakyrelu: return .he
        case .tanh, .sigmoid: return .xavier
        }
    }
}

/// A feed-forward classifier architecture: an input width and a list of layers ending in a dense
/// layer that produces the logits.
///
/// Two notations:
/// - shorthand `784-256-256-10`: dense layers with the hidden activation (ReLU by default) between them;
/// - a JSON layer list: `[{"type":"dense","in":784,"out":256},{"type":"relu"},{"type":"dropout","p":0.2},
///   {"type":"dense","out":10}]` with types dense, relu, leaky_relu (`slope`), tanh, sigmoid, dropout (`p`).
///
/// Size bounds, checked before anything is allocated (a hostile file or a typo must not make
/// Bulwark try to allocate terabytes): widths up to 2²⁰, at most 1,024 layers, at most 2²⁸
/// parameters (1 GiB of Float32) and at most 2¹⁸ activations per example (a batch of 500 then
/// needs at most 512 MiB of activations).
public struct ModelSpec: Equatable, Sendable {
    public static let maximumWidth = 1 << 20
    public static let maximumDepth = 1024
    public static let maximumParameters = 1 << 28
    public static let maximumActivationsPerExample = 1 << 18
    /// Largest working memory of one shard (activations, scratch and gradient buffers), in floats:
    /// 2³⁰ floats = 4 GiB.
    public static let maximumWorkspaceFloats = 1 << 30

    public let inputWidth: Int
    public let layers: [LayerSpec]
    /// Number of parameters (weights and biases).
    public let parameterCount: Int

    /// - Throws: `NeuralNetError.invalidModelSpec` if the architecture is not a valid classifier or
    ///   exceeds the size bounds.
    public init(inputWidth: Int, layers: [LayerSpec]) throws {
        guard inputWidth > 0, inputWidth <= Self.maximumWidth else {
            throw NeuralNetError.invalidModelSpec("input width \(inputWidth) must be between 1 and \(Self.maximumWidth)")
        }
        guard layers.count <= Self.maximumDepth else {
            throw NeuralNetError.invalidModelSpec("\(layers.count) layers exceed the limit of \(Self.maximumDepth)")
        }
        guard case .dense = layers.first else {
            throw NeuralNetError.invalidModelSpec("the first layer must be dense")
        }
        guard case .dense(let classes) = layers.last else {
            throw NeuralNetError.invalidModelSpec("the last layer must be dense (it produces the logits)")
        }
        guard classes >= 2 else {
            throw NeuralNetError.invalidModelSpec("the output layer needs at least 2 classes, got \(classes)")
        }
        for layer in layers {
            switch layer {
            case .dense(let width) where width < 1 || width > Self.maximumWidth:
                throw NeuralNetError.invalidModelSpec("dense width \(width) must be between 1 and \(Self.maximumWidth)")
            case .leakyReLU(let slope) where !(slope > 0 && slope < 1):
                throw NeuralNetError.invalidModelSpec("leaky_relu slope \(slope) must be in (0, 1)")
            case .dropout(let p) where !(p >= 0 && p < 1):
                throw NeuralNetError.invalidModelSpec("dropout p \(p) must be in [0, 1)")
            default: break
            }
        }
        // Sizes in Int with overflow checks: a declared architecture can be absurd.
        var parameters = 0, activations = 0, width = inputWidth
        for layer in layers {
            if case .dense(let out) = layer {
                let (weights, o1) = width.multipliedReportingOverflow(by: out)
                let (layerTotal, o2) = weights.addingReportingOverflow(out)
                let (total, o3) = parameters.addingReportingOverflow(layerTotal)
                guard !o1, !o2, !o3, total <= Self.maximumParameters else {
                    throw NeuralNetError.invalidModelSpec("the architecture has more than \(Self.maximumParameters) parameters "
                        + "(the limit, 1 GiB of Float32); the dense layer \(width)→\(out) alone has \(o1 || o2 ? "too many" : String(layerTotal))")
                }
                parameters = total
                width = out
            }
            activations += width
            guard activations <= Self.maximumActivationsPerExample else {
                throw NeuralNetError.invalidModelSpec("the layers hold more than \(Self.maximumActivationsPerExample) activations per example (the limit)")
            }
        }
        self.inputWidth = inputWidth
        self.layers = layers
        parameterCount = parameters
    }

    /// Parses the shorthand (`784-256-256-10`) or a JSON layer list.
    /// - Parameters:
    ///   - activation: hidden activation for the shorthand.
    ///   - dropout: if given, a dropout layer with this probability after each hidden activation.
    public static func parse(_ text: String, activation: Activation = .relu, dropout: Float? = nil) throws -> ModelSpec {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("[") { return try parseJSON(trimmed) }
        let parts = trimmed.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count <= maximumDepth else {
            throw NeuralNetError.invalidModelSpec("'\(text.prefix(40))…' lists more than \(maximumDepth) widths")
        }
        let widths = parts.compactMap { Int($0) }
        guard parts.count >= 2, widths.count == parts.count else {
            throw NeuralNetError.invalidModelSpec("'\(text)' is neither a dash-separated list of at least two widths nor a JSON list")
        }
        var layers: [LayerSpec] = []
        for (index, width) in widths.dropFirst().enumerated() {
            layers.append(.dense(width))
            if index < widths.count - 2 {
                layers.append(activation.layer)
                if let dropout { layers.append(.dropout(probability: dropout)) }
            }
        }
        return try ModelSpec(inputWidth: widths[0], layers: layers)
    }

    private struct LayerJSON: Codable {
        var type: String
        var `in`: Int?
        var out: Int?
        var slope: Float?
        var p: Float?
    }

    static func parseJSON(_ text: String) throws -> ModelSpec {
        guard text.utf8.count <= 1 << 20 else {
            throw NeuralNetError.invalidModelSpec("the JSON layer list is longer than 1 MiB")
        }
        let entries: [LayerJSON]
        do {
            entries = try StrictJSON.decode([LayerJSON].self, from: Array(text.utf8), integerKeys: ["in", "out"])
        } catch {
            throw NeuralNetError.invalidModelSpec("the JSON layer list does not parse (\(decodingErrorText(error)))")
        }
        guard entries.count <= maximumDepth else {
            throw NeuralNetError.invalidModelSpec("the JSON layer list has \(entries.count) layers, more than the limit of \(maximumDepth)")
        }
        guard let first = entries.first, first.type == "dense", let inputWidth = first.in else {
            throw NeuralNetError.invalidModelSpec(#"the JSON list must start with {"type":"dense","in":N,"out":M}"#)
        }
        var layers: [LayerSpec] = []
        var width = inputWidth
        for (index, entry) in entries.enumerated() {
            switch entry.type {
            case "dense":
                guard let out = entry.out else {
                    throw NeuralNetError.invalidModelSpec("layer \(index) (dense) has no \"out\"")
                }
                if let declared = entry.in, declared != width {
                    throw NeuralNetError.invalidModelSpec("layer \(index) (dense) declares in=\(declared) but receives \(width) features")
                }
                layers.append(.dense(out))
                width = out
            case "relu": layers.append(.relu)
            case "leaky_relu": layers.append(.leakyReLU(slope: entry.slope ?? 0.01))
            case "tanh": layers.append(.tanh)
            case "sigmoid": layers.append(.sigmoid)
            case "dropout": layers.append(.dropout(probability: entry.p ?? 0.5))
            default:
                throw NeuralNetError.invalidModelSpec("layer \(index) has unknown type '\(entry.type)' (known: dense, relu, leaky_relu, tanh, sigmoid, dropout)")
            }
        }
        return try ModelSpec(inputWidth: inputWidth, layers: layers)
    }

    /// The canonical JSON layer list (every dense layer with explicit `in` and `out`).
    public var json: String {
        var width = inputWidth
        let entries: [String] = layers.map { layer in
            switch layer {
            case .dense(let out):
                defer { width = out }
                return #"{"type":"dense","in":\#(width),"out":\#(out)}"#
            case .relu: return #"{"type":"relu"}"#
            case .leakyReLU(let slope): return #"{"type":"leaky_relu","slope":\#(slope)}"#
            case .tanh: return #"{"type":"tanh"}"#
            case .sigmoid: return #"{"type":"sigmoid"}"#
            case .dropout(let p): return #"{"type":"dropout","p":\#(p)}"#
            }
        }
        return "[" + entries.joined(separator: ",") + "]"
    }

    /// Widths of the dense layers, e.g. `784-256-256-10`.
    public var shorthand: String {
        ([inputWidth] + layers.compactMap { if case .dense(let w) = $0 { return w } else { return nil } })
            .map(String.init).joined(separator: "-")
    }

    public var classCount: Int {
        guard case .dense(let classes) = layers.last else { preconditionFailure("validated at init") }
        return classes
    }

    /// The hidden activation used in this spec (the first one found), for choosing initialisation.
    public var defaultInitialization: InitializationScheme {
        for layer in layers {
            switch layer {
            case .relu, .leakyReLU: return .he
            case .tanh, .sigmoid: return .xavier
            default: continue
            }
        }
        return .he
    }

    /// Floats a shard of `rows` examples needs for its activations, per-layer scratch and the two
    /// ping-pong gradient buffers (what `Sequential.reserve` allocates per shard).
    public func workspaceFloats(rows: Int) -> Int {
        let layers = makeLayers()
        let perExample = layers.reduce(0) { $0 + $1.outputWidth + $1.scratchWidth }
            + 2 * layers.reduce(0) { max($0, $1.inputWidth, $1.outputWidth) }
        let (total, overflow) = perExample.multipliedReportingOverflow(by: rows)
        return overflow ? .max : total
    }

    /// Checks that shards of `rows` examples fit the working-memory bound.
    /// - Throws: `NeuralNetError.invalidModelSpec` naming the batch that is too large.
    public func checkWorkspace(rows: Int, what: String) throws {
        let floats = workspaceFloats(rows: rows)
        guard floats <= Self.maximumWorkspaceFloats else {
            let largest = Self.maximumWorkspaceFloats / max(1, workspaceFloats(rows: 1))
            throw NeuralNetError.invalidModelSpec("\(what) of \(rows) rows per shard would need \(floats / (1 << 28)) GiB of working memory "
                + "for \(shorthand) (the limit is 4 GiB); use at most \(largest) rows per shard")
        }
    }

    /// Concrete layers with their widths.
    public func makeLayers() -> [any Layer] {
        var width = inputWidth
        return layers.map { spec -> any Layer in
            switch spec {
            case .dense(let out):
                defer { width = out }
                return Dense(inputWidth: width, outputWidth: out)
            case .relu: return ReLU(width: width)
            case .leakyReLU(let slope): return LeakyReLU(width: width, slope: slope)
            case .tanh: return Tanh(width: width)
            case .sigmoid: return Sigmoid(width: width)
            case .dropout(let p): return Dropout(width: width, probability: p)
            }
        }
    }

    /// The PyTorch `nn.Sequential` that holds the same parameters under the same keys.
    public var torchSequential: String {
        "nn.Sequential(" + makeLayers().map(\.torchModule).joined(separator: ", ") + ")"
    }
}

/// A model spec is written as text: the shorthand (`"784-256-256-10"`, ReLU between dense layers)
/// or a JSON layer list (as a string). It is encoded as the canonical JSON layer list.
extension ModelSpec: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try ModelSpec.parse(text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(error)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(json)
    }
}

import ArgumentParser
import Foundation
import NeuralNet
import BulwarkSecurity
import _FileSystem

/// `bulwark inspect MODEL`: architecture, parameter count, metadata and SHA-256 of a model file.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a model file's architecture, parameter count, metadata and SHA-256.",
        discussion: """
        Metadata entries that hold JSON (the recipe, the training history) appear as nested JSON with --json.

        Examples:
          bulwark inspect models/mlp-pgd.safetensors
          bulwark inspect models/mlp-pgd.safetensors --json | jq .metadata.recipe.objective
        """
    )

    @Argument(help: "Model file (.safetensors).")
    var model: String

    @Flag(help: "Print one JSON object on stdout.")
    var json = false

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Security") var security: SecurityOptions

    struct Report: Encodable {
        let path: String
        let sha256: String
        let bytes: Int
        let architecture: String
        let layers: [String]
        let parameters: Int
        let torch: String
        let inferredArchitecture: Bool
        let metadata: [String: JSONValue]

        enum CodingKeys: String, CodingKey {
            case path, sha256, bytes, architecture, layers, parameters, torch, metadata
            case inferredArchitecture = "inferred_architecture"
        }
    }

    func run() throws {
        let loader = try security.loader(model: model)
        let loaded = try modelOptions.load(model, loader: loader)
        let network = loaded.network
        let report = Report(
            path: model, sha256: try loader.digests[model] ?? FileDigest.sha256(path: model), bytes: try FileReader.size(of: model),
            architecture: network.spec.shorthand, layers: network.layers.map(\.description),
            parameters: network.parameterCount, torch: network.spec.torchSequential,
            inferredArchitecture: loaded.inferredArchitecture, metadata: loaded.metadata.mapValues(JSONValue.parsingIfJSON))
        if json {
            try JSONOutput.line(report)
            return
        }
        print("""
        file          \(report.path) (\(report.bytes) bytes)
        sha256        \(report.sha256)
        architecture  \(report.architecture): \(report.layers.joined(separator: " → "))\(loaded.inferredArchitecture ? " (inferred from a PyTorch file)" : "")
        parameters    \(report.parameters)
        pytorch       \(report.torch)
        metadata
        """)
        // Keys and values come from the file: control characters are escaped, not sent to the terminal.
        let entries = loaded.metadata.sorted(by: { $0.key < $1.key }).filter { $0.key != "torch" }.map { (displayable($0.key, limit: 64), displayable($0.value)) }
        let width = max(16, entries.map(\.0.count).max() ?? 0)
        for (key, value) in entries {
            print("  \(key.padding(toLength: width, withPad: " ", startingAt: 0)) \(value)")
        }
    }
}

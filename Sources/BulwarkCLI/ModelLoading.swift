import Foundation
import ArgumentParser
import NeuralNet
import BulwarkSecurity
import _FileSystem

extension Activation: ExpressibleByArgument {}

/// How to read model files that carry no Bulwark metadata (written by PyTorch).
package struct ModelOptions: ParsableArguments, Sendable {
    package init() {}

    @Option(help: ArgumentHelp("For a model file written by PyTorch (no Bulwark metadata): the activation after each hidden Linear layer, one for all or a comma-separated list per layer (relu, leaky-relu, tanh, sigmoid).", valueName: "names"))
    var activation: String?

    package func validate() throws { _ = try activations() }

    /// The parsed `--activation` list.
    func activations() throws -> [Activation]? {
        guard let activation else { return nil }
        return try activation.split(separator: ",", omittingEmptySubsequences: false).map { name in
            guard let parsed = Activation(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--activation: unknown activation '\(name)' (known: \(Activation.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return parsed
        }
    }

    /// Loads a model file, verified (and decrypted) by the loader before parsing.
    package func load(_ path: String, loader: any FileLoading) throws -> ModelFile.Loaded {
        let loaded = try ModelFile.load(contentsOf: path, loader: loader, hiddenActivations: try activations())
        if loaded.inferredArchitecture {
            log.info("\(path): architecture \(loaded.network.spec.torchSequential) inferred from a PyTorch file")
        } else if activation != nil {
            log.warning("--activation is ignored for \(path): the file records its architecture")
        }
        return loaded
    }
}

/// Records files the commands write in the manifest beside them, so they verify next time.
package enum ModelLoading {
    /// - Returns: the file's SHA-256.
    @discardableResult
    package static func record(_ path: String, recipe: String?) throws -> String {
        let (entry, removedSignature) = try Manifest.record(path, recipe: recipe)
        if removedSignature {
            log.warning("the manifest beside \(path) was signed; its signature was removed because \(path) changed. Sign it again with bulwark manifest sign")
        }
        let directory = PathText.directory(of: path)
        if FileManager.default.fileExists(atPath: directory + "/" + ModelSigning.defaultSignatureName) {
            log.warning("\(directory)/\(ModelSigning.defaultSignatureName) no longer matches the directory, because \(path) changed; sign it again with bulwark sign \(directory) --key KEY.pem")
        }
        return entry.sha256
    }
}

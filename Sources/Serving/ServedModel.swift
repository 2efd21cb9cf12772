import NeuralNet
import _FileSystem

/// A model as the service holds it: verified, loaded for inference, with what `GET /v1/models`
/// shows about it.
public struct ServedModel: Sendable {
    public let name: String
    public let path: String
    public let model: any InferenceModel
    /// SHA-256 of the file as it was verified and loaded.
    public let sha256: String
    /// e.g. `784-256-256-10 relu`.
    public let architecture: String
    /// The model card beside the file, if there is one.
    public let card: JSONValue?

    public init(name: String, path: String, model: any InferenceModel, sha256: String, architecture: String, card: JSONValue?) {
        (self.name, self.path, self.model, self.sha256, self.architecture, self.card) = (name, path, model, sha256, architecture, card)
    }
}

/// Loads (and verifies) the file of a model: how, is the command line's business (the same
/// manifest, signature and key checks as every other command).
public typealias ModelLoader = @Sendable (_ name: String, _ path: String) throws -> ServedModel

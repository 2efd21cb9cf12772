import NeuralNet
import TensorCore
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
    /// Anomaly detectors fitted for this file (`--detectors`), if any.
    public let detectors: AnomalyDetectors?
    /// Distinct for every load of every model: jobs are batched only with jobs of the same load.
    public let generation: UInt64

    private static let generations = Locked<UInt64>(0)

    public init(name: String, path: String, model: any InferenceModel, sha256: String, architecture: String, card: JSONValue?,
                detectors: AnomalyDetectors? = nil) {
        (self.name, self.path, self.model, self.sha256, self.architecture, self.card, self.detectors) =
            (name, path, model, sha256, architecture, card, detectors)
        generation = Self.generations.withLock { next in
            next += 1
            return next
        }
    }
}

/// Loads (and verifies) the file of a model: how, is the command line's business (the same
/// manifest, signature and key checks as every other command).
public typealias ModelLoader = @Sendable (_ name: String, _ path: String) throws -> ServedModel

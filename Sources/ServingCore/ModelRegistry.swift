import TensorCore

/// The models being served, by name. A reload verifies and loads the file first and swaps the
/// entry only if that succeeds; requests that already hold the old model finish on it.
public final class ModelRegistry: Sendable {
    private let models: Locked<[String: ServedModel]>
    private let loader: ModelLoader
    /// One reload at a time per registry (two admins reloading at once load the file twice otherwise).
    private let reloading = Locked<Void>(())

    public init(models: [ServedModel], loader: @escaping ModelLoader) {
        self.models = Locked(Dictionary(uniqueKeysWithValues: models.map { ($0.name, $0) }))
        self.loader = loader
    }

    public func model(named name: String) -> ServedModel? { models.withLock { $0[name] } }

    public var all: [ServedModel] { models.withLock { $0.values.sorted { $0.name < $1.name } } }

    /// Verifies and loads the model's file again and swaps it in.
    /// - Returns: the old and the new model.
    /// - Throws: what verification or loading threw; the old model keeps serving.
    public func reload(_ name: String) throws -> (old: ServedModel, new: ServedModel)? {
        try reloading.withLock { _ in
            guard let old = model(named: name) else { return nil }
            let new = try loader(name, old.path)
            guard new.model.inputWidth == old.model.inputWidth, new.model.classCount == old.model.classCount else {
                throw ServeError.invalidConfiguration("the new file of model '\(name)' takes \(new.model.inputWidth) inputs and gives \(new.model.classCount) classes; the served one \(old.model.inputWidth) and \(old.model.classCount). Clients would break: serve it under another name")
            }
            models.withLock { $0[name] = new }
            return (old, new)
        }
    }
}

import Foundation
import _FileSystem

/// The in-toto Statement v1 an OMS signature signs: one subject (the model's name and root
/// digest) and the predicate `https://model_signing/signature/v1.0`, which lists every resource's
/// digest and how the model was serialized (OMS v1.0 §5).
public struct ModelStatement: Sendable, Equatable {
    public static let statementType = "https://in-toto.io/Statement/v1"
    public static let predicateType = "https://model_signing/signature/v1.0"

    /// The subject's name: the model's base name (informational).
    public var name: String
    public var rootDigest: String
    public var resources: [ModelSerialization.Resource]
    public var serialization: ModelSerialization

    public init(name: String, resources: [ModelSerialization.Resource], serialization: ModelSerialization) {
        self.name = name
        self.resources = resources
        self.serialization = serialization
        rootDigest = ModelSerialization.rootDigest(of: resources) ?? ""
    }

    // MARK: - JSON

    private struct Statement: Codable {
        var type: String
        var subject: [Subject]
        var predicateType: String
        var predicate: Predicate
        enum CodingKeys: String, CodingKey { case type = "_type", subject, predicateType, predicate }
        init(type: String, subject: [Subject], predicateType: String, predicate: Predicate) {
            (self.type, self.subject, self.predicateType, self.predicate) = (type, subject, predicateType, predicate)
        }
        init(from decoder: any Decoder) throws {
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["_type", "subject", "predicateType", "predicate"])
            let c = try decoder.container(keyedBy: CodingKeys.self)
            type = try c.decode(String.self, forKey: .type)
            subject = try c.decode([Subject].self, forKey: .subject)
            predicateType = try c.decode(String.self, forKey: .predicateType)
            // The predicate is read only once the type says what it is.
            predicate = predicateType == ModelStatement.predicateType
                ? try c.decode(Predicate.self, forKey: .predicate) : Predicate(resources: [], serialization: .init())
        }
    }

    private struct Subject: Codable {
        var name: String
        var digest: [String: String]
        init(name: String, digest: [String: String]) { (self.name, self.digest) = (name, digest) }
        init(from decoder: any Decoder) throws {
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["name", "digest"])
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            digest = try c.decode([String: String].self, forKey: .digest)
        }
        enum CodingKeys: String, CodingKey { case name, digest }
    }

    private struct Predicate: Codable {
        var resources: [Resource]
        var serialization: Serialization
        init(resources: [Resource], serialization: Serialization) { (self.resources, self.serialization) = (resources, serialization) }
        init(from decoder: any Decoder) throws {
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["resources", "serialization"])
            let c = try decoder.container(keyedBy: CodingKeys.self)
            resources = try c.decode([Resource].self, forKey: .resources)
            serialization = try c.decode(Serialization.self, forKey: .serialization)
        }
        enum CodingKeys: String, CodingKey { case resources, serialization }
    }

    private struct Resource: Codable {
        var name: String
        var algorithm: String
        var digest: String
        init(name: String, algorithm: String, digest: String) { (self.name, self.algorithm, self.digest) = (name, algorithm, digest) }
        init(from decoder: any Decoder) throws {
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["name", "algorithm", "digest"])
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            algorithm = try c.decode(String.self, forKey: .algorithm)
            digest = try c.decode(String.self, forKey: .digest)
        }
        enum CodingKeys: String, CodingKey { case name, algorithm, digest }
    }

    private struct Serialization: Codable {
        var method = "files"
        var hashType = "sha256"
        var allowSymlinks = false
        var shardSize: Int?
        var ignorePaths: [String]?
        enum CodingKeys: String, CodingKey {
            case method, hashType = "hash_type", allowSymlinks = "allow_symlinks", shardSize = "shard_size", ignorePaths = "ignore_paths"
        }
        init() {}
        init(from decoder: any Decoder) throws {
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["method", "hash_type", "allow_symlinks", "shard_size", "ignore_paths"])
            let c = try decoder.container(keyedBy: CodingKeys.self)
            method = try c.decode(String.self, forKey: .method)
            hashType = try c.decode(String.self, forKey: .hashType)
            allowSymlinks = try c.decode(Bool.self, forKey: .allowSymlinks)
            // The reference tool passes shard_size through a protobuf Struct, so it writes 1000000000.0.
            if let size = try? c.decodeIfPresent(Int.self, forKey: .shardSize) {
                shardSize = size
            } else if let size = try c.decodeIfPresent(Double.self, forKey: .shardSize) {
                guard size.rounded() == size, size >= 1, size <= 1e15 else {
                    throw c.invalid(.shardSize, "shard_size must be a positive whole number")
                }
                shardSize = Int(size)
            }
            ignorePaths = try c.decodeIfPresent([String].self, forKey: .ignorePaths)
        }
    }

    /// The statement's JSON (compact, sorted keys), the payload that is signed.
    public func encoded() throws -> Data {
        var serializationJSON = Serialization()
        switch serialization.method {
        case .files: serializationJSON.method = "files"
        case .shards(let size):
            serializationJSON.method = "shards"
            serializationJSON.shardSize = size
        }
        serializationJSON.allowSymlinks = serialization.allowSymlinks
        serializationJSON.ignorePaths = serialization.ignorePaths.isEmpty ? nil : serialization.ignorePaths
        let statement = Statement(
            type: Self.statementType,
            subject: [Subject(name: name, digest: ["sha256": rootDigest])],
            predicateType: Self.predicateType,
            predicate: Predicate(resources: resources.map { Resource(name: $0.name, algorithm: $0.algorithm, digest: $0.digest) },
                                 serialization: serializationJSON))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(statement)
    }

    /// Parses and checks a signed payload: the statement and predicate types, one subject whose
    /// digest is the root digest of the listed resources (recomputed in the listed order), SHA-256
    /// hashing, and resource names that are plain relative paths, each listed once.
    /// - Throws: `SecurityError.modelSignature` naming `source` and the problem.
    public static func parse(_ payload: Data, source: String) throws -> ModelStatement {
        func fail(_ problem: String) -> SecurityError { .modelSignature(path: source, problem: problem) }
        let statement: Statement
        do {
            statement = try StrictJSON.decode(Statement.self, from: Array(payload), integerKeys: [])
        } catch {
            throw fail("its signed statement does not parse (\(decodingErrorText(error)))")
        }
        guard statement.type == statementType else {
            throw fail("its statement type '\(displayable(statement.type, limit: 80))' is not \(statementType)")
        }
        guard statement.predicateType == predicateType else {
            throw fail("its predicate type '\(displayable(statement.predicateType, limit: 80))' is not \(predicateType) (OMS v1.0)")
        }
        guard statement.subject.count == 1, let subjectDigest = statement.subject[0].digest["sha256"] else {
            throw fail("its statement must have exactly one subject with a sha256 digest")
        }
        let predicate = statement.predicate
        guard predicate.serialization.hashType == "sha256" else {
            throw fail("it was hashed with \(displayable(predicate.serialization.hashType, limit: 20)), which Bulwark does not implement; sign with sha256 (the default)")
        }
        var serialization = ModelSerialization(allowSymlinks: predicate.serialization.allowSymlinks,
                                               ignorePaths: predicate.serialization.ignorePaths ?? [])
        switch predicate.serialization.method {
        case "files":
            serialization.method = .files
        case "shards":
            guard let size = predicate.serialization.shardSize, size > 0 else { throw fail("its shard serialization has no positive shard_size") }
            serialization.method = .shards(size: size)
        default:
            throw fail("its serialization method '\(displayable(predicate.serialization.method, limit: 20))' is neither files nor shards")
        }
        guard !predicate.resources.isEmpty else { throw fail("it lists no files (OMS refuses empty models)") }
        var names = Set<ModelSerialization.ByteName>()
        for resource in predicate.resources {
            guard names.insert(ModelSerialization.ByteName(resource.name)).inserted else { throw fail("it lists '\(displayable(resource.name, limit: 120))' twice") }
            guard Manifest.isHexDigest(resource.digest) else {
                throw fail("the digest of '\(displayable(resource.name, limit: 120))' is not a lowercase hex SHA-256")
            }
            try checkName(resource.name, algorithm: resource.algorithm, method: serialization.method, fail: fail)
        }
        let resources = predicate.resources.map { ModelSerialization.Resource(name: $0.name, algorithm: $0.algorithm, digest: $0.digest) }
        var parsed = ModelStatement(name: statement.subject[0].name, resources: resources, serialization: serialization)
        guard parsed.rootDigest == subjectDigest else {
            throw fail("its subject digest \(displayable(subjectDigest, limit: 70)) is not the digest of its resources (\(parsed.rootDigest)); the statement is inconsistent")
        }
        parsed.rootDigest = subjectDigest
        return parsed
    }

    private static func checkName(_ name: String, algorithm: String, method: ModelSerialization.Method,
                                  fail: (String) -> SecurityError) throws {
        switch method {
        case .files:
            guard algorithm == "sha256" else { throw fail("'\(displayable(name, limit: 120))' has algorithm '\(displayable(algorithm, limit: 30))', not sha256") }
            guard name == "." || Manifest.isValidName(name) else {
                throw fail("'\(displayable(name, limit: 120))' is not a plain relative path inside the model")
            }
        case .shards(let size):
            // The spec writes "sha256"; the reference tool writes "sha256-sharded-<size>".
            guard algorithm == "sha256" || algorithm == "sha256-sharded-\(size)" else {
                throw fail("shard '\(displayable(name, limit: 120))' has algorithm '\(displayable(algorithm, limit: 30))', not sha256")
            }
            let parts = name.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count >= 3, let start = Int(parts[parts.count - 2]), let end = Int(parts[parts.count - 1]),
                  start >= 0, end > start, end - start <= size, start % size == 0 else {
                throw fail("shard '\(displayable(name, limit: 120))' is not PATH:START:END with a range of at most \(size) bytes")
            }
            let path = parts.dropLast(2).joined(separator: ":")
            guard path == "." || Manifest.isValidName(path) else {
                throw fail("shard '\(displayable(name, limit: 120))' names no plain relative path inside the model")
            }
        }
    }
}

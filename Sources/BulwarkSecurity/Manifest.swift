import Crypto
import Foundation
import Glibc
import _FileSystem

/// A manifest of a directory of models or datasets (`bulwark-manifest.json`, schema
/// `bulwark-manifest/1`): the SHA-256 and size of every file, the recipe that made it, and
/// optionally a signature over all of that (Ed25519, ECDSA P-256, ML-DSA-65, or the Ed25519 + ML-DSA-65 hybrid).
///
/// ```json
/// {"schema": "bulwark-manifest/1",
///  "files": {"mlp-standard.safetensors": {"sha256": "…", "size": 1077440, "recipe": "bulwark train …"}},
///  "signature": {"algorithm": "ed25519", "public_key": "<base64>", "value": "<base64>"}}
/// ```
/// The signature covers the canonical JSON of the manifest without its `signature` field (sorted
/// keys, no whitespace).
public struct Manifest: Codable, Equatable, Sendable {
    public static let fileName = "bulwark-manifest.json"
    public static let schema = "bulwark-manifest/1"
    public static let maximumSize = 64 << 20

    public var schema: String
    public var files: [String: Entry]
    public var signature: Signature?

    public struct Entry: Codable, Equatable, Sendable {
        public var sha256: String
        public var size: Int
        public var recipe: String?
        /// While a new version of the file is being written (announced, not yet renamed into place):
        /// the digest of the version it replaces, which the file may still hold if the writer was
        /// killed in between. `record` clears it once the new version is in place.
        public var previousSHA256: String?

        public init(sha256: String, size: Int, recipe: String? = nil, previousSHA256: String? = nil) {
            self.sha256 = sha256
            self.size = size
            self.recipe = recipe
            self.previousSHA256 = previousSHA256
        }

        enum CodingKeys: String, CodingKey {
            case sha256, size, recipe
            case previousSHA256 = "previous_sha256"
        }

        public init(from decoder: any Decoder) throws {
            // A signature covers what Bulwark reads: a field it would ignore is refused instead.
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["sha256", "size", "recipe", "previous_sha256"])
            let c = try decoder.container(keyedBy: CodingKeys.self)
            sha256 = try c.decode(String.self, forKey: .sha256)
            size = try c.decode(Int.self, forKey: .size)
            recipe = try c.decodeIfPresent(String.self, forKey: .recipe)
            previousSHA256 = try c.decodeIfPresent(String.self, forKey: .previousSHA256)
        }

        /// Whether a file with digest `actual` is this entry's file: its current version, or the
        /// version an interrupted write was replacing.
        public func vouches(for actual: String) -> Bool { actual == sha256 || actual == previousSHA256 }
    }

    public struct Signature: Codable, Equatable, Sendable {
        public var algorithm: String
        public var publicKey: String
        public var value: String

        enum CodingKeys: String, CodingKey {
            case algorithm, value
            case publicKey = "public_key"
        }

        public init(algorithm: String, publicKey: String, value: String) {
            self.algorithm = algorithm
            self.publicKey = publicKey
            self.value = value
        }

        public init(from decoder: any Decoder) throws {
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["algorithm", "public_key", "value"])
            let c = try decoder.container(keyedBy: CodingKeys.self)
            algorithm = try c.decode(String.self, forKey: .algorithm)
            publicKey = try c.decode(String.self, forKey: .publicKey)
            value = try c.decode(String.self, forKey: .value)
        }
    }

    enum CodingKeys: String, CodingKey { case schema, files, signature }

    public init(from decoder: any Decoder) throws {
        try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["schema", "files", "signature"])
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.decode(String.self, forKey: .schema)
        files = try c.decode([String: Entry].self, forKey: .files)
        signature = try c.decodeIfPresent(Signature.self, forKey: .signature)
    }

    public init(files: [String: Entry] = [:]) {
        schema = Self.schema
        self.files = files
        signature = nil
    }

    public static func path(in directory: String) -> String { directory + "/" + fileName }

    // MARK: - Reading and writing

    /// The manifest of `directory`, or nil if it has none.
    /// - Throws: `SecurityError.invalidManifest` if the file exists but is not a valid manifest.
    public static func load(directory: String) throws -> Manifest? {
        let path = path(in: directory)
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try parse(FileReader.readAll(path, limit: maximumSize), source: path)
    }

    /// Parses and validates manifest bytes.
    /// - Throws: `SecurityError.invalidManifest` naming `source` and the problem.
    public static func parse(_ bytes: [UInt8], source path: String) throws -> Manifest {
        guard bytes.count <= maximumSize else {
            throw SecurityError.invalidManifest(path: path, problem: "it is larger than \(maximumSize) bytes")
        }
        let manifest: Manifest
        do {
            manifest = try StrictJSON.decode(Manifest.self, from: bytes, integerKeys: ["size"])
        } catch {
            throw SecurityError.invalidManifest(path: path, problem: "it does not parse (\(decodingErrorText(error)))")
        }
        guard manifest.schema == schema else {
            throw SecurityError.invalidManifest(path: path, problem: "schema '\(manifest.schema)' is not '\(schema)'")
        }
        for (name, entry) in manifest.files {
            guard isValidName(name) else {
                throw SecurityError.invalidManifest(path: path, problem: "entry '\(name)' is not a plain relative path inside the directory")
            }
            guard isHexDigest(entry.sha256), entry.size >= 0 else {
                throw SecurityError.invalidManifest(path: path, problem: "entry '\(name)' has an invalid digest or size")
            }
        }
        return manifest
    }

    /// Writes the manifest atomically (pretty, sorted keys).
    public func write(directory: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try AtomicFile.write(Array(try encoder.encode(self)) + [UInt8(ascii: "\n")], to: Self.path(in: directory))
    }

    /// Relative names only: no absolute paths, no `..`, no empty components.
    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix("/") && !name.split(separator: "/", omittingEmptySubsequences: false).contains { $0.isEmpty || $0 == ".." || $0 == "." }
    }

    public static func isHexDigest(_ text: String) -> Bool {
        text.count == 64 && text.allSatisfy { $0.isHexDigit && !$0.isUppercase }
    }

    // MARK: - Creating and verifying

    /// Files of `directory` (recursively, relative names) that a manifest covers: everything but the
    /// manifest itself, hidden files and temporary files.
    public static func coveredFiles(in directory: String) throws -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else {
            throw SecurityError.invalidManifest(path: directory, problem: "the directory cannot be read")
        }
        var names: [String] = []
        for case let name as String in enumerator {
            let last = PathText.name(of: name)
            if last.hasPrefix(".") {
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: directory + "/" + name, isDirectory: &isDirectory), isDirectory.boolValue {
                    enumerator.skipDescendants()
                }
                continue
            }
            guard name != fileName else { continue }
            let path = directory + "/" + name
            var info = stat()
            if stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR { continue }  // also a link to a directory
            // Anything else that is not a regular file (a FIFO, a device, a dangling link) cannot be
            // covered: say so rather than skip it silently.
            _ = try FileReader.size(of: path)
            names.append(name)
        }
        return names.sorted()
    }

    /// A manifest of every covered file of `directory`, keeping the recipes of `previous`.
    public static func create(directory: String, previous: Manifest? = nil, recipe: (String) -> String? = { _ in nil }) throws -> Manifest {
        var manifest = Manifest()
        for name in try coveredFiles(in: directory) {
            let path = directory + "/" + name
            manifest.files[name] = Entry(sha256: try FileDigest.sha256(path: path), size: try FileReader.size(of: path),
                                         recipe: previous?.files[name]?.recipe ?? recipe(path))
        }
        return manifest
    }

    /// What `verify` found.
    public struct Verification: Sendable {
        public var verified: [String] = []
        public var mismatched: [(name: String, expected: String, actual: String)] = []
        public var missing: [String] = []
        public var unlisted: [String] = []
        public var signer: String?
        public var ok: Bool { mismatched.isEmpty && missing.isEmpty }
    }

    /// Hashes every listed file of `directory` and compares; checks the signature if there is one.
    /// - Parameter trustedKey: if given, the manifest must be signed by this key.
    /// - Throws: `SecurityError.signatureInvalid` for a bad or untrusted signature.
    public func verify(directory: String, trustedKey: SigningPublicKey?) throws -> Verification {
        var result = Verification()
        result.signer = try checkSignature(path: Self.path(in: directory), trustedKey: trustedKey)
        for (name, entry) in files.sorted(by: { $0.key < $1.key }) {
            let path = directory + "/" + name
            guard FileManager.default.fileExists(atPath: path) else {
                result.missing.append(name)
                continue
            }
            let actual = try FileDigest.sha256(path: path)
            if entry.vouches(for: actual) { result.verified.append(name) } else { result.mismatched.append((name, entry.sha256, actual)) }
        }
        result.unlisted = try Self.coveredFiles(in: directory).filter { files[$0] == nil }
        return result
    }

    // MARK: - Signatures

    /// The bytes a signature covers: the manifest without its signature, canonical JSON.
    public func signedBytes() throws -> [UInt8] {
        var unsigned = self
        unsigned.signature = nil
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(unsigned))
    }

    /// Signs the manifest (with any `SigningAlgorithm`).
    public mutating func sign(with key: SigningPrivateKey) throws {
        signature = nil
        let value = try key.signature(for: signedBytes())
        signature = Signature(algorithm: key.algorithm.rawValue, publicKey: key.publicKey.rawRepresentation.base64EncodedString(),
                              value: value.base64EncodedString())
    }

    /// Checks the signature, if any. With `trustedKey`, a signature by that key (and its
    /// algorithm: a hybrid key accepts only hybrid signatures) is required.
    /// - Returns: the signer's key fingerprint, or nil for an unsigned manifest.
    @discardableResult
    public func checkSignature(path: String, trustedKey: SigningPublicKey?) throws -> String? {
        guard let signature else {
            if let trustedKey {
                throw SecurityError.signatureInvalid(path: path, problem: "it is not signed, but a trusted key (\(trustedKey.fingerprint)) requires a signature; sign it with bulwark manifest sign")
            }
            return nil
        }
        guard let algorithm = SigningAlgorithm(rawValue: signature.algorithm), let raw = Data(base64Encoded: signature.publicKey),
              let embedded = SigningPublicKey(algorithm: algorithm, raw: raw),
              let value = Data(base64Encoded: signature.value) else {
            throw SecurityError.signatureInvalid(path: path, problem: "its signature block is malformed (or uses an algorithm this Bulwark does not know)")
        }
        if let trustedKey, !trustedKey.sameKey(as: embedded) {
            let what = trustedKey.algorithm == embedded.algorithm ? "key \(embedded.fingerprint)" : "a \(algorithm.rawValue) key (\(embedded.fingerprint))"
            throw SecurityError.signatureInvalid(path: path, problem: "it is signed by \(what), not by the trusted key \(trustedKey.fingerprint) (\(trustedKey.algorithm.rawValue))")
        }
        guard embedded.isValidSignature(value, for: try signedBytes()) else {
            throw SecurityError.signatureInvalid(path: path, problem: "its signature does not match its contents (the manifest was modified after signing)")
        }
        return embedded.fingerprint
    }

    // MARK: - Updating one entry

    /// Adds or replaces the entry of `path` in the manifest of its directory, under a lock so
    /// concurrent writers do not lose entries. A signature no longer matches and is removed.
    /// - Returns: the entry written, and true if a signature was removed (the caller should say so).
    @discardableResult
    public static func record(_ path: String, recipe: String? = nil) throws -> (entry: Entry, removedSignature: Bool) {
        try updateEntry(of: path) { current in
            Entry(sha256: try FileDigest.sha256(path: path), size: try FileReader.size(of: path), recipe: recipe ?? current?.recipe)
        }
    }

    /// Announces a new version of `path` (its digest and size) before it is renamed into place,
    /// keeping the current version's digest as `previous_sha256`: a writer killed between the two
    /// steps leaves a file the manifest still vouches for, and `record` afterwards clears the
    /// previous digest. Returns true if a signature was removed.
    public static func announce(_ path: String, sha256: String, size: Int, recipe: String? = nil) throws -> Bool {
        try updateEntry(of: path) { current in
            // Only a version that is on disk now may be vouched for as the previous one.
            let onDisk = (try? FileDigest.sha256(path: path)).flatMap { current?.vouches(for: $0) == true ? $0 : nil }
            return Entry(sha256: sha256, size: size, recipe: recipe ?? current?.recipe, previousSHA256: onDisk)
        }.removedSignature
    }

    /// Replaces the entry of `path` by `make(current entry)` in the manifest of its directory, under
    /// the lock, dropping the signature (which no longer matches).
    private static func updateEntry(of path: String, _ make: (Entry?) throws -> Entry) throws -> (entry: Entry, removedSignature: Bool) {
        let directory = PathText.directory(of: path)
        let name = PathText.name(of: path)
        return try withLock(directory: directory) {
            var manifest = try load(directory: directory) ?? Manifest()
            let wasSigned = manifest.signature != nil
            manifest.signature = nil
            let entry = try make(manifest.files[name])
            manifest.files[name] = entry
            try manifest.write(directory: directory)
            return (entry, wasSigned)
        }
    }

    static func withLock<R>(directory: String, _ body: () throws -> R) throws -> R {
        let lockPath = directory + "/.bulwark-manifest.lock"
        let fd = open(lockPath, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else {
            throw SecurityError.invalidManifest(path: lockPath, problem: "cannot create the lock file (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        flock(fd, LOCK_EX)
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}

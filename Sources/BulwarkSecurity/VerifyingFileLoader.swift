import Crypto
import Foundation
import _FileSystem

/// Reads model and data files for parsing only after checking them: the file is read once while
/// it is hashed, its SHA-256 is compared with what is expected, and only then (decrypted, if it is
/// encrypted) handed to the parser.
///
/// The expected digest comes from, in order: `--expect-sha256` for that file; with
/// `modelSigningKey`, the OpenSSF Model Signing signature `model.sig` in the file's directory
/// (required then, and checked against that key); else the manifest beside it (whose signature is
/// checked, against `trustedKey` if one is given), then Bulwark's built-in digests of known public
/// datasets. A mismatch is refused with both digests; a file with no
/// expected digest is refused unless `allowUnverified`, which is logged as a warning.
public final class VerifyingFileLoader: FileLoading {
    public var expectedDigests: [String: String]
    public var allowUnverified: Bool
    public var trustedKey: SigningPublicKey?
    /// The OMS signer's public key: files must be listed in the signed `model.sig` beside them.
    public var modelSigningKey: ECDSAPublicKey?
    /// Key for encrypted files (Bulwark containers and Fernet tokens).
    public var dataKey: DataKey?
    /// Identities and key-encryption keys for envelope-encrypted files (format 2).
    public var keyUnwrappers: [KeyUnwrapper] = []
    /// Fernet tokens older than this are refused.
    public var fernetTTL: UInt64?
    public var warn: (String) -> Void
    /// SHA-256 of every file loaded so far, by path (so callers need not hash a file again).
    public private(set) var digests: [String: String] = [:]

    public init(expectedDigests: [String: String] = [:], allowUnverified: Bool = false,
                trustedKey: SigningPublicKey? = nil, modelSigningKey: ECDSAPublicKey? = nil, dataKey: DataKey? = nil, fernetTTL: UInt64? = nil,
                warn: @escaping (String) -> Void = { _ in }) {
        self.expectedDigests = expectedDigests
        self.allowUnverified = allowUnverified
        self.trustedKey = trustedKey
        self.modelSigningKey = modelSigningKey
        self.dataKey = dataKey
        self.fernetTTL = fernetTTL
        self.warn = warn
    }

    public func load(_ path: String, limit: Int) throws -> [UInt8] {
        var hasher = SHA256()
        var bytes: [UInt8] = []
        let size = try FileReader.size(of: path)
        guard size <= limit else { throw FileSystemError.tooLarge(path: path, size: size, limit: limit) }
        bytes.reserveCapacity(size)
        try FileReader.forEachChunk(of: path) { chunk in
            guard bytes.count + chunk.count <= limit else {
                throw FileSystemError.tooLarge(path: path, size: bytes.count + chunk.count, limit: limit)
            }
            hasher.update(bufferPointer: chunk)
            bytes.append(contentsOf: chunk)
        }
        let actual = FileDigest.hex(hasher.finalize())
        try check(path, actual: actual, bytes: bytes)
        digests[path] = actual
        return try decryptIfNeeded(bytes, path: path)
    }

    /// Compares `actual` with the digest expected for `path`.
    func check(_ path: String, actual: String, bytes: [UInt8]) throws {
        if let expected = expectedDigests[path] {
            guard expected == actual else {
                throw SecurityError.digestMismatch(path: path, expected: expected, actual: actual, source: "--expect-sha256")
            }
            return
        }
        let directory = PathText.directory(of: path)
        let name = PathText.name(of: path)
        if let modelSigningKey {
            return try checkModelSignature(path, directory: directory, name: name, actual: actual, bytes: bytes, key: modelSigningKey)
        }
        if let manifest = try manifest(of: directory), let entry = manifest.files[name] {
            guard entry.vouches(for: actual) else {
                throw SecurityError.digestMismatch(path: path, expected: entry.sha256, actual: actual, source: Manifest.path(in: directory))
            }
            return
        }
        if let known = KnownDigests.digest(forFileNamed: name), known.sha256 == actual {
            return
        }
        guard allowUnverified else { throw SecurityError.unverified(path: path) }
        warn("loading \(path) without verification (--allow-unverified); its SHA-256 is \(actual)")
    }

    /// Checks a file against the OMS signature of its directory: the bundle must verify with `key`
    /// and list the file (or its shards) with the digests it has.
    private func checkModelSignature(_ path: String, directory: String, name: String, actual: String, bytes: [UInt8],
                                     key: ECDSAPublicKey) throws {
        let signaturePath = directory + "/" + ModelSigning.defaultSignatureName
        guard FileManager.default.fileExists(atPath: signaturePath) else {
            throw SecurityError.modelSignature(path: signaturePath, problem: "it does not exist, but the trusted key \(key.fingerprint) is an OMS key, "
                                               + "so \(path) must be signed by it; sign the directory with bulwark sign \(directory) --key KEY.pem")
        }
        let statement = try ModelSigning.checkSignature(bundle: try FileReader.readAll(signaturePath, limit: SigstoreBundle.maximumSize),
                                                        source: signaturePath, trustedKey: key)
        // Names are compared as bytes, as the file system compares them.
        switch statement.serialization.method {
        case .files:
            guard let resource = statement.resources.first(where: { $0.name.utf8.elementsEqual(name.utf8) }) else {
                throw SecurityError.modelSignature(path: signaturePath, problem: "it does not list \(name), so \(path) is not signed")
            }
            guard resource.digest == actual else {
                throw SecurityError.digestMismatch(path: path, expected: resource.digest, actual: actual, source: signaturePath)
            }
        case .shards(let size):
            guard !bytes.isEmpty else {
                throw SecurityError.modelSignature(path: signaturePath, problem: "\(path) is empty, and a shard signature lists no empty files, so it is not signed")
            }
            let signed = statement.resources.filter { resource in
                let path = ModelSigning.path(ofResource: resource.name, method: statement.serialization.method)
                return path.utf8.elementsEqual(name.utf8)
            }
            guard !signed.isEmpty else {
                throw SecurityError.modelSignature(path: signaturePath, problem: "it does not list \(name), so \(path) is not signed")
            }
            var hasher = ModelSerialization.ShardHasher(name: name, size: size)
            bytes.withUnsafeBytes { hasher.update($0) }
            let local = hasher.finish()
            guard local.count == signed.count, zip(local, signed).allSatisfy({ $0.name.utf8.elementsEqual($1.name.utf8) && $0.digest == $1.digest }) else {
                throw SecurityError.modelSignature(path: path, problem: "its shards differ from those \(signaturePath) signs; the file was changed, corrupted or replaced")
            }
        }
    }

    /// The manifest of `directory`, read afresh for every file (it may have gained entries since,
    /// e.g. when a model was just trained), with its signature checked.
    private func manifest(of directory: String) throws -> Manifest? {
        let manifest = try Manifest.load(directory: directory)
        try manifest?.checkSignature(path: Manifest.path(in: directory), trustedKey: trustedKey)
        return manifest
    }

    func decryptIfNeeded(_ bytes: [UInt8], path: String) throws -> [UInt8] {
        let encrypted = EncryptedContainer.isEncrypted(bytes), fernet = Fernet.isToken(bytes)
        guard encrypted || fernet else { return bytes }
        if EnvelopeEncryption.isEnvelope(bytes) { return try EnvelopeEncryption.decrypt(bytes, unwrappers: keyUnwrappers, source: path) }
        guard let dataKey else {
            throw SecurityError.missingKey("\(path) is encrypted; give its key with --key-file FILE or $\(DataKey.environmentVariable)")
        }
        if encrypted { return try EncryptedContainer.decrypt(bytes, key: dataKey, source: path) }
        guard let token = String(validating: bytes, as: UTF8.self) else {
            throw SecurityError.invalidToken(path: path, problem: "it is not text")
        }
        return try Fernet.decrypt(token, key: dataKey, ttl: fernetTTL, source: path)
    }
}

/// SHA-256 digests of public dataset files Bulwark knows, so they verify without a manifest.
public enum KnownDigests {
    public struct Known: Sendable {
        public let sha256: String
        public let origin: String
    }

    static let debianFashionMNIST = "Debian package dataset-fashion-mnist 0.0~git20200523.55506a9-1"
    static let table: [String: [Known]] = [
        "train-images-idx3-ubyte.gz": [Known(sha256: "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7", origin: debianFashionMNIST)],
        "train-labels-idx1-ubyte.gz": [Known(sha256: "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056", origin: debianFashionMNIST)],
        "t10k-images-idx3-ubyte.gz": [Known(sha256: "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa", origin: debianFashionMNIST)],
        "t10k-labels-idx1-ubyte.gz": [Known(sha256: "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05", origin: debianFashionMNIST)],
    ]

    /// The known digest for a file name, if any (nil if the name is unknown).
    public static func digest(forFileNamed name: String) -> Known? {
        table[name]?.first
    }
}

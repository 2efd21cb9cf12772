import Foundation
import _FileSystem

/// OpenSSF Model Signing (OMS v1.0) with a key: sign a model (a directory or a file) into a
/// Sigstore bundle, and verify one, interoperable with the reference tool `model_signing sign key`
/// / `verify key` (sigstore/model-transparency).
///
/// What is signed: every file's SHA-256 (or every shard's), listed in the statement with how the
/// model was serialized; the root digest of that list is the statement's subject. Verifying
/// checks the signature, then serializes the local model the way the statement says and compares
/// file by file: a changed, missing or added file fails.
public enum ModelSigning {
    /// The signature file's conventional name; inside the model it is always left out of the hash.
    public static let defaultSignatureName = "model.sig"

    /// Signs the model at `modelPath` and writes the bundle to `signaturePath` atomically.
    /// - Parameters:
    ///   - serialization: method, symlink policy and the paths to ignore (relative to the model).
    ///   - ignoreGitPaths: leave out the top-level `.git`, `.gitattributes`, `.github`, `.gitignore`.
    /// - Returns: the statement that was signed.
    @discardableResult
    public static func sign(model modelPath: String, key: ECDSAPrivateKey, serialization: ModelSerialization = .init(),
                            ignoreGitPaths: Bool = true, signaturePath: String) throws -> ModelStatement {
        var recorded = serialization
        let isDirectory = Self.isDirectory(modelPath)
        if isDirectory {
            // The bundle lists every path left out, as the reference tool does, so verifiers leave them out too.
            var ignored = serialization.ignorePaths.map(ModelSerialization.normalised)
            if ignoreGitPaths { ignored += ModelSerialization.gitPaths }
            let root = ModelSerialization.absolute(modelPath), signature = ModelSerialization.absolute(signaturePath)
            if signature.hasPrefix(root + "/") { ignored.append(String(signature.dropFirst(root.count + 1))) }
            recorded.ignorePaths = Array(Set(ignored)).sorted()
        } else {
            recorded.ignorePaths = []
        }
        let resources = try recorded.resources(of: modelPath, alsoIgnore: [signaturePath], ignoreGitPaths: ignoreGitPaths)
        guard !resources.isEmpty else {
            throw SecurityError.modelSignature(path: signaturePath, problem: "\(modelPath) has no files to sign (OMS refuses empty models)")
        }
        let name = URL(fileURLWithPath: ModelSerialization.absolute(modelPath)).lastPathComponent
        let statement = ModelStatement(name: name, resources: resources, serialization: recorded)
        let payload = try statement.encoded()
        let signature = try key.signature(for: SigstoreBundle.preAuthenticationEncoding(payload: payload))
        let bundle = SigstoreBundle(hint: key.publicKey.hint, payload: payload, signature: signature)
        try AtomicFile.write(Array(try bundle.encoded()), to: signaturePath)
        return statement
    }

    /// Checks a bundle's signature against `trustedKey` and parses the statement it signs; the
    /// model itself is not read.
    /// - Throws: `SecurityError.modelSignature` if the bundle is malformed, names another key, or
    ///   its signature does not verify.
    public static func checkSignature(bundle bytes: [UInt8], source: String, trustedKey: ECDSAPublicKey) throws -> ModelStatement {
        let bundle = try SigstoreBundle.parse(bytes, source: source)
        if let hint = bundle.hint, !hint.isEmpty, hint != trustedKey.hint {
            throw SecurityError.modelSignature(path: source, problem: "it names key \(displayable(hint.prefix(16), limit: 16)), "
                                               + "not the trusted key \(trustedKey.fingerprint) (--public-key)")
        }
        if let pem = bundle.embeddedPublicKeyPEM {
            guard let embedded = try? ECDSAPublicKey(pem: pem, source: source), embedded.sameKey(as: trustedKey) else {
                throw SecurityError.modelSignature(path: source, problem: "it carries a public key other than the trusted key \(trustedKey.fingerprint) (--public-key)")
            }
        }
        guard trustedKey.isValidSignature(der: bundle.signature, for: SigstoreBundle.preAuthenticationEncoding(payload: bundle.payload)) else {
            throw SecurityError.modelSignature(path: source, problem: "its signature does not verify with the trusted key \(trustedKey.fingerprint) "
                                               + "(the bundle was edited, or signed with another key)")
        }
        return try ModelStatement.parse(bundle.payload, source: source)
    }

    /// What `verify` found.
    public struct Verification: Sendable {
        public var statement: ModelStatement
        public var signer: String
        public var verified: [String] = []
        public var mismatched: [(name: String, expected: String, actual: String)] = []
        /// Signed, but not in the model now.
        public var missing: [String] = []
        /// In the model, but not signed.
        public var unsigned: [String] = []
        public var ok: Bool { mismatched.isEmpty && missing.isEmpty && unsigned.isEmpty }
    }

    /// Verifies the model at `modelPath` against the bundle at `signaturePath`.
    /// - Parameters:
    ///   - ignorePaths: more paths (relative to the model) to leave out, besides those the bundle lists.
    ///   - ignoreUnsignedFiles: files in the model that the signature does not list are not a failure.
    public static func verify(model modelPath: String, signaturePath: String, trustedKey: ECDSAPublicKey,
                              ignorePaths: [String] = [], ignoreUnsignedFiles: Bool = false, ignoreGitPaths: Bool = true) throws -> Verification {
        let bytes = try FileReader.readAll(signaturePath, limit: SigstoreBundle.maximumSize)
        let statement = try checkSignature(bundle: bytes, source: signaturePath, trustedKey: trustedKey)
        var serialization = statement.serialization
        serialization.ignorePaths += ignorePaths
        let local = try serialization.resources(of: modelPath, alsoIgnore: [signaturePath], ignoreGitPaths: ignoreGitPaths)
        var result = Verification(statement: statement, signer: trustedKey.fingerprint)
        // A single-file model is "." to the reference tool and its base name to the spec.
        let baseName = URL(fileURLWithPath: ModelSerialization.absolute(modelPath)).lastPathComponent
        let isSingleFile = !isDirectory(modelPath)
        func localName(_ signed: String) -> String {
            guard isSingleFile else { return signed }
            if signed.utf8.elementsEqual(baseName.utf8) { return "." }
            if signed.utf8.starts(with: (baseName + ":").utf8) { return "." + String(decoding: signed.utf8.dropFirst(baseName.utf8.count), as: UTF8.self) }
            return signed
        }
        // Names are compared as bytes (see `ModelSerialization.ByteName`).
        typealias Name = ModelSerialization.ByteName
        var actual: [Name: (name: String, digest: String)] = [:]
        for resource in local {
            guard actual.updateValue((resource.name, resource.digest), forKey: Name(resource.name)) == nil else {
                throw SecurityError.modelSignature(path: modelPath, problem: "two files are both named '\(displayable(resource.name, limit: 120))'")
            }
        }
        var signedPaths = Set<Name>()
        for resource in statement.resources {
            let name = localName(resource.name)
            signedPaths.insert(Name(Self.path(ofResource: name, method: statement.serialization.method)))
            guard let local = actual.removeValue(forKey: Name(name)) else {
                result.missing.append(resource.name)
                continue
            }
            if local.digest == resource.digest { result.verified.append(resource.name) } else { result.mismatched.append((resource.name, resource.digest, local.digest)) }
        }
        for local in actual.values.sorted(by: { $0.name < $1.name }) {
            // A shard of a signed file that the signature does not list (data appended to the file)
            // is a change to that file, never an unsigned file to be ignored.
            if signedPaths.contains(Name(Self.path(ofResource: local.name, method: statement.serialization.method))) {
                result.mismatched.append((local.name, "(no such shard signed)", local.digest))
            } else if !ignoreUnsignedFiles {
                result.unsigned.append(local.name)
            }
        }
        return result
    }

    /// The file a resource belongs to: its name, or for a shard `path:start:end` the path.
    static func path(ofResource name: String, method: ModelSerialization.Method) -> String {
        guard case .shards = method else { return name }
        var parts = name.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 3 else { return name }
        parts.removeLast(2)
        return parts.joined(separator: ":")
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}

import Crypto
import Foundation
import _FileSystem

/// The signature algorithms of Bulwark manifests.
///
/// - `ed25519`: Ed25519 (Bernstein et al., 2012), the default.
/// - `p256`: ECDSA on P-256 with SHA-256 (FIPS 186-5), for keys held where only NIST curves are allowed.
/// - `ml-dsa-65`: ML-DSA-65 (FIPS 204, Dilithium), a post-quantum lattice signature.
/// - `ed25519+ml-dsa-65`: a hybrid: both signatures, and both must verify, so a forgery needs
///   a break of Ed25519 (e.g. by a quantum computer) AND of ML-DSA (e.g. by a new lattice attack).
///   Signatures kept for years are exposed to "harvest now, forge later": a key recorded today can
///   be broken by a future quantum computer, and a model signed with it would then be forgeable.
public enum SigningAlgorithm: String, CaseIterable, Sendable {
    case ed25519
    case p256
    case mldsa65 = "ml-dsa-65"
    case hybrid = "ed25519+ml-dsa-65"

    /// The name `bulwark keys generate --algorithm` takes.
    public var optionName: String {
        switch self {
        case .ed25519: "ed25519"
        case .p256: "p256"
        case .mldsa65: "mldsa65"
        case .hybrid: "hybrid"
        }
    }

    /// What every signature of this algorithm signs besides the manifest: a label that binds it to
    /// its algorithm, so one half of a hybrid cannot be passed off as a plain Ed25519 signature.
    /// Plain Ed25519 signs the bytes alone, as Bulwark always has.
    func message(_ bytes: [UInt8]) -> [UInt8] {
        self == .ed25519 ? bytes : Array("bulwark-manifest-signature/\(rawValue)\n".utf8) + bytes
    }

    static let mldsaContext = Array("bulwark-manifest".utf8)
    static let ed25519PublicSize = 32, ed25519SignatureSize = 64
}

/// A private signing key of any `SigningAlgorithm`.
public enum SigningPrivateKey: Sendable {
    case ed25519(Curve25519.Signing.PrivateKey)
    case p256(P256.Signing.PrivateKey)
    case mldsa65(MLDSA65.PrivateKey)
    case hybrid(Curve25519.Signing.PrivateKey, MLDSA65.PrivateKey)

    /// A new random key.
    public static func generate(_ algorithm: SigningAlgorithm) throws -> SigningPrivateKey {
        switch algorithm {
        case .ed25519: .ed25519(Curve25519.Signing.PrivateKey())
        case .p256: .p256(P256.Signing.PrivateKey())
        case .mldsa65: .mldsa65(try MLDSA65.PrivateKey())
        case .hybrid: .hybrid(Curve25519.Signing.PrivateKey(), try MLDSA65.PrivateKey())
        }
    }

    public var algorithm: SigningAlgorithm {
        switch self {
        case .ed25519: .ed25519
        case .p256: .p256
        case .mldsa65: .mldsa65
        case .hybrid: .hybrid
        }
    }

    public var publicKey: SigningPublicKey {
        switch self {
        case .ed25519(let key): .ed25519(key.publicKey)
        case .p256(let key): .p256(key.publicKey)
        case .mldsa65(let key): .mldsa65(key.publicKey)
        case .hybrid(let classical, let postQuantum): .hybrid(classical.publicKey, postQuantum.publicKey)
        }
    }

    /// The private key's bytes as key files store them (for ML-DSA, its 32-byte seed; a hybrid
    /// concatenates Ed25519's 32 bytes and ML-DSA's seed).
    var rawRepresentation: Data {
        switch self {
        case .ed25519(let key): key.rawRepresentation
        case .p256(let key): key.rawRepresentation
        case .mldsa65(let key): key.seedRepresentation
        case .hybrid(let classical, let postQuantum): classical.rawRepresentation + postQuantum.seedRepresentation
        }
    }

    init?(algorithm: SigningAlgorithm, raw: Data) {
        switch algorithm {
        case .ed25519:
            guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else { return nil }
            self = .ed25519(key)
        case .p256:
            guard let key = try? P256.Signing.PrivateKey(rawRepresentation: raw) else { return nil }
            self = .p256(key)
        case .mldsa65:
            guard let key = try? MLDSA65.PrivateKey(seedRepresentation: raw, publicKey: nil) else { return nil }
            self = .mldsa65(key)
        case .hybrid:
            guard raw.count == 64, let classical = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw.prefix(32)),
                  let postQuantum = try? MLDSA65.PrivateKey(seedRepresentation: raw.suffix(32), publicKey: nil) else { return nil }
            self = .hybrid(classical, postQuantum)
        }
    }

    /// Signs `bytes` (a hybrid concatenates the Ed25519 and the ML-DSA-65 signature).
    public func signature(for bytes: [UInt8]) throws -> Data {
        let message = algorithm.message(bytes)
        switch self {
        case .ed25519(let key): return try key.signature(for: message)
        case .p256(let key): return try key.signature(for: message).rawRepresentation
        case .mldsa65(let key): return try key.signature(for: message, context: SigningAlgorithm.mldsaContext)
        case .hybrid(let classical, let postQuantum):
            return try classical.signature(for: message) + postQuantum.signature(for: message, context: SigningAlgorithm.mldsaContext)
        }
    }
}

/// A public signing key of any `SigningAlgorithm`.
public enum SigningPublicKey: Sendable {
    case ed25519(Curve25519.Signing.PublicKey)
    case p256(P256.Signing.PublicKey)
    case mldsa65(MLDSA65.PublicKey)
    case hybrid(Curve25519.Signing.PublicKey, MLDSA65.PublicKey)

    public var algorithm: SigningAlgorithm {
        switch self {
        case .ed25519: .ed25519
        case .p256: .p256
        case .mldsa65: .mldsa65
        case .hybrid: .hybrid
        }
    }

    /// The key's bytes (P-256: the uncompressed X9.63 point; a hybrid concatenates Ed25519's 32
    /// bytes and ML-DSA-65's 1,952).
    public var rawRepresentation: Data {
        switch self {
        case .ed25519(let key): key.rawRepresentation
        case .p256(let key): key.x963Representation
        case .mldsa65(let key): key.rawRepresentation
        case .hybrid(let classical, let postQuantum): classical.rawRepresentation + postQuantum.rawRepresentation
        }
    }

    public init?(algorithm: SigningAlgorithm, raw: Data) {
        switch algorithm {
        case .ed25519:
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { return nil }
            self = .ed25519(key)
        case .p256:
            guard let key = try? P256.Signing.PublicKey(x963Representation: raw) else { return nil }
            self = .p256(key)
        case .mldsa65:
            guard let key = try? MLDSA65.PublicKey(rawRepresentation: raw) else { return nil }
            self = .mldsa65(key)
        case .hybrid:
            let split = SigningAlgorithm.ed25519PublicSize
            guard raw.count > split, let classical = try? Curve25519.Signing.PublicKey(rawRepresentation: raw.prefix(split)),
                  let postQuantum = try? MLDSA65.PublicKey(rawRepresentation: raw.dropFirst(split)) else { return nil }
            self = .hybrid(classical, postQuantum)
        }
    }

    /// Whether `signature` is a valid signature of `bytes` by this key (for a hybrid: both halves).
    public func isValidSignature(_ signature: Data, for bytes: [UInt8]) -> Bool {
        let message = algorithm.message(bytes)
        switch self {
        case .ed25519(let key):
            return key.isValidSignature(signature, for: message)
        case .p256(let key):
            guard let value = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(value, for: message)
        case .mldsa65(let key):
            return key.isValidSignature(signature, for: message, context: SigningAlgorithm.mldsaContext)
        case .hybrid(let classical, let postQuantum):
            let split = SigningAlgorithm.ed25519SignatureSize
            guard signature.count > split else { return false }
            let classicalValid = classical.isValidSignature(signature.prefix(split), for: message)
            let postQuantumValid = postQuantum.isValidSignature(signature.dropFirst(split), for: message, context: SigningAlgorithm.mldsaContext)
            return classicalValid && postQuantumValid
        }
    }

    /// A short fingerprint: the first 16 hex digits of the SHA-256 of the key's bytes.
    public var fingerprint: String { String(FileDigest.sha256(rawRepresentation).prefix(16)) }

    /// The same algorithm and the same key bytes.
    public func sameKey(as other: SigningPublicKey) -> Bool {
        algorithm == other.algorithm && rawRepresentation == other.rawRepresentation
    }
}

/// Signing key pairs for manifests, stored as small JSON files:
/// `{"algorithm": "ed25519", "private_key": "<base64>"}` (0600) and `{"algorithm": "ed25519", "public_key": "<base64>"}`;
/// `algorithm` is one of `SigningAlgorithm`'s names.
public enum SigningKeys {
    public static let privateKeyName = "bulwark-signing.key"
    public static let publicKeyName = "bulwark-signing.pub"

    /// Generates a key pair into `directory` (created if needed); refuses to overwrite a key.
    /// - Returns: the paths of the private and the public key.
    public static func generate(into directory: String, algorithm: SigningAlgorithm = .ed25519) throws -> (privateKey: String, publicKey: String) {
        let key = try SigningPrivateKey.generate(algorithm)
        return try AsymmetricKeyFile.writePair(into: directory, privateName: privateKeyName, publicName: publicKeyName, algorithm: algorithm.rawValue,
                                               privateKey: key.rawRepresentation, publicKey: key.publicKey.rawRepresentation)
    }

    private static func read(_ path: String) throws -> (AsymmetricKeyFile, SigningAlgorithm) {
        let text = try KeyFiles.readText(path)
        guard let contents = try? JSONDecoder().decode(AsymmetricKeyFile.self, from: Data(text.utf8)) else {
            throw SecurityError.keyFile(path: path, problem: text.contains("-----BEGIN")
                ? "it is a PEM key, which is for OMS model signatures (bulwark sign/verify), not a Bulwark manifest key (made by bulwark keys generate)"
                : "it is not a Bulwark signing key file (made by bulwark keys generate)")
        }
        guard let algorithm = SigningAlgorithm(rawValue: contents.algorithm) else {
            throw SecurityError.keyFile(path: path, problem: "its algorithm '\(displayable(contents.algorithm, limit: 40))' is not one of "
                                        + SigningAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return (contents, algorithm)
    }

    /// Loads a private key, refusing files readable by others.
    public static func loadPrivateKey(_ path: String) throws -> SigningPrivateKey {
        try KeyFiles.checkPermissions(path)
        let (contents, algorithm) = try read(path)
        guard let text = contents.privateKey, let raw = Data(base64Encoded: text),
              let key = SigningPrivateKey(algorithm: algorithm, raw: raw) else {
            throw SecurityError.keyFile(path: path, problem: "it holds no valid \(algorithm.rawValue) private key")
        }
        return key
    }

    /// Loads a public key file (or the public half of a private key file).
    public static func loadPublicKey(_ path: String) throws -> SigningPublicKey {
        let (contents, algorithm) = try read(path)
        if let text = contents.publicKey, let raw = Data(base64Encoded: text),
           let key = SigningPublicKey(algorithm: algorithm, raw: raw) {
            return key
        }
        if contents.privateKey != nil { return try loadPrivateKey(path).publicKey }
        throw SecurityError.keyFile(path: path, problem: "it holds no valid \(algorithm.rawValue) public key")
    }
}

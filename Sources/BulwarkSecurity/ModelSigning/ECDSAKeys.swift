import Crypto
import Foundation

/// An ECDSA public key of the curves OpenSSF Model Signing's key method allows (P-256, P-384,
/// P-521), read from a PEM SubjectPublicKeyInfo file. Each curve hashes with its own SHA-2
/// (SHA-256, SHA-384, SHA-512), and signatures are ASN.1 DER, as Python's `cryptography` writes.
public enum ECDSAPublicKey: Sendable {
    case p256(P256.Signing.PublicKey)
    case p384(P384.Signing.PublicKey)
    case p521(P521.Signing.PublicKey)

    /// Parses a PEM public key (`-----BEGIN PUBLIC KEY-----`).
    /// - Throws: `SecurityError.keyFile` naming `source` if it is not a P-256, P-384 or P-521 key.
    public init(pem text: String, source: String) throws {
        // Tools such as certtool write a text preamble before the PEM block; only the block counts.
        let pem = Self.block(of: text, label: "PUBLIC KEY") ?? text
        if let key = try? P256.Signing.PublicKey(pemRepresentation: pem) {
            self = .p256(key)
        } else if let key = try? P384.Signing.PublicKey(pemRepresentation: pem) {
            self = .p384(key)
        } else if let key = try? P521.Signing.PublicKey(pemRepresentation: pem) {
            self = .p521(key)
        } else {
            throw SecurityError.keyFile(path: source, problem: text.contains("PRIVATE KEY")
                ? "it holds a private key; give the public key (openssl pkey -in KEY -pubout -out PUB.pem)"
                : "it is not a PEM ECDSA public key on P-256, P-384 or P-521 (-----BEGIN PUBLIC KEY-----)")
        }
    }

    /// The first `-----BEGIN label-----` … `-----END label-----` block of `text`, if any.
    static func block(of text: String, label: String) -> String? {
        guard let begin = text.range(of: "-----BEGIN \(label)-----"),
              let end = text.range(of: "-----END \(label)-----", range: begin.upperBound..<text.endIndex) else { return nil }
        return String(text[begin.lowerBound..<end.upperBound]) + "\n"
    }

    /// Reads a PEM public key file.
    public static func load(_ path: String) throws -> ECDSAPublicKey {
        try ECDSAPublicKey(pem: try KeyFiles.readText(path), source: path)
    }

    /// The curve's name as OMS's algorithm registry writes it.
    public var curve: String {
        switch self {
        case .p256: "secp256r1"
        case .p384: "secp384r1"
        case .p521: "secp521r1"
        }
    }

    /// The DER SubjectPublicKeyInfo.
    public var derRepresentation: Data {
        switch self {
        case .p256(let key): key.derRepresentation
        case .p384(let key): key.derRepresentation
        case .p521(let key): key.derRepresentation
        }
    }

    /// The key as PEM, laid out as Python's `cryptography` writes it: 64-character base64 lines,
    /// each ending in a newline.
    public var pemText: String {
        let base64 = derRepresentation.base64EncodedString()
        var lines: [Substring] = []
        var start = base64.startIndex
        while start < base64.endIndex {
            let end = base64.index(start, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
            lines.append(base64[start..<end])
            start = end
        }
        return "-----BEGIN PUBLIC KEY-----\n" + lines.map { $0 + "\n" }.joined() + "-----END PUBLIC KEY-----\n"
    }

    /// The `publicKey.hint` of a key-signed Sigstore bundle: the hex SHA-256 of `pemText`.
    public var hint: String { FileDigest.sha256(Data(pemText.utf8)) }

    /// A short fingerprint for messages: the hint's first 16 hex digits.
    public var fingerprint: String { String(hint.prefix(16)) }

    /// Whether `der` is a valid DER signature of `message` (hashed with the curve's SHA-2).
    public func isValidSignature(der: Data, for message: some DataProtocol) -> Bool {
        switch self {
        case .p256(let key):
            guard let signature = try? P256.Signing.ECDSASignature(derRepresentation: der) else { return false }
            return key.isValidSignature(signature, for: message)
        case .p384(let key):
            guard let signature = try? P384.Signing.ECDSASignature(derRepresentation: der) else { return false }
            return key.isValidSignature(signature, for: message)
        case .p521(let key):
            guard let signature = try? P521.Signing.ECDSASignature(derRepresentation: der) else { return false }
            return key.isValidSignature(signature, for: message)
        }
    }

    /// Whether two keys are the same key.
    public func sameKey(as other: ECDSAPublicKey) -> Bool { derRepresentation == other.derRepresentation }
}

/// An ECDSA private key on P-256, P-384 or P-521, read from PEM (PKCS#8 `PRIVATE KEY` or SEC1
/// `EC PRIVATE KEY`, unencrypted), kept readable by its owner only.
public enum ECDSAPrivateKey: Sendable {
    case p256(P256.Signing.PrivateKey)
    case p384(P384.Signing.PrivateKey)
    case p521(P521.Signing.PrivateKey)

    public init(pem: String, source: String) throws {
        if pem.contains("ENCRYPTED PRIVATE KEY") {
            throw SecurityError.keyFile(path: source, problem: "it is password-protected, which Bulwark does not read; "
                                        + "decrypt a copy into a 0600 file with: openssl pkey -in \(source) -out KEY.pem")
        }
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: pem) {
            self = .p256(key)
        } else if let key = try? P384.Signing.PrivateKey(pemRepresentation: pem) {
            self = .p384(key)
        } else if let key = try? P521.Signing.PrivateKey(pemRepresentation: pem) {
            self = .p521(key)
        } else {
            throw SecurityError.keyFile(path: source, problem: "it is not a PEM ECDSA private key on P-256, P-384 or P-521 "
                                        + "(make one with: openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out KEY.pem)")
        }
    }

    /// Reads a PEM private key file, refusing one that group or others may read.
    public static func load(_ path: String) throws -> ECDSAPrivateKey {
        try KeyFiles.checkPermissions(path)
        return try ECDSAPrivateKey(pem: try KeyFiles.readText(path), source: path)
    }

    public var publicKey: ECDSAPublicKey {
        switch self {
        case .p256(let key): .p256(key.publicKey)
        case .p384(let key): .p384(key.publicKey)
        case .p521(let key): .p521(key.publicKey)
        }
    }

    /// A DER signature of `message`, hashed with the curve's SHA-2.
    public func signature(for message: some DataProtocol) throws -> Data {
        switch self {
        case .p256(let key): try key.signature(for: message).derRepresentation
        case .p384(let key): try key.signature(for: message).derRepresentation
        case .p521(let key): try key.signature(for: message).derRepresentation
        }
    }

    /// The key as PKCS#8 PEM.
    public var pemRepresentation: String {
        switch self {
        case .p256(let key): key.pemRepresentation
        case .p384(let key): key.pemRepresentation
        case .p521(let key): key.pemRepresentation
        }
    }
}

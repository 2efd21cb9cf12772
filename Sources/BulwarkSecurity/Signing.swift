import Crypto
import Foundation
import _FileSystem

/// Ed25519 key pairs for signing manifests (Bernstein et al., 2012), stored as small JSON files:
/// `{"algorithm": "ed25519", "private_key": "<base64>"}` (0600) and `{"algorithm": "ed25519", "public_key": "<base64>"}`.
public enum SigningKeys {
    public static let privateKeyName = "bulwark-signing.key"
    public static let publicKeyName = "bulwark-signing.pub"

    struct KeyFileContents: Codable {
        var algorithm: String
        var privateKey: String?
        var publicKey: String?
        enum CodingKeys: String, CodingKey {
            case algorithm
            case privateKey = "private_key", publicKey = "public_key"
        }
    }

    /// Generates a key pair into `directory` (created if needed); refuses to overwrite a key.
    /// - Returns: the paths of the private and the public key.
    public static func generate(into directory: String) throws -> (privateKey: String, publicKey: String) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let privatePath = directory + "/" + privateKeyName, publicPath = directory + "/" + publicKeyName
        for path in [privatePath, publicPath] where FileManager.default.fileExists(atPath: path) {
            throw SecurityError.keyFile(path: path, problem: "already exists; Bulwark does not overwrite keys (move it away first)")
        }
        let key = Curve25519.Signing.PrivateKey()
        try write(KeyFileContents(algorithm: "ed25519", privateKey: Data(key.rawRepresentation).base64EncodedString()),
                  to: privatePath, permissions: 0o600)
        try write(KeyFileContents(algorithm: "ed25519", publicKey: Data(key.publicKey.rawRepresentation).base64EncodedString()),
                  to: publicPath, permissions: AtomicFile.defaultPermissions)
        return (privatePath, publicPath)
    }

    private static func write(_ contents: KeyFileContents, to path: String, permissions: mode_t) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try AtomicFile.write(Array(try encoder.encode(contents)) + [UInt8(ascii: "\n")], to: path, permissions: permissions)
    }

    private static func read(_ path: String) throws -> KeyFileContents {
        let text = try KeyFiles.readText(path)
        guard let contents = try? JSONDecoder().decode(KeyFileContents.self, from: Data(text.utf8)), contents.algorithm == "ed25519" else {
            throw SecurityError.keyFile(path: path, problem: "it is not a Bulwark Ed25519 key file (made by bulwark keys generate)")
        }
        return contents
    }

    /// Loads a private key, refusing files readable by others.
    public static func loadPrivateKey(_ path: String) throws -> Curve25519.Signing.PrivateKey {
        try KeyFiles.checkPermissions(path)
        guard let text = try read(path).privateKey, let raw = Data(base64Encoded: text),
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw SecurityError.keyFile(path: path, problem: "it holds no valid Ed25519 private key")
        }
        return key
    }

    /// Loads a public key file (or the public half of a private key file).
    public static func loadPublicKey(_ path: String) throws -> Curve25519.Signing.PublicKey {
        let contents = try read(path)
        if let text = contents.publicKey, let raw = Data(base64Encoded: text),
           let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) {
            return key
        }
        if contents.privateKey != nil { return try loadPrivateKey(path).publicKey }
        throw SecurityError.keyFile(path: path, problem: "it holds no valid Ed25519 public key")
    }

    /// A short fingerprint of a public key: the first 16 hex digits of its SHA-256.
    public static func fingerprint(_ key: Curve25519.Signing.PublicKey) -> String {
        String(FileDigest.sha256(Data(key.rawRepresentation)).prefix(16))
    }
}

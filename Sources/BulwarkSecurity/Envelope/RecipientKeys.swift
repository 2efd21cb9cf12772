import Crypto
import Foundation
import _FileSystem

/// X-Wing key pairs (ML-KEM-768 + X25519, draft-connolly-cfrg-xwing-kem) for encrypting files to
/// recipients, as age does with X25519: anyone with the public key can encrypt to it, only the
/// private key decrypts, and no symmetric key is shared. X-Wing stays secure if either ML-KEM-768
/// (post-quantum) or X25519 (classical) does, so files recorded today cannot be opened by a future
/// quantum computer that breaks X25519 alone.
///
/// Files: `{"algorithm": "x-wing", "private_key": "<base64 32-byte seed>"}` (0600) and
/// `{"algorithm": "x-wing", "public_key": "<base64 1,216 bytes>"}`.
public enum RecipientKeys {
    public static let algorithm = "x-wing"
    public static let privateKeyName = "bulwark-recipient.key"
    public static let publicKeyName = "bulwark-recipient.pub"

    /// Generates a key pair into `directory`; refuses to overwrite a key.
    public static func generate(into directory: String) throws -> (privateKey: String, publicKey: String) {
        let key = try XWingMLKEM768X25519.PrivateKey.generate()
        return try AsymmetricKeyFile.writePair(into: directory, privateName: privateKeyName, publicName: publicKeyName, algorithm: algorithm,
                                               privateKey: key.seedRepresentation, publicKey: key.publicKey.rawRepresentation)
    }

    private static func read(_ path: String) throws -> AsymmetricKeyFile {
        let text = try KeyFiles.readText(path)
        guard let contents = try? JSONDecoder().decode(AsymmetricKeyFile.self, from: Data(text.utf8)), contents.algorithm == algorithm else {
            throw SecurityError.keyFile(path: path, problem: "it is not an X-Wing recipient key file (made by bulwark keys generate --algorithm xwing)")
        }
        return contents
    }

    /// Loads a recipient's public key (or the public half of a private key file).
    public static func loadPublicKey(_ path: String) throws -> XWingMLKEM768X25519.PublicKey {
        let contents = try read(path)
        if let text = contents.publicKey, let raw = Data(base64Encoded: text), let key = try? XWingMLKEM768X25519.PublicKey(rawRepresentation: raw) {
            return key
        }
        if contents.privateKey != nil { return try loadPrivateKey(path).publicKey }
        throw SecurityError.keyFile(path: path, problem: "it holds no valid X-Wing public key")
    }

    /// Loads a private key (an identity), refusing files readable by others.
    public static func loadPrivateKey(_ path: String) throws -> XWingMLKEM768X25519.PrivateKey {
        try KeyFiles.checkPermissions(path)
        guard let text = try read(path).privateKey, let seed = Data(base64Encoded: text), seed.count == 32,
              let key = try? XWingMLKEM768X25519.PrivateKey(seedRepresentation: seed, publicKey: nil) else {
            throw SecurityError.keyFile(path: path, problem: "it holds no valid X-Wing private key (a 32-byte seed)")
        }
        return key
    }

    /// A recipient's short name: the first 16 hex digits of the SHA-256 of its public key.
    public static func fingerprint(_ key: XWingMLKEM768X25519.PublicKey) -> String {
        String(FileDigest.sha256(key.rawRepresentation).prefix(16))
    }
}

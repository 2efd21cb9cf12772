import Crypto
import Foundation
import Glibc
import _FileSystem

/// A 32-byte secret key for encryption at rest: AES-256-GCM uses all of it; Fernet uses the first
/// 16 bytes to sign (HMAC-SHA256) and the last 16 to encrypt (AES-128-CBC), exactly as Python's
/// `cryptography.fernet` does with a key from `Fernet.generate_key()`.
///
/// Keys come from a key file or an environment variable, never from a command-line value (which
/// would end up in shell history and process listings).
public struct DataKey: Sendable, Equatable {
    public static let environmentVariable = "BULWARK_DATA_KEY"
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else {
            throw SecurityError.missingKey("a data key must be 32 bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    private init(randomKey: SymmetricKey) {
        bytes = randomKey.withUnsafeBytes { Array($0) }
    }

    /// A new random key (from the operating system's CSPRNG).
    public static func generate() -> DataKey {
        DataKey(randomKey: SymmetricKey(size: .bits256))
    }

    /// The key as written in key files: URL-safe base64 (44 characters), as `Fernet.generate_key()` writes.
    public var text: String { Base64.urlSafeEncode(bytes) }

    /// Reads a key file (base64 or URL-safe base64 of 32 bytes, surrounding whitespace ignored).
    /// - Throws: `SecurityError.keyFile` if the file is readable by group or others, or malformed.
    public static func load(path: String) throws -> DataKey {
        try KeyFiles.checkPermissions(path)
        let text = try KeyFiles.readText(path)
        guard let bytes = Base64.decodeEither(text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == 32 else {
            throw SecurityError.keyFile(path: path, problem: "it must hold the base64 of 32 bytes (as written by bulwark keys new-data-key or Fernet.generate_key())")
        }
        return try DataKey(bytes: bytes)
    }

    /// The key from `--key-file` if given, else from `$BULWARK_DATA_KEY`, else nil.
    public static func resolve(keyFile: String?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DataKey? {
        if let keyFile { return try load(path: keyFile) }
        guard let text = environment[environmentVariable], !text.isEmpty else { return nil }
        guard let bytes = Base64.decodeEither(text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == 32 else {
            throw SecurityError.missingKey("$\(environmentVariable) must hold the base64 of 32 bytes")
        }
        return try DataKey(bytes: bytes)
    }

    /// Writes the key to a new file readable by the owner only (0600), atomically.
    public func write(to path: String) throws {
        try AtomicFile.write(Array((text + "\n").utf8), to: path, permissions: 0o600)
    }

    var symmetricKey: SymmetricKey { SymmetricKey(data: bytes) }
}

/// The JSON of Bulwark's asymmetric key files (signing keys, recipients):
/// `{"algorithm": …, "private_key": "<base64>"}` or `{"algorithm": …, "public_key": "<base64>"}`.
struct AsymmetricKeyFile: Codable {
    var algorithm: String
    var privateKey: String?
    var publicKey: String?
    enum CodingKeys: String, CodingKey {
        case algorithm
        case privateKey = "private_key", publicKey = "public_key"
    }

    /// Writes the pair into `directory` (created 0700 if needed) as `privateName` (0600) and
    /// `publicName`; refuses to overwrite either.
    static func writePair(into directory: String, privateName: String, publicName: String, algorithm: String,
                          privateKey: Data, publicKey: Data) throws -> (privateKey: String, publicKey: String) {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let privatePath = directory + "/" + privateName, publicPath = directory + "/" + publicName
        for path in [privatePath, publicPath] where FileManager.default.fileExists(atPath: path) {
            throw SecurityError.keyFile(path: path, problem: "already exists; Bulwark does not overwrite keys (move it away first)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try AtomicFile.write(Array(try encoder.encode(AsymmetricKeyFile(algorithm: algorithm, privateKey: privateKey.base64EncodedString()))) + [0x0A],
                             to: privatePath, permissions: 0o600)
        try AtomicFile.write(Array(try encoder.encode(AsymmetricKeyFile(algorithm: algorithm, publicKey: publicKey.base64EncodedString()))) + [0x0A],
                             to: publicPath, permissions: AtomicFile.defaultPermissions)
        return (privatePath, publicPath)
    }
}

/// Shared rules for files holding secrets.
public enum KeyFiles {
    /// Refuses a file that group or others may read or write.
    public static func checkPermissions(_ path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw SecurityError.keyFile(path: path, problem: "cannot be read (\(String(cString: strerror(errno))))")
        }
        let mode = info.st_mode & 0o777
        if mode & 0o077 != 0 {
            throw SecurityError.keyFile(path: path, problem: "its permissions are \(String(mode, radix: 8)), so other users can read it; "
                                        + "make it private with: chmod 600 \(path)")
        }
    }

    static func readText(_ path: String) throws -> String {
        let bytes = try FileReader.readAll(path, limit: 64 << 10)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw SecurityError.keyFile(path: path, problem: "it is not text")
        }
        return text
    }
}

import Foundation
import Glibc
import _FileSystem

/// File-level encryption commands over both formats: Bulwark containers are streamed in chunks,
/// Fernet tokens (a single unchunked token by design) are processed in memory.
public enum DataEncryption {
    public enum Format: Sendable { case container, fernet }

    /// Largest file accepted in Fernet format (it is not chunked).
    public static let fernetLimit = 1 << 30

    public static func encrypt(_ input: String, to output: String, key: DataKey, format: Format) throws {
        switch format {
        case .container:
            try EncryptedContainer.encryptFile(input, to: output, key: key)
        case .fernet:
            let token = try Fernet.encrypt(FileReader.readAll(input, limit: fernetLimit), key: key)
            try AtomicFile.write(Array(token.utf8), to: output)
        }
    }

    /// Decrypts either format (detected from the content) into `output` with mode 0600.
    public static func decrypt(_ input: String, to output: String, key: DataKey?, unwrappers: [KeyUnwrapper] = [], ttl: UInt64? = nil) throws {
        let head = try FileReader.readPrefix(input, count: 8)
        if EnvelopeEncryption.isEnvelope(head) {
            return try EnvelopeEncryption.decryptFile(input, to: output, unwrappers: unwrappers)
        }
        guard let key else {
            throw SecurityError.missingKey("\(input) is encrypted with a data key; give it with --key-file FILE or $\(DataKey.environmentVariable)")
        }
        if EncryptedContainer.isEncrypted(head) {
            try EncryptedContainer.decryptFile(input, to: output, key: key)
        } else if Fernet.isToken(head) {
            let token = String(decoding: try FileReader.readAll(input, limit: fernetLimit * 2), as: UTF8.self)
            try AtomicFile.write(Fernet.decrypt(token, key: key, ttl: ttl, source: input), to: output, permissions: 0o600)
        } else {
            throw SecurityError.invalidContainer(path: input, problem: "it is neither a Bulwark encrypted file (BWENC) nor a Fernet token")
        }
    }

    /// Re-encrypts `path` under `newKey` in place, keeping its format; plaintext never reaches disk.
    public static func rotate(_ link: String, from oldKey: DataKey, to newKey: DataKey) throws {
        // Re-encrypt the file a symlink points to (replacing the link itself would leave the real
        // file readable with the old key).
        guard let real = realpath(link, nil) else { throw FileSystemError.cannotOpen(path: link, reason: String(cString: strerror(errno))) }
        let path = String(cString: real)
        free(real)
        let head = try FileReader.readPrefix(path, count: 8)
        if EnvelopeEncryption.isEnvelope(head) {
            throw SecurityError.invalidContainer(path: path, problem: "it is encrypted to recipients or key-encryption keys (format 2), whose data key is rotated by re-wrapping: bulwark keys rewrap")
        }
        if EncryptedContainer.isEncrypted(head) {
            try EncryptedContainer.reencryptFile(path, from: oldKey, to: newKey)
        } else if Fernet.isToken(head) {
            let token = String(decoding: try FileReader.readAll(path, limit: fernetLimit * 2), as: UTF8.self)
            let plaintext = try Fernet.decrypt(token, key: oldKey, source: path)
            try AtomicFile.write(Array(try Fernet.encrypt(plaintext, key: newKey).utf8), to: path, permissions: AtomicFile.currentPermissions(of: path))
        } else {
            throw SecurityError.invalidContainer(path: path, problem: "it is neither a Bulwark encrypted file (BWENC) nor a Fernet token")
        }
    }
}

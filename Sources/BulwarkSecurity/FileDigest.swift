import Crypto
import Foundation
import _FileSystem

/// SHA-256 digests of files, computed while streaming (bounded memory, one read).
public enum FileDigest {
    /// Lower-case hex SHA-256 of the file at `path`.
    public static func sha256(path: String) throws -> String {
        var hasher = SHA256()
        try FileReader.forEachChunk(of: path) { hasher.update(bufferPointer: $0) }
        return hex(hasher.finalize())
    }

    /// Lower-case hex SHA-256 of `bytes`.
    public static func sha256<Bytes: DataProtocol>(_ bytes: Bytes) -> String {
        hex(SHA256.hash(data: bytes))
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { byte in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
    }
}

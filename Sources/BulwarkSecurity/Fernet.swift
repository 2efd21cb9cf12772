import Crypto
import _CryptoExtras
import Foundation

/// Fernet tokens, byte-compatible with Python's `cryptography.fernet` (spec: github.com/fernet/spec):
/// ```
/// token = base64url(0x80 ‖ timestamp (u64 big-endian, seconds) ‖ IV (16) ‖ AES-128-CBC-PKCS7(plaintext) ‖ HMAC-SHA256)
/// key   = base64url(signing key (16) ‖ encryption key (16)); the HMAC covers everything before it
/// ```
/// Decryption checks, in order: the base64 (strict, URL-safe, padded), the length and version, the
/// HMAC (in constant time), the age (`ttl`) and the clock skew (a token more than 60 s in the future
/// is refused, as Python does), then the padding. Fernet is not chunked: a token is processed in memory.
public enum Fernet {
    public static let version: UInt8 = 0x80
    public static let maximumClockSkew: UInt64 = 60

    /// True if `bytes` looks like a Fernet token (URL-safe base64 of a version-0x80 token).
    public static func isToken(_ bytes: some Collection<UInt8>) -> Bool {
        // The version byte 0x80 in base64url: "g" then a character of value 0…15 (A–P), whatever
        // the timestamp that follows (a far-future one is then refused for what it is).
        let head = Array(bytes.prefix(2))
        return head.count == 2 && head[0] == UInt8(ascii: "g") && (UInt8(ascii: "A")...UInt8(ascii: "P")).contains(head[1])
    }

    /// Encrypts `plaintext` into a token.
    /// - Parameters:
    ///   - now: the timestamp to embed (default: the current time).
    ///   - iv: the 16-byte IV (default: random; fixed IVs are for test vectors only).
    public static func encrypt(_ plaintext: [UInt8], key: DataKey, now: Date = Date(), iv: [UInt8]? = nil) throws -> String {
        var generator = SystemRandomNumberGenerator()
        let iv = iv ?? (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        precondition(iv.count == 16, "a Fernet IV is 16 bytes")
        let timestamp = UInt64(max(0, now.timeIntervalSince1970.rounded(.down)))
        let ciphertext = try AES._CBC.encrypt(plaintext, using: SymmetricKey(data: key.bytes[16..<32]), iv: try AES._CBC.IV(ivBytes: iv))
        var body: [UInt8] = [version]
        withUnsafeBytes(of: timestamp.bigEndian) { body.append(contentsOf: $0) }
        body += iv + Array(ciphertext)
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: key.bytes[0..<16]))
        return Base64.urlSafeEncode(body + Array(mac))
    }

    /// Decrypts a token.
    /// - Parameters:
    ///   - ttl: if given, tokens older than this many seconds are refused.
    ///   - source: a name for error messages.
    /// - Throws: `SecurityError.invalidToken` naming the problem (authentication failures never reveal data).
    public static func decrypt(_ token: some StringProtocol, key: DataKey, ttl: UInt64? = nil, now: Date = Date(),
                               source: String = "token") throws -> [UInt8] {
        func fail(_ problem: String) -> SecurityError { .invalidToken(path: source, problem: problem) }
        guard let data = Base64.urlSafeDecode(token.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw fail("it is not URL-safe base64")
        }
        guard data.count >= 1 + 8 + 16 + 16 + 32, (data.count - 1 - 8 - 16 - 32) % 16 == 0 else {
            throw fail("its length \(data.count) does not fit the format (version, timestamp, IV, whole AES blocks, HMAC)")
        }
        guard data[0] == version else { throw fail("version byte 0x\(String(data[0], radix: 16)) is not 0x80") }
        let body = data[..<(data.count - 32)], mac = data[(data.count - 32)...]
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: SymmetricKey(data: key.bytes[0..<16])) else {
            throw fail("its HMAC does not match: the key is wrong or the token was modified")
        }
        let timestamp = data[1..<9].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let current = UInt64(max(0, now.timeIntervalSince1970.rounded(.down)))
        if let ttl {
            let (expiry, overflow) = timestamp.addingReportingOverflow(ttl)
            if !overflow && expiry < current { throw fail("it has expired (made at \(timestamp), older than the \(ttl) s TTL)") }
        }
        if timestamp > current + maximumClockSkew {
            throw fail("its timestamp is in the future by more than \(maximumClockSkew) s (clock skew)")
        }
        do {
            let plaintext = try AES._CBC.decrypt(data[25..<(data.count - 32)], using: SymmetricKey(data: key.bytes[16..<32]),
                                                 iv: try AES._CBC.IV(ivBytes: data[9..<25]))
            return Array(plaintext)
        } catch {
            throw fail("its padding is invalid")
        }
    }
}

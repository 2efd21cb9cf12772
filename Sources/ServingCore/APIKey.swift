import Crypto
import Foundation
import BulwarkSecurity

/// An API key as a client presents it: `bwk_<id>_<secret>`.
///
/// The id (6 random bytes, base64url) is not secret; it finds the key's entry without comparing
/// secrets. The secret is 256 random bits (base64url, 43 characters). The key file stores only
/// SHA-256(secret): the secret is uniformly random, so a salt or a slow hash adds nothing, and a
/// stolen key file gives no key.
public struct APIKey: Sendable, Equatable {
    public static let prefix = "bwk_"
    public let id: String
    public let secret: String

    /// A new random key.
    public static func generate() -> APIKey {
        // 6 bytes encode to 8 characters without padding; 32 bytes to 43 once the '=' is dropped.
        APIKey(id: Base64.urlSafeEncode(randomBytes(6)), secret: String(Base64.urlSafeEncode(randomBytes(32)).dropLast()))
    }

    private static func randomBytes(_ count: Int) -> [UInt8] {
        // SymmetricKey draws from the system's CSPRNG (getrandom on Linux).
        SymmetricKey(size: .init(bitCount: count * 8)).withUnsafeBytes { Array($0) }
    }

    public init(id: String, secret: String) {
        self.id = id
        self.secret = secret
    }

    /// Parses a presented key, or nil if it does not have the key's form (never says why: the
    /// answer to a malformed key is the same 401 as to an unknown one).
    public init?(parsing text: Substring) {
        guard text.hasPrefix(Self.prefix), text.utf8.count == Self.prefix.utf8.count + 8 + 1 + 43 else { return nil }
        let body = text.dropFirst(Self.prefix.count)
        let id = body.prefix(8), secret = body.dropFirst(9)
        guard body.dropFirst(8).first == "_", Base64.urlSafeDecode(id)?.count == 6, Base64.urlSafeDecode(secret + "=")?.count == 32 else { return nil }
        self.id = String(id)
        self.secret = String(secret)
    }

    /// The text a client sends.
    public var text: String { Self.prefix + id + "_" + secret }

    /// The hex SHA-256 of the secret, as the key file stores it.
    public var secretDigest: String { Self.digest(of: secret) }

    static func digest(of secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}

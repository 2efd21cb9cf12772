import Foundation

/// Strict base64 decoding, for keys and Fernet tokens: the URL-safe alphabet (RFC 4648 §5) or the
/// standard one, with correct padding and nothing after it.
public enum Base64 {
    public static func urlSafeEncode(_ bytes: some Collection<UInt8>) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    /// Decodes URL-safe base64 with padding (as Fernet tokens and keys are written); nil if any
    /// character is outside the URL-safe alphabet, the padding is wrong, or data follows it.
    public static func urlSafeDecode(_ text: some StringProtocol) -> [UInt8]? {
        let scalars = Array(text.utf8)
        guard scalars.count % 4 == 0 else { return nil }
        var padding = 0
        for (index, c) in scalars.enumerated() {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"):
                if padding > 0 { return nil }
            case UInt8(ascii: "="):
                padding += 1
                if padding > 2 || index < scalars.count - 2 { return nil }
            default:
                return nil
            }
        }
        let standard = String(decoding: scalars, as: UTF8.self)
            .replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        return Data(base64Encoded: standard).map { [UInt8]($0) }
    }

    /// Decodes standard or URL-safe base64 (key files may hold either).
    public static func decodeEither(_ text: some StringProtocol) -> [UInt8]? {
        let urlSafe = String(text).replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        return urlSafeDecode(urlSafe)
    }
}

import Foundation

/// A strict reading of JSON that a security decision rests on (model headers, manifests,
/// configurations, reports), checked before `JSONDecoder` sees it, so that every JSON parser reads
/// the same bytes the same way (no parser differential):
/// - a key repeated in one object is an error (parsers disagree on which one wins);
/// - numbers under `integerKeys` (at any depth, also inside arrays) must be written as integers
///   (`10`, not `10.0` or `1e1`): Foundation would read `10.0` as the integer 10, other tools would not;
/// - nesting is bounded, and the text must be exactly one JSON value (RFC 8259).
public enum StrictJSON {
    public static let maximumDepth = 128

    /// Why the text was refused, with a JSON path (`$.files["m.safetensors"].size`).
    public struct Violation: Error, CustomStringConvertible, Equatable {
        public let path: String
        public let problem: String
        public var description: String { "\(problem) at \(path)" }
    }

    /// Keys whose values are whole numbers in Bulwark's files (counts, seeds, sizes, shapes).
    public static let integerKeys: Set<String> = [
        "n", "seed", "steps", "restarts", "queries", "target_classes", "binary_search_steps", "square_queries", "epochs",
        "batch_size", "check_examples", "limit", "label_column", "every", "height", "width", "channels", "in", "out",
        "correct", "successes", "success_n", "parameters", "iterations", "size", "shape", "data_offsets",
    ]

    /// `validate`, then `JSONDecoder`; a number the decoder cannot fit in its field (Foundation then
    /// says only "not valid JSON") is reported as what it is.
    /// - Throws: `Violation`, or the decoder's `DecodingError`.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: some Collection<UInt8>,
                                            integerKeys: Set<String> = StrictJSON.integerKeys) throws -> T {
        try validate(bytes, integerKeys: integerKeys)
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.isEmpty && context.debugDescription.contains("not valid JSON") {
            throw Violation(path: "$", problem: "a number does not fit its field (too large for it, beyond ±3.4e38 for a 32-bit float, or negative where a count belongs)")
        }
    }

    /// `decode`, and unknown fields are errors too: every key of `bytes` (except those holding null)
    /// must survive decoding and re-encoding the value, so a field no Bulwark type reads cannot
    /// carry meaning for another reader. For types with many nested parts (reports), where
    /// listing each part's keys would be fragile.
    /// - Throws: `Violation` naming the first unknown field's path.
    public static func decodeRejectingUnknownFields<T: Codable>(_ type: T.Type, from bytes: some Collection<UInt8>,
                                                                integerKeys: Set<String> = StrictJSON.integerKeys) throws -> T {
        let value = try decode(T.self, from: bytes, integerKeys: integerKeys)
        let original = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        let reencoded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(value), options: [.fragmentsAllowed])
        if let path = firstUnknownKey(original, reencoded, path: "$") {
            throw Violation(path: path, problem: "unknown field (no Bulwark version writes it; a file with it was edited or made by another tool)")
        }
        return value
    }

    private static func firstUnknownKey(_ original: Any, _ kept: Any, path: String) -> String? {
        if let object = original as? [String: Any] {
            guard let keptObject = kept as? [String: Any] else { return nil }
            for key in object.keys.sorted() where !(object[key] is NSNull) {
                guard let child = keptObject[key] else { return path + "[\"" + key + "\"]" }
                if let found = firstUnknownKey(object[key]!, child, path: path + "[\"" + key + "\"]") { return found }
            }
        } else if let array = original as? [Any], let keptArray = kept as? [Any] {
            for (index, (element, keptElement)) in zip(array, keptArray).enumerated() {
                if let found = firstUnknownKey(element, keptElement, path: path + "[\(index)]") { return found }
            }
        }
        return nil
    }

    /// - Throws: `Violation` for the first problem found.
    public static func validate(_ bytes: some Collection<UInt8>, integerKeys: Set<String> = []) throws {
        var parser = Parser(bytes: Array(bytes), integerKeys: integerKeys)
        parser.skipSpace()
        try parser.value(path: "$", key: nil, depth: 0)
        parser.skipSpace()
        guard parser.index == parser.bytes.count else { throw parser.fail("$", "unexpected text after the JSON value") }
    }

    private struct Parser {
        let bytes: [UInt8]
        let integerKeys: Set<String>
        var index = 0

        init(bytes: [UInt8], integerKeys: Set<String>) {
            self.bytes = bytes
            self.integerKeys = integerKeys
        }

        func fail(_ path: String, _ problem: String) -> Violation { Violation(path: path, problem: problem) }

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        mutating func expect(_ literal: String, path: String) throws {
            let expected = Array(literal.utf8)
            guard index + expected.count <= bytes.count, Array(bytes[index..<(index + expected.count)]) == expected else {
                throw fail(path, "invalid JSON (expected \(literal))")
            }
            index += expected.count
        }

        /// One value; `key` is the object key it belongs to (inherited by array elements).
        mutating func value(path: String, key: String?, depth: Int) throws {
            guard depth <= StrictJSON.maximumDepth else { throw fail(path, "JSON nested deeper than \(StrictJSON.maximumDepth) levels") }
            guard index < bytes.count else { throw fail(path, "invalid JSON (the text ends early)") }
            switch bytes[index] {
            case UInt8(ascii: "{"): try object(path: path, depth: depth)
            case UInt8(ascii: "["): try array(path: path, key: key, depth: depth)
            case UInt8(ascii: "\""): _ = try string(path: path)
            case UInt8(ascii: "t"): try expect("true", path: path)
            case UInt8(ascii: "f"): try expect("false", path: path)
            case UInt8(ascii: "n"): try expect("null", path: path)
            default: try number(path: path, key: key)
            }
        }

        mutating func object(path: String, depth: Int) throws {
            index += 1
            var seen = Set<String>()
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return }
            while true {
                skipSpace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail(path, "invalid JSON (expected a key)") }
                let name = try string(path: path)
                let child = path + "[\"" + name + "\"]"
                guard seen.insert(name).inserted else {
                    throw fail(child, "the key \"\(name)\" appears twice in one object (JSON parsers disagree on which one counts)")
                }
                skipSpace()
                try expect(":", path: child)
                skipSpace()
                try value(path: child, key: name, depth: depth + 1)
                skipSpace()
                guard index < bytes.count else { throw fail(path, "invalid JSON (an object is not closed)") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == UInt8(ascii: "}") { index += 1; return }
                throw fail(child, "invalid JSON (expected , or } after a value)")
            }
        }

        mutating func array(path: String, key: String?, depth: Int) throws {
            index += 1
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return }
            var position = 0
            while true {
                skipSpace()
                try value(path: path + "[\(position)]", key: key, depth: depth + 1)
                skipSpace()
                guard index < bytes.count else { throw fail(path, "invalid JSON (an array is not closed)") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; position += 1; continue }
                if bytes[index] == UInt8(ascii: "]") { index += 1; return }
                throw fail(path, "invalid JSON (expected , or ] in an array)")
            }
        }

        /// A string's contents, with every escape decoded as JSON decoders do (so two spellings of
        /// one key count as the same key); a lone surrogate escape is an error.
        mutating func string(path: String) throws -> String {
            index += 1
            var text = String.UnicodeScalarView()
            var raw: [UInt8] = []  // unescaped bytes since the last escape
            func flush() throws {
                guard let run = String(validating: raw, as: UTF8.self) else { throw fail(path, "a string is not valid UTF-8") }
                text.append(contentsOf: run.unicodeScalars)
                raw.removeAll(keepingCapacity: true)
            }
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    try flush()
                    return String(text)
                }
                guard byte >= 0x20 else { throw fail(path, "invalid JSON (a control character inside a string)") }
                guard byte == UInt8(ascii: "\\") else {
                    raw.append(byte)
                    index += 1
                    continue
                }
                guard index + 1 < bytes.count else { break }
                try flush()
                let escaped = bytes[index + 1]
                index += 2
                let simple: [UInt8: Unicode.Scalar] = [0x22: "\"", 0x5C: "\\", 0x2F: "/", 0x62: "\u{08}", 0x66: "\u{0C}",
                                                        0x6E: "\n", 0x72: "\r", 0x74: "\t"]
                if let scalar = simple[escaped] {
                    text.append(scalar)
                    continue
                }
                guard escaped == UInt8(ascii: "u"), var code = hex4(path: path) else { throw fail(path, "invalid JSON (a bad escape in a string)") }
                if (0xD800...0xDBFF).contains(code) {
                    // A high surrogate must be followed by an escaped low one; together they are one scalar.
                    guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                        throw fail(path, "invalid JSON (a lone surrogate escape \\u\(String(code, radix: 16)))")
                    }
                    index += 2
                    guard let low = hex4(path: path), (0xDC00...0xDFFF).contains(low) else {
                        throw fail(path, "invalid JSON (a lone surrogate escape \\u\(String(code, radix: 16)))")
                    }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else {
                    throw fail(path, "invalid JSON (a lone surrogate escape \\u\(String(code, radix: 16)))")
                }
                text.append(scalar)
            }
            throw fail(path, "invalid JSON (a string is not closed)")
        }

        /// Four hex digits at the index (consumed), or nil.
        mutating func hex4(path: String) -> UInt32? {
            guard index + 4 <= bytes.count, bytes[index..<(index + 4)].allSatisfy({ isHexDigit($0) }),
                  let value = UInt32(String(decoding: bytes[index..<(index + 4)], as: UTF8.self), radix: 16) else { return nil }
            index += 4
            return value
        }

        func isHexDigit(_ byte: UInt8) -> Bool {
            (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
        }

        /// A number by RFC 8259's grammar: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?
        mutating func number(path: String, key: String?) throws {
            let start = index
            func digits() -> Int {
                let first = index
                while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1 }
                return index - first
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, (0x30...0x39).contains(bytes[index]) else { throw fail(path, "invalid JSON (expected a value)") }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
                if index < bytes.count, (0x30...0x39).contains(bytes[index]) { throw fail(path, "invalid JSON (a number with a leading zero)") }
            } else {
                _ = digits()
            }
            var integral = true
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                integral = false
                guard digits() > 0 else { throw fail(path, "invalid JSON (a number ends after its decimal point)") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                integral = false
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard digits() > 0 else { throw fail(path, "invalid JSON (a number's exponent has no digits)") }
            }
            if let key, integerKeys.contains(key), !integral {
                let text = String(decoding: bytes[start..<index], as: UTF8.self)
                throw fail(path, "\"\(key)\" must be an integer, written as one (got \(text))")
            }
        }
    }
}

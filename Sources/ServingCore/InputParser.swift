import Foundation
import _FileSystem

/// Why a predict body was refused: the HTTP status (400 for bytes that are not JSON, 422 for JSON
/// that does not hold valid inputs), a stable slug, and the JSON Pointer of the offending field.
public struct InputProblem: Error, Equatable, Sendable, CustomStringConvertible {
    public let status: Int
    public let slug: String
    public let detail: String
    public let field: String?
    public var description: String { "\(status) \(slug): \(detail)" + (field.map { " (at \($0))" } ?? "") }

    static func invalidInput(_ detail: String, field: String) -> InputProblem {
        InputProblem(status: 422, slug: "invalid-input", detail: detail, field: field)
    }

    static func malformed(_ detail: String) -> InputProblem {
        InputProblem(status: 400, slug: "malformed-body", detail: detail, field: nil)
    }
}

/// The rows of a predict request, parsed in one pass from the body straight into the input matrix.
public struct PredictInput: Sendable {
    public let rows: Int
    /// Row-major values, `rows × width`.
    public let values: [Float]

    public init(rows: Int, values: [Float]) {
        (self.rows, self.values) = (rows, values)
    }
}

/// Parses predict bodies and says exactly what is wrong with a bad one (an `InputProblem` with the JSON
/// Pointer of the offending field): 400 for bytes that are not JSON, 422 for JSON that does not hold
/// valid inputs (an unknown field, a row of the wrong length, a value that is not a number, not
/// finite or outside [0, 1], no rows or too many).
public struct InputParser: Sendable {
    public let width: Int
    public let maxRows: Int

    public init(width: Int, maxRows: Int) {
        self.width = width
        self.maxRows = maxRows
    }

    /// Largest JSON body accepted: every value written with up to 24 characters and a separator.
    public var maxJSONBytes: Int { 1024 + maxRows * width * 25 }
    /// The exact size limit of a float32 body.
    public var maxBinaryBytes: Int { maxRows * width * 4 }

    // MARK: - application/octet-stream

    /// Little-endian float32 rows, back to back.
    public func parseFloat32(_ bytes: UnsafeRawBufferPointer) throws(InputProblem) -> PredictInput {
        let rowBytes = width * 4
        guard !bytes.isEmpty, bytes.count % rowBytes == 0 else {
            throw .invalidInput("a float32 body holds whole rows of \(width) little-endian float32 values (\(rowBytes) bytes each); \(bytes.count) bytes is not a positive multiple of \(rowBytes)", field: "")
        }
        let rows = bytes.count / rowBytes
        guard rows <= maxRows else { throw tooManyRows(rows) }
        var values = [Float](repeating: 0, count: rows * width)
        try values.withUnsafeMutableBufferPointer { (output) throws(InputProblem) in
            for i in 0..<output.count {
                let value = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                try check(value, row: i / width, column: i % width)
                output[i] = value
            }
        }
        return PredictInput(rows: rows, values: values)
    }

    // MARK: - application/json

    /// `{"inputs": [[v, …], …]}`, nothing else.
    public func parseJSON(_ bytes: UnsafeRawBufferPointer) throws(InputProblem) -> PredictInput {
        var scanner = Scanner(bytes: bytes)
        do {
            return try parse(&scanner)
        } catch let problem as ShapeProblem {
            // Bytes that are not JSON at all are a 400 whatever the fast path tripped over first.
            do { try StrictJSON.validate(bytes) } catch {
                throw .malformed("\(error)")
            }
            throw .invalidInput(problem.detail, field: problem.field)
        } catch let problem as InputProblem {
            throw problem
        } catch {
            throw .malformed("\(error)")
        }
    }

    /// What the fast path found wrong, before the body is known to be valid JSON.
    private struct ShapeProblem: Error {
        let detail: String
        let field: String

        init(detail: String, field: String) { (self.detail, self.field) = (detail, field) }
        init(problem: InputProblem) { (detail, field) = (problem.detail, problem.field ?? "") }
    }

    private func parse(_ s: inout Scanner) throws -> PredictInput {
        s.skipSpace()
        guard s.take(UInt8(ascii: "{")) else { throw ShapeProblem(detail: "the body must be a JSON object {\"inputs\": [[…], …]}", field: "") }
        var values: [Float] = []
        var rows = -1
        s.skipSpace()
        if s.take(UInt8(ascii: "}")) { throw ShapeProblem(detail: "the field \"inputs\" is missing", field: "/inputs") }
        repeat {
            s.skipSpace()
            guard let key = s.simpleString() else { throw ShapeProblem(detail: "unexpected content where a field name belongs", field: "") }
            guard key == "inputs" else {
                throw ShapeProblem(detail: "unknown field \"\(displayable(key, limit: 40))\": the body holds only \"inputs\"", field: "/" + pointerEscaped(key))
            }
            guard rows < 0 else { throw InputProblem.malformed("the field \"inputs\" appears twice") }
            s.skipSpace()
            guard s.take(UInt8(ascii: ":")) else { throw ShapeProblem(detail: "expected ':'", field: "") }
            s.skipSpace()
            rows = try parseRows(&s, into: &values)
            s.skipSpace()
        } while s.take(UInt8(ascii: ","))
        guard s.take(UInt8(ascii: "}")) else { throw ShapeProblem(detail: "expected '}' after \"inputs\"", field: "") }
        s.skipSpace()
        guard s.atEnd else { throw ShapeProblem(detail: "content after the JSON object", field: "") }
        return PredictInput(rows: rows, values: values)
    }

    private func parseRows(_ s: inout Scanner, into values: inout [Float]) throws -> Int {
        guard s.take(UInt8(ascii: "[")) else { throw ShapeProblem(detail: "\"inputs\" must be an array of rows", field: "/inputs") }
        s.skipSpace()
        guard !s.take(UInt8(ascii: "]")) else { throw ShapeProblem(detail: "\"inputs\" holds no rows: send 1 to \(maxRows)", field: "/inputs") }
        values.reserveCapacity(min(maxRows, max(1, s.remaining / (width * 4))) * width)
        var row = 0
        repeat {
            guard row < maxRows else { throw ShapeProblem(problem: tooManyRows(nil)) }
            s.skipSpace()
            guard s.take(UInt8(ascii: "[")) else { throw ShapeProblem(detail: "each row must be an array of \(width) numbers", field: "/inputs/\(row)") }
            var column = 0
            s.skipSpace()
            if !s.peek(UInt8(ascii: "]")) {
                repeat {
                    s.skipSpace()
                    guard column < width else {
                        throw ShapeProblem(detail: "row \(row) has more than \(width) values; every row has exactly \(width)", field: "/inputs/\(row)")
                    }
                    guard let value = s.number() else {
                        throw ShapeProblem(detail: "value \(column) of row \(row) is not a number", field: "/inputs/\(row)/\(column)")
                    }
                    if let problem = invalid(value, row: row, column: column) { throw ShapeProblem(problem: problem) }
                    values.append(value)
                    column += 1
                    s.skipSpace()
                } while s.take(UInt8(ascii: ","))
            }
            guard s.take(UInt8(ascii: "]")) else { throw ShapeProblem(detail: "expected ',' or ']' in row \(row)", field: "/inputs/\(row)") }
            guard column == width else {
                throw ShapeProblem(detail: "row \(row) has \(column) values; every row has exactly \(width)", field: "/inputs/\(row)")
            }
            row += 1
            s.skipSpace()
        } while s.take(UInt8(ascii: ","))
        guard s.take(UInt8(ascii: "]")) else { throw ShapeProblem(detail: "expected ',' or ']' after row \(row - 1)", field: "/inputs") }
        return row
    }

    private func check(_ value: Float, row: Int, column: Int) throws(InputProblem) {
        if let problem = invalid(value, row: row, column: column) { throw problem }
    }

    private func invalid(_ value: Float, row: Int, column: Int) -> InputProblem? {
        guard value.isFinite else {
            return .invalidInput("value \(column) of row \(row) is not finite (NaN, infinite, or beyond the float32 range)", field: "/inputs/\(row)/\(column)")
        }
        guard value >= 0, value <= 1 else {
            return .invalidInput("value \(column) of row \(row) is \(value), outside [0, 1] (pixel intensities scaled to [0, 1])", field: "/inputs/\(row)/\(column)")
        }
        return nil
    }

    private func tooManyRows(_ rows: Int?) -> InputProblem {
        .invalidInput("\(rows.map { "\($0) rows" } ?? "more than \(maxRows) rows"): send at most \(maxRows) per request", field: "/inputs")
    }

    private func pointerEscaped(_ key: String) -> String {
        key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }
}

/// A cursor over the body's bytes with just the JSON the fast path needs.
private struct Scanner {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    var atEnd: Bool { index == bytes.count }
    var remaining: Int { bytes.count - index }

    mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    func peek(_ byte: UInt8) -> Bool { index < bytes.count && bytes[index] == byte }

    mutating func take(_ byte: UInt8) -> Bool {
        guard peek(byte) else { return false }
        index += 1
        return true
    }

    /// A string without escapes (a key with escapes falls back to the full validator's verdict).
    mutating func simpleString() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = index
        while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
            guard bytes[index] != UInt8(ascii: "\\"), bytes[index] >= 0x20 else { return nil }
            index += 1
        }
        guard index < bytes.count else { return nil }
        defer { index += 1 }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    }

    /// A number in RFC 8259's grammar, converted to the nearest float32 (correctly rounded); nil if
    /// the next token is not such a number.
    mutating func number() -> Float? {
        let start = index
        func digit(_ i: Int) -> Bool { i < bytes.count && bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9") }
        var i = index
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard digit(i) else { return nil }
        if bytes[i] == UInt8(ascii: "0") { i += 1 } else { while digit(i) { i += 1 } }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digit(i) else { return nil }
            while digit(i) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digit(i) else { return nil }
            while digit(i) { i += 1 }
        }
        let length = i - start
        guard length < Self.maximumNumberLength else { return nil }
        index = i
        // The standard library's parser: correctly rounded, C locale whatever the process's; a token
        // of up to 15 bytes is a small string, so this allocates nothing.
        return Float(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
    }

    /// Longer number tokens are refused (a value in [0, 1] never needs more digits).
    static let maximumNumberLength = 128
}

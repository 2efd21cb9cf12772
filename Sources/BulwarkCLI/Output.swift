import Foundation
import Logging

/// Machine-readable output: one JSON object per line on stdout, flushed so pipelines see it at once.
enum JSONOutput {
    static func line(_ value: some Encodable) throws {
        print(text(value))
        Console.flushStandardOutput()
    }

    /// One-line JSON with sorted keys (the values Bulwark encodes cannot fail to encode).
    static func text(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// Human-readable text on stderr (progress, notes, warnings), so stdout stays clean for results.
enum Console {
    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }

    /// Pushes buffered stdout text out (stdout is fully buffered when piped).
    static func flushStandardOutput() { fflush(nil) }

    static func note(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}

/// A swift-log handler that prints `bulwark: message` (or `warning: …`) lines to stderr.
struct ConsoleLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let prefix: String = switch event.level {
        case .warning: "warning: "
        case .error, .critical: "error: "
        default: ""
        }
        Console.note(prefix + event.message.description)
    }
}

let log: Logger = {
    var logger = Logger(label: "bulwark") { _ in ConsoleLogHandler() }
    logger.logLevel = ProcessInfo.processInfo.environment["BULWARK_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
    return logger
}()

extension Double {
    /// Fixed-point text with `digits` decimals.
    func formatted(_ digits: Int) -> String { String(format: "%.\(digits)f", self) }
}

/// Any JSON value, for output that embeds JSON documents (metadata entries that hold JSON appear
/// nested, not as strings of JSON).
enum JSONValue: Codable {
    case string(String)
    case integer(Int64)
    case unsigned(UInt64)
    case number(Double)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])

    /// The JSON object or array `text` holds, or the text itself as a string.
    static func parsingIfJSON(_ text: String) -> JSONValue {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("{") || trimmed.hasPrefix("["),
              let value = try? JSONDecoder().decode(JSONValue.self, from: Data(trimmed.utf8)) else { return .string(text) }
        return value
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int64.self) { self = .integer(value) }
        else if let value = try? container.decode(UInt64.self) { self = .unsigned(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .integer(let value): try container.encode(value)
        case .unsigned(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .null: try container.encodeNil()
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

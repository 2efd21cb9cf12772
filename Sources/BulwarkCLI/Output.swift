import Foundation
import Logging

/// Machine-readable output: one JSON object per line on stdout, flushed so pipelines see it at once.
package enum JSONOutput {
    package static func line(_ value: some Encodable) throws {
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
package enum Console {
    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }

    /// Pushes buffered stdout text out (stdout is fully buffered when piped).
    static func flushStandardOutput() { fflush(nil) }

    package static func note(_ message: String) {
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

package let log: Logger = {
    var logger = Logger(label: "bulwark") { _ in ConsoleLogHandler() }
    logger.logLevel = ProcessInfo.processInfo.environment["BULWARK_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
    return logger
}()

extension Double {
    /// Fixed-point text with `digits` decimals.
    func formatted(_ digits: Int) -> String { String(format: "%.\(digits)f", self) }
}


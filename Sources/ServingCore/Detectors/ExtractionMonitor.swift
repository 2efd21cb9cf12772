import Foundation
import TensorCore

/// What the service does to a key whose query stream PRADA flags as model extraction
/// (`extraction_action` in the configuration). Every detection is logged, counted
/// (`bulwark_extraction_detections_total`) and audited (`extraction_suspected`) whatever the action.
public enum ExtractionAction: String, Codable, Sendable, CaseIterable {
    /// Record only: the client sees nothing.
    case log
    /// The key's predictions are limited to `extraction_throttle_rate` requests per second (429
    /// `extraction-throttled` with `Retry-After`).
    case throttle
    /// The key's predictions are refused (403 `extraction-blocked`) until the service restarts.
    case block
}

/// One PRADA stream per (key, model) (Juuti et al. 2019), and the keys flagged so far. Streams of
/// different keys run concurrently; one key's rows are observed in order under its stream's lock.
public final class ExtractionMonitor: Sendable {
    private final class Entry: @unchecked Sendable {  // `stream` only under `lock`
        let lock = NSLock()
        let stream: PRADAStream
        init(_ stream: PRADAStream) { self.stream = stream }
    }

    private let streams = Locked<[String: Entry]>([:])
    private let flagged = Locked<[String: Int]>([:])

    public init() {}

    /// A detection: the key's stream fell below δ at `afterQueries` rows, with W = `w`.
    public struct Detection: Sendable, Equatable {
        public let afterQueries: Int
        public let w: Double
    }

    /// Observes a predict request's rows (rows × width) and the classes the model predicted.
    /// - Returns: the detection when this request flags the key's stream for the first time.
    public func observe(key: String, model: String, detector: PRADADetector, inputs: MatrixRef, predicted: [Int], classes: Int) -> Detection? {
        let entry = streams.withLock { streams in
            let id = key + "\u{0}" + model
            if let entry = streams[id] { return entry }
            let entry = Entry(PRADAStream(settings: detector, width: inputs.columns, classes: classes))
            streams[id] = entry
            return entry
        }
        let detection: Detection? = entry.lock.withLock {
            guard entry.stream.observe(inputs, predicted: predicted), let after = entry.stream.flaggedAfter else { return nil }
            return Detection(afterQueries: after, w: entry.stream.lastW ?? 0)
        }
        if let detection { flagged.withLock { $0[key] = $0[key] ?? detection.afterQueries } }
        return detection
    }

    /// Whether a key has been flagged (on any model).
    public func isFlagged(key: String) -> Bool { flagged.withLock { $0[key] != nil } }

    /// Forgets the streams and flags of keys no longer in the key file.
    public func retain(keys: Set<String>) {
        streams.withLock { streams in streams = streams.filter { keys.contains(String($0.key.prefix { $0 != "\u{0}" })) } }
        flagged.withLock { flagged in flagged = flagged.filter { keys.contains($0.key) } }
    }
}

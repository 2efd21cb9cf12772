import Foundation
import TensorCore

/// What the service does to a key flagged as extracting a model, by PRADA, its hourly volume or
/// its out-of-distribution share (`extraction_action` in the configuration). Every detection is logged, counted
/// (`bulwark_extraction_detections_total`) and audited (`extraction_suspected`) whatever the action.
public enum ExtractionAction: String, Codable, Sendable, CaseIterable {
    /// Record only: the client sees nothing.
    case log
    /// The key's predictions are limited to `extraction_throttle_rate` rows per second (429
    /// `extraction-throttled` with `Retry-After`).
    case throttle
    /// The key's predictions are refused (403 `extraction-blocked`) until the service restarts.
    case block
}

/// One PRADA stream per (key, model) (Juuti et al. 2019), a query-volume count and an
/// out-of-distribution share per key, and the keys flagged so far (each once). Streams of
/// different keys run concurrently; one key's rows are observed in order under its stream's lock.
public final class ExtractionMonitor: Sendable {
    private final class Entry: @unchecked Sendable {  // `stream` only under `lock`
        let lock = NSLock()
        let stream: PRADAStream
        init(_ stream: PRADAStream) { self.stream = stream }
    }

    /// Rows per key in the last hour, in one-minute buckets (the minute each bucket counts).
    private struct Volume {
        var minutes = [Int](repeating: -1, count: 60)
        var rows = [Int](repeating: 0, count: 60)
        var total = 0  // rows observed since the key was first seen
    }

    private let streams = Locked<[String: Entry]>([:])
    private let volumes = Locked<[String: Volume]>([:])
    private let outOfDistribution = Locked<[String: (rows: Int, flagged: Int)]>([:])
    private let flagged = Locked<[String: Int]>([:])
    private let start: ContinuousClock.Instant
    private let now: @Sendable () -> ContinuousClock.Instant

    /// - Parameter now: the clock of the volume signal (tests pass a fake one).
    public init(now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.now = now
        start = now()
    }

    /// A detection: by PRADA, the key's stream fell below δ at `afterQueries` rows, with W = `w`;
    /// by volume, the key sent more rows in an hour than allowed; by out-of-distribution share,
    /// too many of the key's rows lay off the training data.
    public struct Detection: Sendable, Equatable {
        public let afterQueries: Int
        public let w: Double?
        public let detector: String

        public init(afterQueries: Int, w: Double?, detector: String? = nil) {
            (self.afterQueries, self.w) = (afterQueries, w)
            self.detector = detector ?? (w == nil ? "volume" : "prada")
        }
    }

    /// Rows a key must have sent before its out-of-distribution share is judged.
    public static let outOfDistributionMinimumRows = 100

    /// Counts a request's rows and those the out-of-distribution detector flagged: the detection
    /// when the key's share of flagged rows first exceeds `limit` (after at least
    /// `outOfDistributionMinimumRows` rows). Benign clients send what the model was trained on; a
    /// thief querying noise or another dataset does not (which PRADA, measuring distances between
    /// queries, does not notice).
    public func observeOutOfDistribution(key: String, rows: Int, flagged: Int, limit: Double) -> Detection? {
        let detection: Detection? = outOfDistribution.withLock { counts in
            var count = counts[key] ?? (0, 0)
            count.rows += rows
            count.flagged += flagged
            counts[key] = count
            guard count.rows >= Self.outOfDistributionMinimumRows, Double(count.flagged) > limit * Double(count.rows) else { return nil }
            return Detection(afterQueries: count.rows, w: nil, detector: "out-of-distribution")
        }
        guard let detection else { return nil }
        return firstFlag(key, detection)
    }

    /// The detection if it is the key's first, else nil (a key is flagged once).
    private func firstFlag(_ key: String, _ detection: Detection) -> Detection? {
        let first = flagged.withLock { flagged -> Bool in
            guard flagged[key] == nil else { return false }
            flagged[key] = detection.afterQueries
            return true
        }
        return first ? detection : nil
    }

    /// Counts a predict request's rows against the key's hourly volume (a sliding hour in
    /// one-minute buckets): the detection when this request first takes the key past `limit`.
    public func observeVolume(key: String, rows: Int, limit: Int) -> Detection? {
        let elapsed = now() - start
        let minute = Int(elapsed.components.seconds / 60)
        let detection: Detection? = volumes.withLock { volumes in
            var volume = volumes[key] ?? Volume()
            let slot = minute % 60
            if volume.minutes[slot] != minute { (volume.minutes[slot], volume.rows[slot]) = (minute, 0) }
            volume.rows[slot] += rows
            volume.total += rows
            volumes[key] = volume
            let lastHour = zip(volume.minutes, volume.rows).reduce(0) { $0 + ($1.0 > minute - 60 ? $1.1 : 0) }
            return lastHour > limit ? Detection(afterQueries: volume.total, w: nil) : nil
        }
        guard let detection else { return nil }
        return firstFlag(key, detection)
    }

    /// Observes a predict request's rows (rows × width) and the classes the model predicted.
    /// - Returns: the detection when this request flags the key's stream for the first time.
    public func observe(key: String, model: String, detector: PRADADetector, inputs: MatrixRef, predicted: [Int], classes: Int) -> Detection? {
        let entry = streams.withLock { streams in
            let id = key + "\u{0}" + model
            if let entry = streams[id], entry.stream.settings == detector, entry.stream.width == inputs.columns { return entry }  // else: reloaded with new settings
            let entry = Entry(PRADAStream(settings: detector, width: inputs.columns, classes: classes))
            streams[id] = entry
            return entry
        }
        let detection: Detection? = entry.lock.withLock {
            guard entry.stream.observe(inputs, predicted: predicted), let after = entry.stream.flaggedAfter else { return nil }
            return Detection(afterQueries: after, w: entry.stream.flaggedW ?? 0)
        }
        guard let detection else { return nil }
        return firstFlag(key, detection)
    }

    /// Whether a key has been flagged (on any model).
    public func isFlagged(key: String) -> Bool { flagged.withLock { $0[key] != nil } }

    /// Forgets the streams and flags of keys no longer in the key file.
    public func retain(keys: Set<String>) {
        streams.withLock { streams in streams = streams.filter { keys.contains(String($0.key.prefix { $0 != "\u{0}" })) } }
        volumes.withLock { volumes in volumes = volumes.filter { keys.contains($0.key) } }
        outOfDistribution.withLock { counts in counts = counts.filter { keys.contains($0.key) } }
        flagged.withLock { flagged in flagged = flagged.filter { keys.contains($0.key) } }
    }
}

import Crypto
import Foundation
import Glibc
import _FileSystem

/// Everything `bulwark serve` is told: where to listen, with which certificate, which models and
/// keys, and the limits that keep one client from taking the service down.
public struct ServeConfiguration: Sendable {
    public struct TLSFiles: Sendable {
        public let certificatePath: String
        public let keyPath: String
        public init(certificatePath: String, keyPath: String) { (self.certificatePath, self.keyPath) = (certificatePath, keyPath) }
    }

    /// Limits and timeouts (`--config FILE`, a JSON object with these fields in snake_case).
    public struct Limits: Codable, Sendable, Equatable {
        /// Rows per predict request.
        public var maxRows = 256
        /// Requests being handled at once; more are shed with 503.
        public var maxConcurrentRequests = 128
        /// Requests one key may have in flight at once (so one key cannot hold every slot).
        public var maxConcurrentRequestsPerKey = 16
        /// Rows waiting for inference per model; more are shed with 503.
        public var maxQueueRows = 4096
        /// Rows per inference batch.
        public var maxBatchRows = 256
        /// How long the batcher waits for more rows to join a batch.
        public var batchWindowMicroseconds = 200
        /// Open connections; more wait in the kernel's backlog.
        public var maxConnections = 512
        /// A connection with nothing read for this long is closed (slow handshakes and headers).
        public var idleTimeoutSeconds = 15
        /// A request body must arrive within this (slowloris uploads).
        public var bodyTimeoutSeconds = 10
        /// Time for in-flight requests to finish after SIGTERM.
        public var shutdownTimeoutSeconds = 30
        /// A second, plain-HTTP port on 127.0.0.1 for `/metrics` without a key (for a local
        /// Prometheus); none by default.
        public var metricsPort: Int?
        /// What happens to a key that PRADA flags (detectors files with an `extraction` detector).
        public var extractionAction = ExtractionAction.log
        /// Rows per second a throttled key may send (from a bucket of `max_rows`).
        public var extractionThrottleRate = 0.1
        /// Rows one key may send in any hour before it is flagged as extracting (nil: no limit).
        public var extractionMaxRowsPerHour: Int?
        /// The share of a key's rows the out-of-distribution (Mahalanobis) detector may flag before
        /// the key is flagged as extracting (nil: not judged).
        public var extractionMaxOutOfDistributionFraction: Double?

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable {
            case maxRows = "max_rows", maxConcurrentRequests = "max_concurrent_requests", maxQueueRows = "max_queue_rows"
            case maxConcurrentRequestsPerKey = "max_concurrent_requests_per_key"
            case maxBatchRows = "max_batch_rows", batchWindowMicroseconds = "batch_window_microseconds"
            case maxConnections = "max_connections", idleTimeoutSeconds = "idle_timeout_seconds"
            case bodyTimeoutSeconds = "body_timeout_seconds", shutdownTimeoutSeconds = "shutdown_timeout_seconds"
            case metricsPort = "metrics_port"
            case extractionAction = "extraction_action", extractionThrottleRate = "extraction_throttle_rate"
            case extractionMaxRowsPerHour = "extraction_max_rows_per_hour"
            case extractionMaxOutOfDistributionFraction = "extraction_max_ood_fraction"
        }

        public init(from decoder: any Decoder) throws {
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: Set(CodingKeys.allCases.map(\.rawValue)))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Limits()
            maxRows = try c.decodeIfPresent(Int.self, forKey: .maxRows) ?? d.maxRows
            maxConcurrentRequests = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentRequests) ?? d.maxConcurrentRequests
            maxConcurrentRequestsPerKey = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentRequestsPerKey) ?? d.maxConcurrentRequestsPerKey
            maxQueueRows = try c.decodeIfPresent(Int.self, forKey: .maxQueueRows) ?? d.maxQueueRows
            maxBatchRows = try c.decodeIfPresent(Int.self, forKey: .maxBatchRows) ?? d.maxBatchRows
            batchWindowMicroseconds = try c.decodeIfPresent(Int.self, forKey: .batchWindowMicroseconds) ?? d.batchWindowMicroseconds
            maxConnections = try c.decodeIfPresent(Int.self, forKey: .maxConnections) ?? d.maxConnections
            idleTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .idleTimeoutSeconds) ?? d.idleTimeoutSeconds
            bodyTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .bodyTimeoutSeconds) ?? d.bodyTimeoutSeconds
            shutdownTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .shutdownTimeoutSeconds) ?? d.shutdownTimeoutSeconds
            metricsPort = try c.decodeIfPresent(Int.self, forKey: .metricsPort)
            extractionAction = try c.decodeIfPresent(ExtractionAction.self, forKey: .extractionAction) ?? d.extractionAction
            extractionThrottleRate = try c.decodeIfPresent(Double.self, forKey: .extractionThrottleRate) ?? d.extractionThrottleRate
            extractionMaxRowsPerHour = try c.decodeIfPresent(Int.self, forKey: .extractionMaxRowsPerHour)
            extractionMaxOutOfDistributionFraction = try c.decodeIfPresent(Double.self, forKey: .extractionMaxOutOfDistributionFraction)
        }

        /// - Throws: `ServeError.invalidConfiguration` naming the field and its range.
        public func validate() throws {
            func require(_ ok: Bool, _ field: CodingKeys, _ range: String) throws {
                guard ok else { throw ServeError.invalidConfiguration("\(field.rawValue) must be \(range)") }
            }
            try require((1...65536).contains(maxRows), .maxRows, "1 to 65536")
            try require((1...100_000).contains(maxConcurrentRequests), .maxConcurrentRequests, "1 to 100000")
            try require((1...maxConcurrentRequests).contains(maxConcurrentRequestsPerKey), .maxConcurrentRequestsPerKey, "1 to max_concurrent_requests (\(maxConcurrentRequests))")
            try require(maxQueueRows >= maxRows && maxQueueRows <= 10_000_000, .maxQueueRows, "at least max_rows (\(maxRows)) and at most 10000000")
            try require((1...65536).contains(maxBatchRows), .maxBatchRows, "1 to 65536")
            try require((0...100_000).contains(batchWindowMicroseconds), .batchWindowMicroseconds, "0 to 100000")
            try require((1...1_000_000).contains(maxConnections), .maxConnections, "1 to 1000000")
            try require((1...3600).contains(idleTimeoutSeconds), .idleTimeoutSeconds, "1 to 3600")
            try require((1...3600).contains(bodyTimeoutSeconds), .bodyTimeoutSeconds, "1 to 3600")
            try require((1...3600).contains(shutdownTimeoutSeconds), .shutdownTimeoutSeconds, "1 to 3600")
            if let metricsPort { try require((0...65535).contains(metricsPort), .metricsPort, "0 to 65535") }
            if let fraction = extractionMaxOutOfDistributionFraction {
                try require(fraction.isFinite && fraction >= 0 && fraction < 1, .extractionMaxOutOfDistributionFraction, "from 0 to below 1")
            }
            if let rows = extractionMaxRowsPerHour { try require((1...1_000_000_000).contains(rows), .extractionMaxRowsPerHour, "1 to 1000000000") }
            try require(KeyFile.rateRange.contains(extractionThrottleRate), .extractionThrottleRate, "\(KeyFile.rateRange.lowerBound) to \(Int(KeyFile.rateRange.upperBound)) rows per second")
        }

        /// Reads a configuration file (strict JSON: unknown fields are errors).
        public static func read(_ path: String) throws -> Limits {
            try decode(try FileReader.readAll(path, limit: 1 << 20), source: path)
        }

        /// Parses and validates a configuration's bytes.
        public static func decode(_ bytes: [UInt8], source path: String) throws -> Limits {
            let limits: Limits
            do {
                limits = try StrictJSON.decode(Limits.self, from: bytes)
            } catch {
                throw ServeError.invalidConfiguration("\(path): \(decodingErrorText(error))")
            }
            do { try limits.validate() } catch let error as ServeError {
                throw ServeError.invalidConfiguration("\(path): \(error)")
            }
            return limits
        }
    }

    public var host: String
    public var port: Int
    /// nil with `--insecure-http` (loopback only).
    public var tls: TLSFiles?
    public var keysPath: String
    public var auditLogPath: String?
    /// With a key, the audit chain's links are HMAC-SHA256 under it (`--audit-key`).
    public var auditChainKey: SymmetricKey?
    public var limits: Limits

    public init(host: String, port: Int, tls: TLSFiles?, keysPath: String, auditLogPath: String?, auditChainKey: SymmetricKey? = nil,
                limits: Limits = Limits()) {
        (self.host, self.port, self.tls, self.keysPath, self.auditLogPath, self.auditChainKey, self.limits) =
            (host, port, tls, keysPath, auditLogPath, auditChainKey, limits)
    }

    /// - Throws: `ServeError` for plain HTTP on a non-loopback address or bad limits.
    public func validate() throws {
        try limits.validate()
        guard (0...65535).contains(port) else { throw ServeError.invalidConfiguration("--port must be 0 to 65535 (0: any free port)") }
        if tls == nil, !Self.isLoopback(host) { throw ServeError.insecureHTTPOnPublicAddress(host) }
    }

    /// 127.0.0.0/8, ::1 and `localhost`.
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { bytes in bytes.dropLast().allSatisfy { $0 == 0 } && bytes.last == 1 }
        }
        return false
    }
}

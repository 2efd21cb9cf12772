import Crypto
import Foundation
import Glibc
import TensorCore
import _FileSystem

/// One line of the audit log.
public struct AuditEntry: Codable, Sendable, Equatable {
    public var seq: Int
    public var time: String
    /// `start`, `stop`, `denied`, `key_added`, `key_changed`, `key_revoked`, `key_removed`,
    /// `keys_reloaded`, `keys_reload_refused`, `model_reloaded`, `reload_refused`, `anomaly`, `extraction_suspected`.
    public var event: String
    /// The key's name (never the key).
    public var key: String?
    public var remote: String?
    public var route: String?
    /// How many events this line stands for (denials are counted per second, not written one by one).
    public var count: Int?
    public var detail: [String: String]?
    /// Hex SHA-256 (or, with a chain key, HMAC-SHA256) of the previous line's exact bytes; for the
    /// first line, of `AuditLog.genesis`.
    public var prev: String
}

/// The service's audit trail: append-only JSON Lines, each line carrying the hash of the line before
/// it, so an edit, a deletion, an insertion or a reordering breaks the chain where it happened
/// (`AuditVerifier`). Lines are written by one thread and made durable (`fdatasync`) in groups;
/// denials are counted per (event, reason, route, key) with the first few client addresses, and
/// written once per second, so a flood of bad requests cannot become a flood of disk writes.
///
/// Two things a plain hash chain cannot show are covered separately:
/// - a rewrite of every line after some point by someone who can write the file: with a chain key
///   (`--audit-key`), each link is HMAC-SHA256 under that key, which the writer of the file does
///   not need to hold for reading it, and which the verifier needs;
/// - a cut tail: the head (last sequence number and hash) is kept in `PATH.head`, rewritten at most
///   every 10 s and at stop, checked at start, and logged by the service; `bulwark audit verify
///   --expect-head` checks a log against a head recorded elsewhere.
///
/// A failed write (a full disk) is undone (`ftruncate` to the last whole line), kept, retried every
/// second, and reported (`isHealthy`, the failure callback), so the chain never holds a partial line.
public final class AuditLog: @unchecked Sendable {  // mutable state only under `condition`
    public static let genesis = "bulwark-audit-v1"
    /// Client addresses kept per denial line (the rest are counted in `others`).
    static let addressesPerDenial = 8
    public let path: String
    public var headPath: String { path + ".head" }
    private let fd: Int32
    private let chainKey: SymmetricKey?
    private let condition = NSCondition()
    private var pending: [AuditEntry] = []
    private var denials: [DenialKey: Denials] = [:]
    private var nextSeq: Int
    private var previousHash: String
    private var closed = false
    private var flushRequested = false
    /// Entries the writer has taken but not yet committed (for `flush`'s target).
    private var taken = 0
    private var headPending = false
    private var writer: Thread?
    private var flushedSeq: Int
    private var healthy = true
    private var headWritten = ContinuousClock.now
    private let now: @Sendable () -> Date
    private let onFailure: @Sendable (String) -> Void

    private struct DenialKey: Hashable {
        let event: String, key: String?, route: String?, reason: String
    }

    private struct Denials {
        var count = 0
        var addresses: [String] = []
        var others = 0
    }

    /// The head of the chain, as `PATH.head` records it.
    public struct Head: Codable, Sendable, Equatable {
        public let seq: Int
        public let sha256: String
    }

    /// Opens (or creates, mode 0600) the log, verifies the chain so far (against `PATH.head` if it
    /// exists) and resumes it.
    /// - Parameters:
    ///   - chainKey: links are HMAC-SHA256 under this key instead of SHA-256.
    ///   - onFailure: called (on the writer thread) when a write fails.
    /// - Throws: `ServeError.auditLogBroken` if the existing chain does not verify, its recorded head
    ///   is missing from it, or another process holds the log.
    public init(path: String, chainKey: SymmetricKey? = nil, now: @escaping @Sendable () -> Date = { Date() },
                onFailure: @escaping @Sendable (String) -> Void = { _ in }) throws {
        self.path = path
        self.chainKey = chainKey
        self.now = now
        self.onFailure = onFailure
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw FileSystemError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            Glibc.close(fd)
            throw ServeError.auditLogBroken(path: path, reason: "another process is writing it")
        }
        var info = stat()
        fstat(fd, &info)
        guard info.st_mode & S_IFMT == S_IFREG else {
            Glibc.close(fd)
            throw FileSystemError.cannotOpen(path: path, reason: "not a regular file")
        }
        let summary: AuditVerifier.Summary
        do {
            let recorded = try Self.readHead(path + ".head")
            summary = try AuditVerifier.verify(path: path, expectHead: recorded?.sha256, key: chainKey)
            if let recorded, summary.anchorLine != recorded.seq {
                throw AuditVerifier.Failure(line: 0, reason: "the recorded head (\(path).head) is line \(recorded.seq), found at line \(summary.anchorLine ?? 0)")
            }
        } catch let error as AuditVerifier.Failure {
            Glibc.close(fd)
            throw ServeError.auditLogBroken(path: path, reason: error.description)
        } catch {
            Glibc.close(fd)
            throw ServeError.auditLogBroken(path: path, reason: "\(error)")
        }
        self.fd = fd
        nextSeq = summary.count + 1
        flushedSeq = summary.count
        previousHash = summary.head
        let thread = Thread { [unowned self] in writerLoop() }
        thread.name = "bulwark-audit"
        writer = thread
        thread.start()
    }

    deinit { Glibc.close(fd) }

    /// The head recorded beside the log at `path` (`PATH.head`), if there is one.
    public static func recordedHead(of path: String) throws -> Head? { try readHead(path + ".head") }

    static func readHead(_ path: String) throws -> Head? {
        guard access(path, F_OK) == 0 else { return nil }
        do {
            return try StrictJSON.decodeRejectingUnknownFields(Head.self, from: try FileReader.readAll(path, limit: 4096))
        } catch {
            throw AuditVerifier.Failure(line: 0, reason: "\(path) is not a head record (\(error)); it was edited")
        }
    }

    /// Appends an event (written within about 10 ms, durably).
    public func record(_ event: String, key: String? = nil, remote: String? = nil, route: String? = nil, detail: [String: String]? = nil) {
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return }
        pending.append(AuditEntry(seq: 0, time: Self.timestamp(now()), event: event, key: key, remote: remote, route: route,
                                  count: nil, detail: detail, prev: ""))
        condition.broadcast()
    }

    /// Counts a denial (or another frequent event); one line per (event, reason, route, key) is
    /// written each second with its count and up to 8 client addresses.
    public func recordDenial(_ event: String = "denied", reason: String, key: String? = nil, remote: String?, route: String?) {
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return }
        let denialKey = DenialKey(event: event, key: key, route: route, reason: reason)
        var entry = denials[denialKey] ?? Denials()
        entry.count += 1
        if let remote, !entry.addresses.contains(remote) {
            if entry.addresses.count < Self.addressesPerDenial { entry.addresses.append(remote) } else { entry.others += 1 }
        }
        denials[denialKey] = entry
    }

    /// The last sequence number and hash written.
    public var head: Head {
        condition.lock()
        defer { condition.unlock() }
        return Head(seq: nextSeq - 1, sha256: previousHash)
    }

    /// Whether the last write succeeded (a failing log makes `/readyz` answer 503).
    public var isHealthy: Bool {
        condition.lock()
        defer { condition.unlock() }
        return healthy
    }

    /// Writes everything recorded so far, denials included, and returns when it is on disk (or the
    /// log is failing or closed).
    public func flush() {
        condition.lock()
        let target = nextSeq - 1 + taken + pending.count + denials.count
        flushRequested = true
        condition.broadcast()
        while flushedSeq < target && !closed && healthy { condition.wait() }
        condition.unlock()
    }

    /// Writes what is pending and the head record, then stops the writer. Later records are dropped.
    public func finish() {
        condition.lock()
        guard !closed else { condition.unlock(); return }
        closed = true
        condition.broadcast()
        condition.unlock()
        while writer?.isFinished == false { usleep(1000) }
    }

    private func writerLoop() {
        var lastDenialFlush = ContinuousClock.now
        var retry: [AuditEntry] = []
        while true {
            condition.lock()
            while pending.isEmpty && retry.isEmpty && !headPending && !closed && !flushRequested
                    && (denials.isEmpty || ContinuousClock.now - lastDenialFlush < .seconds(1)) {
                _ = condition.wait(until: Date().addingTimeInterval(denials.isEmpty ? 1 : 0.05))
            }
            var batch = retry + pending
            pending.removeAll(keepingCapacity: true)
            if !denials.isEmpty && (closed || flushRequested || ContinuousClock.now - lastDenialFlush >= .seconds(1)) {
                for (key, value) in denials.sorted(by: { ($0.key.reason, $0.key.route ?? "") < ($1.key.reason, $1.key.route ?? "") }) {
                    var detail = ["reason": key.reason]
                    if !value.addresses.isEmpty { detail["addresses"] = value.addresses.joined(separator: " ") }
                    if value.others > 0 { detail["other_addresses"] = String(value.others) }
                    batch.append(AuditEntry(seq: 0, time: "", event: key.event, key: key.key, remote: nil, route: key.route,
                                            count: value.count, detail: detail, prev: ""))
                }
                denials.removeAll()
                lastDenialFlush = .now
            }
            flushRequested = false
            taken = batch.count
            let stopping = closed
            var seq = nextSeq, previous = previousHash
            condition.unlock()

            var text = ""
            let time = Self.timestamp(now())
            for var entry in batch {
                entry.seq = seq
                if entry.time.isEmpty { entry.time = time }  // denial lines: the time they are written
                entry.prev = previous
                let line = Self.encode(entry)
                previous = AuditVerifier.link(line, key: chainKey)
                text += line + "\n"
                seq += 1
            }
            // Lines first; only if they are on disk does the chain advance.
            if !text.isEmpty, let failure = writeDurably(Array(text.utf8)) {
                condition.lock()
                healthy = false
                taken = 0
                retry = batch  // renumbered from the unchanged head next time
                condition.broadcast()
                condition.unlock()
                onFailure(failure)
                if stopping { return }
                Thread.sleep(forTimeInterval: 1)
                continue
            }
            condition.lock()
            retry = []
            taken = 0
            nextSeq = seq
            previousHash = previous
            flushedSeq = seq - 1
            let head = Head(seq: seq - 1, sha256: previous)
            let headDue = head.seq > 0 && (stopping || headPending || ContinuousClock.now - headWritten >= .seconds(10))
            condition.unlock()
            // Then the head record; a failure there is retried alone (the lines stay committed).
            let headFailure = headDue ? writeHead(head) : nil
            condition.lock()
            healthy = headFailure == nil
            headPending = headFailure != nil
            condition.broadcast()
            condition.unlock()
            if let headFailure {
                onFailure(headFailure)
                if !stopping { Thread.sleep(forTimeInterval: 1) }
            }
            if stopping { return }
        }
    }

    /// Appends whole lines and syncs them; on failure, cuts the file back to where it was.
    /// - Returns: why it failed, or nil.
    private func writeDurably(_ bytes: [UInt8]) -> String? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return String(cString: strerror(errno)) }
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                let reason = String(cString: strerror(errno))
                ftruncate(fd, info.st_size)  // no partial line stays in the chain
                return "cannot write the audit log \(path): \(reason)"
            }
            offset += written
        }
        guard fdatasync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            ftruncate(fd, info.st_size)
            return "cannot sync the audit log \(path): \(reason)"
        }
        return nil
    }

    private func writeHead(_ head: Head) -> String? {
        do {
            try AtomicFile.write(Array(Self.encode(head).utf8) + [0x0A], to: headPath, permissions: 0o600)
            headWritten = .now
            return nil
        } catch {
            return "cannot write \(headPath): \(error)"
        }
    }

    static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
    }

    /// RFC 3339 UTC with milliseconds, e.g. 2026-11-27T14:05:09.123Z (the service's one time format:
    /// audit entries, key files and JSON logs). Built from `gmtime_r`, no date formatter per call.
    public static func timestamp(_ date: Date) -> String {
        let milliseconds = Int((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(milliseconds.quotientAndRemainder(dividingBy: 1000).quotient)
        let fraction = milliseconds - Int(seconds) * 1000
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = fraction < 10 ? "00\(fraction)" : fraction < 100 ? "0\(fraction)" : "\(fraction)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(ms)Z"
    }
}

/// Checks an audit log's chain: `bulwark audit verify` and the service at start.
public enum AuditVerifier {
    public struct Summary: Sendable, Equatable {
        /// Lines in the log.
        public let count: Int
        /// The link to the last line (to the genesis text for an empty log).
        public let head: String
        /// The line number at which `expectHead` was found, if one was given.
        public let anchorLine: Int?
    }

    /// Where and how the chain breaks.
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let line: Int
        public let reason: String
        public var description: String { line > 0 ? "line \(line): \(reason)" : reason }
    }

    public static func hash(_ line: some StringProtocol) -> String {
        SHA256.hash(data: Data(line.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// The link to a line: its SHA-256, or with a chain key its HMAC-SHA256.
    public static func link(_ line: some StringProtocol, key: SymmetricKey?) -> String {
        guard let key else { return hash(line) }
        return HMAC<SHA256>.authenticationCode(for: Data(line.utf8), using: key).map { String(format: "%02x", $0) }.joined()
    }

    public static var genesisHash: String { hash(AuditLog.genesis) }

    /// Largest log verified (a year of busy service is far below it).
    static let sizeLimit = 8 << 30

    /// - Parameter expectHead: a head hash recorded earlier (the service logs it); the log must
    ///   contain a line with that hash, else its tail was cut or the log rewritten.
    /// - Throws: `Failure` at the first line that breaks the chain, or `FileSystemError`.
    /// - Parameter key: the chain key the log was written with (`--audit-key`), if any.
    public static func verify(path: String, expectHead: String? = nil, key: SymmetricKey? = nil) throws -> Summary {
        var chain = Chain(expectHead: expectHead, key: key)
        if access(path, F_OK) == 0 {
            guard try FileReader.size(of: path) <= sizeLimit else { throw Failure(line: 0, reason: "larger than 8 GiB; rotate it") }
            try FileReader.forEachChunk(of: path) { try chain.feed($0) }
        }
        return try chain.finish()
    }

    /// The same check over a log's bytes.
    public static func verify(bytes: [UInt8], expectHead: String? = nil, key: SymmetricKey? = nil) throws -> Summary {
        var chain = Chain(expectHead: expectHead, key: key)
        try bytes.withUnsafeBytes { try chain.feed($0) }
        return try chain.finish()
    }

    /// The chain check, fed the log's bytes in chunks.
    private struct Chain {
        let expectHead: String?
        let key: SymmetricKey?
        var previous: String
        var count = 0
        var anchorLine: Int?
        var partial: [UInt8] = []

        init(expectHead: String?, key: SymmetricKey?) {
            self.expectHead = expectHead
            self.key = key
            previous = AuditVerifier.link(AuditLog.genesis, key: key)
            anchorLine = expectHead == previous ? 0 : nil
        }

        mutating func feed(_ chunk: UnsafeRawBufferPointer) throws {
            var start = 0
            for i in 0..<chunk.count where chunk[i] == 0x0A {
                partial.append(contentsOf: chunk[start..<i])
                try check(partial)
                partial.removeAll(keepingCapacity: true)
                start = i + 1
            }
            partial.append(contentsOf: chunk[start...])
            guard partial.count <= 1 << 20 else { throw Failure(line: count + 1, reason: "a line longer than 1 MiB: not an audit log") }
        }

        private mutating func check(_ bytes: [UInt8]) throws {
            count += 1
            guard let line = String(validating: bytes, as: UTF8.self) else { throw Failure(line: count, reason: "not UTF-8") }
            let entry: AuditEntry
            do {
                entry = try StrictJSON.decodeRejectingUnknownFields(AuditEntry.self, from: bytes)
            } catch {
                throw Failure(line: count, reason: "not an audit entry (\(decodingErrorText(error)))")
            }
            guard entry.prev == previous else {
                throw Failure(line: count, reason: count == 1
                    ? "the first line does not start the chain: lines before it were deleted, it was edited, or the log was written with a chain key (give it with --key-file)"
                    : "prev does not match line \(count - 1): line \(count - 1) was edited, or lines between were deleted or reordered")
            }
            guard entry.seq == count else {
                throw Failure(line: count, reason: "seq is \(entry.seq), expected \(count): lines were deleted, inserted or reordered")
            }
            previous = AuditVerifier.link(line, key: key)
            if previous == expectHead { anchorLine = count }
        }

        func finish() throws -> Summary {
            guard partial.isEmpty else {
                throw Failure(line: count + 1, reason: "the last line is incomplete (no newline): the file was cut, or a write was interrupted")
            }
            if let expectHead, anchorLine == nil {
                throw Failure(line: 0, reason: "no line has the expected head \(expectHead): the log was cut below that point or rewritten (\(count) lines verify among themselves)")
            }
            return Summary(count: count, head: previous, anchorLine: anchorLine)
        }
    }
}

import Crypto
import Foundation
import Glibc
import TensorCore
import _FileSystem

/// One line of the audit log.
public struct AuditEntry: Codable, Sendable, Equatable {
    public var seq: Int
    public var time: String
    /// `start`, `stop`, `denied`, `key_added`, `key_revoked`, `keys_reloaded`, `keys_reload_refused`,
    /// `model_reloaded`, `reload_refused`, `anomaly`, `head`.
    public var event: String
    /// The key's name (never the key).
    public var key: String?
    public var remote: String?
    public var route: String?
    /// How many events this line stands for (denials are counted per second, not written one by one).
    public var count: Int?
    public var detail: [String: String]?
    /// Hex SHA-256 of the previous line's exact bytes (for the first line, of `AuditLog.genesis`).
    public var prev: String
}

/// The service's audit trail: append-only JSON Lines, each line carrying the SHA-256 of the line
/// before it, so an edit, a deletion or a reordering breaks the chain where it happened
/// (`AuditVerifier`). Lines are written by one thread and made durable (`fdatasync`) in groups;
/// denials are counted per (event, key, remote, route, reason) and written once per second, so a
/// flood of bad requests cannot become a flood of disk writes.
///
/// A chain shows edits, not a rewrite of the whole tail by someone who can write the file: the
/// service logs the head hash (`head` entries and its log) so an outside copy can anchor it
/// (`bulwark audit verify --expect-head`).
public final class AuditLog: @unchecked Sendable {  // mutable state only under `condition`
    public static let genesis = "bulwark-audit-v1"
    public let path: String
    private let fd: Int32
    private let condition = NSCondition()
    private var pending: [AuditEntry] = []
    private var denials: [DenialKey: Int] = [:]
    private var nextSeq: Int
    private var previousHash: String
    private var closed = false
    private var writer: Thread?
    private var flushedSeq: Int
    private let now: @Sendable () -> Date

    private struct DenialKey: Hashable {
        let event: String, key: String?, remote: String?, route: String?, reason: String
    }

    /// Opens (or creates, mode 0600) the log, verifies the chain so far and resumes it.
    /// - Throws: `ServeError.auditLogBroken` if the existing chain does not verify or another
    ///   process holds the log.
    public init(path: String, now: @escaping @Sendable () -> Date = { Date() }) throws {
        self.path = path
        self.now = now
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw FileSystemError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw ServeError.auditLogBroken(path: path, reason: "another process is writing it")
        }
        var info = stat()
        fstat(fd, &info)
        guard info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw FileSystemError.cannotOpen(path: path, reason: "not a regular file")
        }
        let summary: AuditVerifier.Summary
        do {
            summary = try AuditVerifier.verify(path: path)
        } catch let error as AuditVerifier.Failure {
            close(fd)
            throw ServeError.auditLogBroken(path: path, reason: error.description)
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

    deinit { close(fd) }

    /// Appends an event (written within about 10 ms, durably).
    public func record(_ event: String, key: String? = nil, remote: String? = nil, route: String? = nil, detail: [String: String]? = nil) {
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return }
        pending.append(AuditEntry(seq: 0, time: "", event: event, key: key, remote: remote, route: route, count: nil, detail: detail, prev: ""))
        condition.signal()
    }

    /// Counts a denial; one line per distinct denial is written each second with its count.
    public func recordDenial(_ event: String = "denied", reason: String, key: String? = nil, remote: String?, route: String?) {
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return }
        denials[DenialKey(event: event, key: key, remote: remote, route: route, reason: reason), default: 0] += 1
    }

    /// The hex SHA-256 of the last line written and its sequence number.
    public var head: (seq: Int, sha256: String) {
        condition.lock()
        defer { condition.unlock() }
        return (nextSeq - 1, previousHash)
    }

    /// Writes everything recorded so far and returns when it is on disk.
    public func flush() {
        condition.lock()
        let target = nextSeq - 1 + pending.count + denials.count
        condition.signal()
        while flushedSeq < target && !closed { condition.wait() }
        condition.unlock()
    }

    /// Writes what is pending, then stops the writer. Later records are dropped.
    public func finish() {
        condition.lock()
        guard !closed else { condition.unlock(); return }
        closed = true
        condition.signal()
        condition.unlock()
        while writer?.isFinished == false { usleep(1000) }
    }

    private func writerLoop() {
        var lastDenialFlush = ContinuousClock.now
        while true {
            condition.lock()
            while pending.isEmpty && !closed && (denials.isEmpty || ContinuousClock.now - lastDenialFlush < .seconds(1)) {
                _ = condition.wait(until: Date().addingTimeInterval(denials.isEmpty ? 1 : 0.05))
            }
            var batch = pending
            pending.removeAll(keepingCapacity: true)
            if !denials.isEmpty && (closed || ContinuousClock.now - lastDenialFlush >= .seconds(1)) {
                for (key, count) in denials.sorted(by: { ($0.key.reason, $0.key.remote ?? "") < ($1.key.reason, $1.key.remote ?? "") }) {
                    batch.append(AuditEntry(seq: 0, time: "", event: key.event, key: key.key, remote: key.remote, route: key.route,
                                            count: count, detail: ["reason": key.reason], prev: ""))
                }
                denials.removeAll()
                lastDenialFlush = .now
            }
            let stopping = closed
            var seq = nextSeq, previous = previousHash
            condition.unlock()

            var text = ""
            let time = Self.timestamp(now())
            for var entry in batch {
                entry.seq = seq
                entry.time = time
                entry.prev = previous
                let line = Self.encode(entry)
                previous = AuditVerifier.hash(line)
                text += line + "\n"
                seq += 1
            }
            if !text.isEmpty { writeDurably(Array(text.utf8)) }

            condition.lock()
            nextSeq = seq
            previousHash = previous
            flushedSeq = seq - 1
            condition.broadcast()
            condition.unlock()
            if stopping { return }
        }
    }

    private func writeDurably(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                // A full disk or a revoked file must not go unnoticed: the service's log says so.
                FileHandle.standardError.write(Data("bulwark serve: cannot write the audit log \(path): \(String(cString: strerror(errno)))\n".utf8))
                return
            }
            offset += written
        }
        fdatasync(fd)
    }

    static func encode(_ entry: AuditEntry) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(entry)) ?? Data(), as: UTF8.self)
    }

    public static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}

/// Checks an audit log's chain: `bulwark audit verify` and the service at start.
public enum AuditVerifier {
    public struct Summary: Sendable, Equatable {
        /// Lines in the log.
        public let count: Int
        /// Hex SHA-256 of the last line (of the genesis text for an empty log).
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

    public static var genesisHash: String { hash(AuditLog.genesis) }

    /// Largest log verified (a year of busy service is far below it).
    static let sizeLimit = 8 << 30

    /// - Parameter expectHead: a head hash recorded earlier (the service logs it); the log must
    ///   contain a line with that hash, else its tail was cut or the log rewritten.
    /// - Throws: `Failure` at the first line that breaks the chain, or `FileSystemError`.
    public static func verify(path: String, expectHead: String? = nil) throws -> Summary {
        var previous = genesisHash
        var count = 0
        var anchorLine: Int? = expectHead == genesisHash ? 0 : nil
        var partial: [UInt8] = []
        func check(_ bytes: ArraySlice<UInt8>) throws {
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
                    ? "the first line does not start the chain: lines before it were deleted, or it was edited"
                    : "prev does not match line \(count - 1): line \(count - 1) was edited, or lines between were deleted or reordered")
            }
            guard entry.seq == count else {
                throw Failure(line: count, reason: "seq is \(entry.seq), expected \(count): lines were deleted, inserted or reordered")
            }
            previous = hash(line)
            if previous == expectHead { anchorLine = count }
        }
        if access(path, F_OK) == 0 {
            guard try FileReader.size(of: path) <= sizeLimit else { throw Failure(line: 0, reason: "larger than 8 GiB; rotate it") }
            try FileReader.forEachChunk(of: path) { chunk in
                var start = 0
                for i in 0..<chunk.count where chunk[i] == 0x0A {
                    partial.append(contentsOf: chunk[start..<i])
                    try check(partial[...])
                    partial.removeAll(keepingCapacity: true)
                    start = i + 1
                }
                partial.append(contentsOf: chunk[start...])
                guard partial.count <= 1 << 20 else { throw Failure(line: count + 1, reason: "a line longer than 1 MiB: not an audit log") }
            }
        }
        guard partial.isEmpty else {
            throw Failure(line: count + 1, reason: "the last line is incomplete (no newline): the file was cut, or a write was interrupted")
        }
        if let expectHead, anchorLine == nil {
            throw Failure(line: 0, reason: "no line has the expected head \(expectHead): the log was cut below that point or rewritten (\(count) lines verify among themselves)")
        }
        return Summary(count: count, head: previous, anchorLine: anchorLine)
    }
}

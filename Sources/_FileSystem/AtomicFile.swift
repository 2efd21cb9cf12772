import Foundation
import Glibc

/// Errors from reading and writing files, with the path and the operating system's reason.
public enum FileSystemError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, reason: String)
    case cannotRead(path: String, reason: String)
    case cannotWrite(path: String, reason: String)
    case tooLarge(path: String, size: Int, limit: Int)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason):
            return "cannot open \(path): \(reason)"
        case .cannotRead(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .cannotWrite(let path, let reason):
            return "cannot write \(path): \(reason); the previous contents (if any) are unchanged"
        case .tooLarge(let path, let size, let limit):
            return "\(path) is \(size) bytes, more than the limit of \(limit) bytes for this kind of file"
        }
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }

/// Atomic file replacement: the destination holds either its old contents or the complete new
/// contents, never a truncated mix, even if the process is killed or the machine loses power.
///
/// ```
/// write temp file in the same directory → fsync(temp) → rename(temp, dest) → fsync(directory)
/// ```
public enum AtomicFile {
    /// A temporary file of an earlier write to the same path that has not changed for this long
    /// belongs to a writer that was killed (SIGKILL, a crash): the next write removes it.
    public static let staleAge: TimeInterval = 600

    /// Removes `.NAME.tmp-XXXXXX` files in `directory` left by writers that were killed.
    static func removeStaleTemporaries(of name: String, in directory: String) {
        let prefix = ".\(name).tmp-"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for entry in entries where entry.hasPrefix(prefix) && entry.count == prefix.count + 6 {
            let path = directory + "/" + entry
            var info = stat()
            guard lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            if Date().timeIntervalSince1970 - Double(info.st_mtim.tv_sec) > staleAge { unlink(path) }
        }
    }

    /// The mode of ordinary new files: 0666 less the process's umask, as `open(2)` would give (a
    /// user running with `umask 077` gets files nobody else can read). Read once, from
    /// /proc/self/status (no umask(2) round trip, which would race with other threads).
    public static let defaultPermissions: mode_t = {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Umask:") }),
           let mask = mode_t(line.dropFirst("Umask:".count).trimmingCharacters(in: .whitespaces), radix: 8) {
            return 0o666 & ~mask
        }
        let mask = umask(0o022)
        umask(mask)
        return 0o666 & ~mask
    }()

    /// The permission bits of the file at `path` (to keep them when it is rewritten in place), or
    /// `defaultPermissions` if it cannot be read.
    public static func currentPermissions(of path: String) -> mode_t {
        var info = stat()
        return stat(path, &info) == 0 ? info.st_mode & 0o7777 : defaultPermissions
    }

    /// Writes `bytes` to `path` atomically.
    /// - Parameters:
    ///   - permissions: file mode of the new file (0o600 for secrets such as keys and plaintext);
    ///     by default `defaultPermissions` (0666 less the umask).
    /// - Throws: `FileSystemError.cannotWrite` naming the path and the reason.
    public static func write<Bytes: Collection>(
        _ bytes: Bytes, to path: String, permissions: mode_t = defaultPermissions
    ) throws where Bytes.Element == UInt8 {
        try write(to: path, permissions: permissions) { sink in try sink.write(bytes) }
    }

    /// Streams content into `path` atomically: `body` writes through the sink; the file appears at
    /// `path` only after `body` returns and the data is on disk. If `body` throws, the temporary file
    /// is removed and `path` is untouched.
    public static func write(
        to path: String, permissions: mode_t = defaultPermissions, _ body: (inout FileSink) throws -> Void
    ) throws {
        let directory = PathText.directory(of: path)
        let name = PathText.name(of: path)
        removeStaleTemporaries(of: name, in: directory)
        var template = Array("\(directory)/.\(name).tmp-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw FileSystemError.cannotWrite(path: path, reason: "cannot create a temporary file in \(directory): \(errnoText())")
        }
        let temporaryPath = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        InterruptCleanup.register(temporaryPath)
        var committed = false
        defer {
            if !committed { unlink(temporaryPath) }
            InterruptCleanup.unregister(temporaryPath)
        }
        var sink = FileSink(fd: fd, path: path)
        do {
            try body(&sink)
            try sink.flush()
        } catch {
            close(fd)
            throw error
        }
        guard fchmod(fd, permissions) == 0, fsync(fd) == 0 else {
            let reason = errnoText()
            close(fd)
            throw FileSystemError.cannotWrite(path: path, reason: reason)
        }
        guard close(fd) == 0 else {
            throw FileSystemError.cannotWrite(path: path, reason: errnoText())
        }
        guard rename(temporaryPath, path) == 0 else {
            throw FileSystemError.cannotWrite(path: path, reason: errnoText())
        }
        committed = true
        let directoryFD = open(directory, O_RDONLY)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }
}

/// A buffered writer over a file descriptor, used inside `AtomicFile.write(to:_:)`.
public struct FileSink {
    let fd: Int32
    let path: String
    private var buffer: [UInt8] = []
    private static let capacity = 1 << 20

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        buffer.reserveCapacity(Self.capacity)
    }

    public mutating func write<Bytes: Collection>(_ bytes: Bytes) throws where Bytes.Element == UInt8 {
        if buffer.count + bytes.count > Self.capacity { try flush() }
        if bytes.count >= Self.capacity {
            try Array(bytes).withUnsafeBytes { try writeAll($0) }
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    public mutating func write(_ raw: UnsafeRawBufferPointer) throws {
        if buffer.count + raw.count > Self.capacity { try flush() }
        if raw.count >= Self.capacity {
            try writeAll(raw)
        } else {
            buffer.append(contentsOf: raw)
        }
    }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ raw: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < raw.count {
            let written = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                throw FileSystemError.cannotWrite(path: path, reason: errnoText())
            }
            offset += written
        }
    }
}

import Foundation
import Glibc

/// Bounded, streaming reads of files that may be hostile: sizes are checked before memory is
/// allocated, and large files are read in chunks.
public enum FileReader {
    /// Size in bytes of the regular file at `path`.
    /// - Throws: `FileSystemError.cannotOpen` if the path is missing or not a regular file.
    public static func size(of path: String) throws -> Int {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw FileSystemError.cannotOpen(path: path, reason: errnoText())
        }
        try requireRegular(info, path: path)
        return Int(info.st_size)
    }

    /// Opens `path` for reading only if it is a regular file (after following symlinks): a FIFO,
    /// device, socket or directory is refused without blocking (opened non-blocking, then checked
    /// on the descriptor, so a file swapped in between is caught too). The caller closes the fd.
    /// - Throws: `FileSystemError.cannotOpen` naming what the path is.
    public static func openRegular(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError.cannotOpen(path: path, reason: errnoText()) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = errnoText()
            close(fd)
            throw FileSystemError.cannotOpen(path: path, reason: reason)
        }
        do { try requireRegular(info, path: path) } catch {
            close(fd)
            throw error
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        return fd
    }

    /// Refuses anything but a regular file, saying what it is.
    static func requireRegular(_ info: stat, path: String) throws {
        let kind: String
        switch info.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFIFO: kind = "a FIFO (named pipe)"
        case S_IFCHR: kind = "a character device"
        case S_IFBLK: kind = "a block device"
        case S_IFSOCK: kind = "a socket"
        case S_IFDIR: kind = "a directory"
        default: kind = "not a file"
        }
        throw FileSystemError.cannotOpen(path: path, reason: "not a regular file (\(kind)); Bulwark reads only regular files, so a pipe or device cannot make it hang")
    }

    /// Reads the whole file, refusing files larger than `limit` bytes before reading them.
    public static func readAll(_ path: String, limit: Int) throws -> [UInt8] {
        let size = try size(of: path)
        guard size <= limit else { throw FileSystemError.tooLarge(path: path, size: size, limit: limit) }
        var bytes = [UInt8]()
        bytes.reserveCapacity(size)
        try forEachChunk(of: path) { chunk in
            guard bytes.count + chunk.count <= limit else {
                throw FileSystemError.tooLarge(path: path, size: bytes.count + chunk.count, limit: limit)
            }
            bytes.append(contentsOf: chunk)
        }
        return bytes
    }

    /// Calls `body` with consecutive chunks of the file (at most `chunkSize` bytes each), so a file
    /// of any size is processed in bounded memory.
    public static func forEachChunk(
        of path: String, chunkSize: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        let fd = try openRegular(path)
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let count = Glibc.read(fd, buffer.baseAddress!, chunkSize)
            if count < 0 {
                if errno == EINTR { continue }
                throw FileSystemError.cannotRead(path: path, reason: errnoText())
            }
            if count == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }
}

extension FileReader {
    /// The last `count` bytes of the regular file (all of it if it is shorter), without reading the rest.
    public static func readSuffix(_ path: String, count: Int) throws -> [UInt8] {
        let fd = try openRegular(path)
        defer { close(fd) }
        let size = Int(lseek(fd, 0, SEEK_END))
        let start = max(0, size - count)
        guard size >= 0, lseek(fd, off_t(start), SEEK_SET) >= 0 else { throw FileSystemError.cannotRead(path: path, reason: errnoText()) }
        return try read(fd, upTo: size - start, path: path)
    }

    /// The first `count` bytes of the file (fewer if it is shorter), without reading the rest.
    public static func readPrefix(_ path: String, count: Int) throws -> [UInt8] {
        let fd = try openRegular(path)
        defer { close(fd) }
        return try read(fd, upTo: count, path: path)
    }

    /// Up to `count` bytes from the descriptor's position (fewer at the end of the file).
    private static func read(_ fd: Int32, upTo count: Int, path: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, count - filled) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError.cannotRead(path: path, reason: errnoText())
            }
            if n == 0 { break }
            filled += n
        }
        return Array(bytes[..<filled])
    }
}

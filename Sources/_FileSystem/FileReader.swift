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
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw FileSystemError.cannotOpen(path: path, reason: "not a regular file")
        }
        return Int(info.st_size)
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
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FileSystemError.cannotOpen(path: path, reason: errnoText()) }
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let count = read(fd, buffer.baseAddress!, chunkSize)
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
    /// The first `count` bytes of the file (fewer if it is shorter), without reading the rest.
    public static func readPrefix(_ path: String, count: Int) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FileSystemError.cannotOpen(path: path, reason: errnoText()) }
        defer { close(fd) }
        var prefix = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = prefix.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, count - filled) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError.cannotRead(path: path, reason: errnoText())
            }
            if n == 0 { break }
            filled += n
        }
        return Array(prefix[..<filled])
    }
}

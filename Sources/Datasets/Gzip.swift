import CZlib

/// gzip (RFC 1952) decompression through zlib, with a bound on the output size so a
/// decompression bomb is an error rather than an exhausted machine.
public enum Gzip {
    /// True if `bytes` starts with the gzip magic number 1f 8b.
    public static func isCompressed(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }

    /// Decompresses every gzip member in `bytes`.
    /// - Throws: `DatasetError.invalidGzip` for corrupt or truncated data, or output beyond `limit` bytes.
    public static func decompress(_ bytes: [UInt8], source: String, limit: Int = 1 << 31) throws -> [UInt8] {
        try decompress(bytes, source: source, limit: limit, expected: { _ in nil })
    }

    /// What to do with the output once `expected` knows how large it should be.
    public enum Expectation: Sendable {
        /// The stream must end at exactly this many bytes: more is an error, raised as soon as the
        /// output passes it (before inflating the rest of a bomb).
        case exactly(Int)
        /// Only this many bytes are needed: inflation stops there (the rest is not read or checked).
        case prefix(Int)
    }

    /// Decompresses `bytes`, asking `expected` after each chunk (with the output so far) how large
    /// the output should be, until it knows: a format whose header announces its size (IDX) stops
    /// a decompression bomb at the announced size instead of at `limit`.
    /// - Throws: `DatasetError.invalidGzip` for corrupt or truncated data, output beyond `limit` or
    ///   beyond an exact expectation; what `expected` throws (an invalid header).
    public static func decompress(_ bytes: [UInt8], source: String, limit: Int = 1 << 31,
                                  expected: ([UInt8]) throws -> Expectation?) throws -> [UInt8] {
        var stream = z_stream()
        var output = [UInt8]()
        var expectation: Expectation?
        output.reserveCapacity(min(max(bytes.count * 4, 1 << 16), limit))
        guard inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DatasetError.invalidGzip(path: source, problem: "zlib could not be initialised")
        }
        defer { inflateEnd(&stream) }
        let chunk = 1 << 16
        var buffer = [UInt8](repeating: 0, count: chunk)
        try bytes.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = UInt32(input.count)
            while true {
                let status = buffer.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(chunk)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunk - Int(stream.avail_out)
                guard output.count + produced <= limit else {
                    throw DatasetError.invalidGzip(path: source, problem: "it expands to more than \(limit) bytes")
                }
                output.append(contentsOf: buffer[0..<produced])
                if expectation == nil { expectation = try expected(output) }
                switch expectation {
                case .exactly(let size) where output.count > size:
                    throw DatasetError.invalidGzip(path: source, problem: "it expands to more than the \(size) bytes its header announces (stopped there)")
                case .prefix(let size) where output.count >= size:
                    output.removeSubrange(size...)
                    return
                default:
                    break
                }
                switch status {
                case Z_STREAM_END:
                    // Another gzip member may follow (concatenated files are valid gzip).
                    if stream.avail_in == 0 { return }
                    guard inflateReset(&stream) == Z_OK else {
                        throw DatasetError.invalidGzip(path: source, problem: "trailing data after the end of the stream")
                    }
                case Z_OK:
                    continue
                case Z_BUF_ERROR where stream.avail_in == 0:
                    throw DatasetError.invalidGzip(path: source, problem: "the file is truncated (the compressed stream ends early)")
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    throw DatasetError.invalidGzip(path: source, problem: "corrupt compressed data (\(message))")
                }
            }
        }
        return output
    }
}

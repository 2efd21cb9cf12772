import _FileSystem

/// The IDX format of MNIST and Fashion-MNIST (LeCun et al.), raw or gzip-compressed.
///
/// ```
/// 0x00 0x00 <type> <rank>        magic: type 0x08 = unsigned byte
/// rank × u32 big-endian          dimensions
/// data                           product(dimensions) elements, row-major
/// ```
/// The reader checks the magic number, the element type, the rank, every dimension and that the
/// file holds exactly the data the header announces (a truncated or padded file is an error).
public struct IDXFile: Sendable, Equatable {
    public let dimensions: [Int]
    public let data: [UInt8]

    public static let maximumRank = 4
    public static let maximumElements = 1 << 31

    /// Parses IDX bytes (already decompressed).
    /// - Throws: `DatasetError.invalidIDX` naming `source` and the problem.
    public init(bytes: [UInt8], source: String) throws {
        func fail(_ problem: String) -> DatasetError { .invalidIDX(path: source, problem: problem) }
        guard bytes.count >= 4 else { throw fail("the file is \(bytes.count) bytes, too short for the 4-byte magic number") }
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw fail("the magic number starts with \(hex(bytes[0])) \(hex(bytes[1])) instead of 00 00")
        }
        guard bytes[2] == 0x08 else {
            let names: [UInt8: String] = [0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"]
            throw fail("element type \(hex(bytes[2])) (\(names[bytes[2]] ?? "unknown")) is not supported; image and label files use 0x08 (unsigned byte)")
        }
        let rank = Int(bytes[3])
        guard rank >= 1, rank <= Self.maximumRank else {
            throw fail("rank \(rank) is outside 1…\(Self.maximumRank)")
        }
        let headerSize = 4 + 4 * rank
        guard bytes.count >= headerSize else {
            throw fail("the file is truncated: \(bytes.count) bytes, but the header of a rank-\(rank) file alone needs \(headerSize)")
        }
        var dimensions: [Int] = []
        var elements = 1
        for d in 0..<rank {
            let o = 4 + 4 * d
            let value = Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3])
            guard value > 0 else { throw fail("dimension \(d) is 0") }
            let (product, overflow) = elements.multipliedReportingOverflow(by: value)
            guard !overflow, product <= Self.maximumElements else {
                throw fail("the dimensions \(dimensions + [value]) describe more than \(Self.maximumElements) elements")
            }
            elements = product
            dimensions.append(value)
        }
        let expected = headerSize + elements
        guard bytes.count == expected else {
            if bytes.count < expected {
                throw fail("the file is truncated: the header announces \(dimensions.map(String.init).joined(separator: "×")) = \(elements) bytes of data, the file holds \(bytes.count - headerSize)")
            }
            throw fail("\(bytes.count - expected) unexpected bytes follow the \(elements) bytes of data the header announces")
        }
        self.dimensions = dimensions
        data = Array(bytes[headerSize...])
    }

    /// Reads an IDX file, decompressing it first if it is gzip (by content, not by name).
    /// - Parameter loader: reads the file (and may verify or decrypt it first).
    public init(contentsOf path: String, loader: any FileLoading = PlainFileLoader()) throws {
        var bytes = try loader.load(path, limit: 1 << 31)
        if Gzip.isCompressed(bytes) { bytes = try Gzip.decompress(bytes, source: path) }
        try self.init(bytes: bytes, source: path)
    }
}

func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16)
    return "0x" + (digits.count == 1 ? "0" + digits : digits)
}

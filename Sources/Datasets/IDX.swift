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
    /// - Parameter maximumItems: keep only the first items (rows of the first dimension); `bytes`
    ///   may then end after them. `dimensions` are always the ones the header announces.
    /// - Throws: `DatasetError.invalidIDX` naming `source` and the problem.
    public init(bytes: [UInt8], source: String, maximumItems: Int? = nil) throws {
        func fail(_ problem: String) -> DatasetError { .invalidIDX(path: source, problem: problem) }
        guard bytes.count >= 4 else { throw fail("the file is \(bytes.count) bytes, too short for the 4-byte magic number") }
        guard let header = try Self.header(of: bytes, source: source) else {
            let rank = Int(bytes[3])
            throw fail("the file is truncated: \(bytes.count) bytes, but the header of a rank-\(rank) file alone needs \(4 + 4 * rank)")
        }
        let (headerSize, dimensions, elements) = (header.size, header.dimensions, header.elements)
        let itemSize = elements / dimensions[0]
        let kept = maximumItems.map { min(max($0, 0), dimensions[0]) } ?? dimensions[0]
        let needed = headerSize + kept * itemSize
        let expected = headerSize + elements
        if kept < dimensions[0] && bytes.count >= needed && bytes.count <= expected {
            self.dimensions = dimensions
            data = Array(bytes[headerSize..<needed])
            return
        }
        guard bytes.count == expected else {
            if bytes.count < expected {
                throw fail("the file is truncated: the header announces \(dimensions.map(String.init).joined(separator: "×")) = \(elements) bytes of data, the file holds \(bytes.count - headerSize)")
            }
            throw fail("\(bytes.count - expected) unexpected bytes follow the \(elements) bytes of data the header announces")
        }
        self.dimensions = dimensions
        data = Array(bytes[headerSize...])
    }

    /// The header at the start of `bytes`: its size, the dimensions and their product; nil while
    /// `bytes` is shorter than the header.
    /// - Throws: `DatasetError.invalidIDX` for a wrong magic number, element type, rank or dimension.
    static func header(of bytes: [UInt8], source: String) throws -> (size: Int, dimensions: [Int], elements: Int)? {
        func fail(_ problem: String) -> DatasetError { .invalidIDX(path: source, problem: problem) }
        guard bytes.count >= 4 else { return nil }
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
        guard bytes.count >= headerSize else { return nil }
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
        return (headerSize, dimensions, elements)
    }

    /// Reads an IDX file, decompressing it first if it is gzip (by content, not by name). A gzip
    /// file inflates only up to the size its header announces (a bomb stops there), and with
    /// `maximumItems` only as far as those items need.
    /// - Parameter loader: reads the file (and may verify or decrypt it first).
    public init(contentsOf path: String, loader: any FileLoading = PlainFileLoader(), maximumItems: Int? = nil) throws {
        var bytes = try loader.load(path, limit: 1 << 31)
        if Gzip.isCompressed(bytes) {
            bytes = try Gzip.decompress(bytes, source: path) { output in
                guard let header = try Self.header(of: output, source: path) else { return nil }
                let items = header.dimensions[0], itemSize = header.elements / items
                if let maximumItems, maximumItems < items { return .prefix(header.size + max(maximumItems, 0) * itemSize) }
                return .exactly(header.size + header.elements)
            }
        }
        try self.init(bytes: bytes, source: path, maximumItems: maximumItems)
    }
}

func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16)
    return "0x" + (digits.count == 1 ? "0" + digits : digits)
}

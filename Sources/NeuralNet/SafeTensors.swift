import Foundation
import TensorCore
import _FileSystem

/// Reader and writer for the safetensors format (Hugging Face), the format of Bulwark's model files.
///
/// ```
/// [8 bytes: header length N, little-endian u64][N bytes: JSON header][data]
/// header: {"__metadata__": {"k": "v", …}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, …}
/// ```
/// Offsets are relative to the start of the data section. Files are treated as hostile: the reader
/// checks the header length against the file and a limit, the JSON, every dtype, shape and offset
/// range (overflow-safe), and that the ranges tile the data section exactly (no overlap, no gap), as
/// the reference implementation does, before any tensor is read.
public struct SafeTensors: Sendable {
    /// Largest header accepted (the reference implementation's limit).
    public static let maximumHeaderLength = 100_000_000
    /// Bounds of `__metadata__` (a recipe and a training history take a few kilobytes).
    public static let maximumMetadataBytes = 16 << 20
    public static let maximumMetadataEntries = 4096
    public static let maximumTensorCount = 100_000
    public static let maximumRank = 8

    public enum DType: String, Sendable, CaseIterable {
        case F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL
        case F8_E4M3, F8_E5M2

        public var byteSize: Int {
            switch self {
            case .F64, .I64, .U64: return 8
            case .F32, .I32, .U32: return 4
            case .F16, .BF16, .I16, .U16: return 2
            case .I8, .U8, .BOOL, .F8_E4M3, .F8_E5M2: return 1
            }
        }
    }

    public struct Entry: Sendable, Equatable {
        public let dtype: DType
        public let shape: [Int]
        /// Byte range inside the whole file.
        public let byteRange: Range<Int>
    }

    public let metadata: [String: String]
    public let entries: [String: Entry]
    /// Where the bytes came from (a path), for error messages.
    public let source: String
    private let bytes: [UInt8]

    /// Parses and validates a complete safetensors file held in memory.
    /// - Throws: `SafeTensorsError` naming `source` and the problem.
    public init(bytes: [UInt8], source: String) throws {
        self.source = source
        func fail(_ problem: String) -> SafeTensorsError { SafeTensorsError(source: source, problem: problem) }
        guard bytes.count >= 8 else {
            throw fail("the file is \(bytes.count) bytes, too short for the 8-byte header length")
        }
        var headerLength64: UInt64 = 0
        for i in 0..<8 { headerLength64 |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard headerLength64 <= UInt64(Self.maximumHeaderLength) else {
            throw fail("the header length \(headerLength64) exceeds the limit of \(Self.maximumHeaderLength) bytes")
        }
        let headerLength = Int(headerLength64)
        guard headerLength >= 2, headerLength <= bytes.count - 8 else {
            throw fail("the header length \(headerLength) does not fit in the file of \(bytes.count) bytes")
        }
        let dataStart = 8 + headerLength
        let dataLength = bytes.count - dataStart

        let header: [String: HeaderEntry]
        do {
            header = try StrictJSON.decode([String: HeaderEntry].self, from: bytes[8..<dataStart], integerKeys: ["shape", "data_offsets"])
        } catch {
            throw fail("the JSON header does not parse as a safetensors header (\(decodingErrorText(error)))")
        }
        guard header.count <= Self.maximumTensorCount + 1 else {
            throw fail("the header lists \(header.count) tensors, more than the limit of \(Self.maximumTensorCount)")
        }

        var metadata: [String: String] = [:]
        var entries: [String: Entry] = [:]
        for (name, value) in header {
            switch (name, value) {
            case ("__metadata__", .metadata(let map)):
                let size = map.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count }
                guard map.count <= Self.maximumMetadataEntries, size <= Self.maximumMetadataBytes else {
                    throw fail("__metadata__ has \(map.count) entries and \(size) bytes, more than the limits of \(Self.maximumMetadataEntries) entries and \(Self.maximumMetadataBytes) bytes")
                }
                metadata = map
            case ("__metadata__", .tensor):
                throw fail("__metadata__ must be an object of strings")
            case (_, .metadata):
                throw fail("tensor '\(name)' has no dtype, shape and data_offsets")
            case (_, .tensor(let info)):
                guard let dtype = DType(rawValue: info.dtype) else {
                    throw fail("tensor '\(name)' has unknown dtype '\(info.dtype)'")
                }
                guard info.shape.count <= Self.maximumRank, info.shape.allSatisfy({ $0 >= 0 }) else {
                    throw fail("tensor '\(name)' has invalid shape \(info.shape) (rank ≤ \(Self.maximumRank), dimensions ≥ 0)")
                }
                guard info.data_offsets.count == 2 else {
                    throw fail("tensor '\(name)' needs data_offsets [begin, end], got \(info.data_offsets)")
                }
                let (begin, end) = (info.data_offsets[0], info.data_offsets[1])
                guard begin >= 0, begin <= end, end <= dataLength else {
                    throw fail("tensor '\(name)' has data_offsets [\(begin), \(end)] outside the data section of \(dataLength) bytes")
                }
                guard let elements = Tensor.elementCount(info.shape),
                      case let (byteCount, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize),
                      !overflow, byteCount == end - begin
                else {
                    throw fail("tensor '\(name)' of shape \(info.shape) and dtype \(dtype) needs a different byte count than its data_offsets [\(begin), \(end)] give")
                }
                entries[name] = Entry(dtype: dtype, shape: info.shape, byteRange: (dataStart + begin)..<(dataStart + end))
            }
        }

        // The ranges must tile the data section exactly: sorted by start, each begins where the last ended.
        var expected = dataStart
        for (name, entry) in entries.sorted(by: { ($0.value.byteRange.lowerBound, $0.key) < ($1.value.byteRange.lowerBound, $1.key) }) {
            if entry.byteRange.lowerBound < expected {
                throw fail("tensor '\(name)' overlaps the tensor before it (data_offsets must not overlap)")
            }
            if entry.byteRange.lowerBound > expected {
                throw fail("there are unused bytes before tensor '\(name)' (data_offsets must cover the data section without gaps)")
            }
            expected = entry.byteRange.upperBound
        }
        guard expected == bytes.count else {
            throw fail("\(bytes.count - expected) bytes after the last tensor are not described by the header")
        }
        self.metadata = metadata
        self.entries = entries
        self.bytes = bytes
    }

    /// Reads and parses the file at `path` (at most `limit` bytes) through `loader`, which may
    /// verify or decrypt it first.
    public init(contentsOf path: String, limit: Int = 1 << 31, loader: any FileLoading = PlainFileLoader()) throws {
        try self.init(bytes: try loader.load(path, limit: limit), source: path)
    }

    /// The F32 tensor called `name`.
    /// - Throws: if it is missing or not F32.
    public func floatTensor(_ name: String) throws -> Tensor {
        guard let entry = entries[name] else {
            throw SafeTensorsError(source: source, problem: "tensor '\(name)' is missing")
        }
        guard entry.dtype == .F32 else {
            throw SafeTensorsError(source: source, problem: "tensor '\(name)' has dtype \(entry.dtype.rawValue); F32 is expected")
        }
        let count = entry.byteRange.count / 4
        var scalars = [Float](repeating: 0, count: count)
        scalars.withUnsafeMutableBytes { destination in
            bytes.withUnsafeBytes { source in
                destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[entry.byteRange]))
            }
        }
        #if _endian(big)
        scalars = scalars.map { Float(bitPattern: $0.bitPattern.byteSwapped) }
        #endif
        return Tensor(shape: entry.shape, scalars: scalars)
    }

    /// The floating-point tensor called `name` as Float32, converting F64, F16 and BF16 (a model
    /// saved by PyTorch in another precision). Values that do not fit Float32 become infinite (and
    /// model loading refuses them).
    /// - Throws: if it is missing or not a floating-point dtype.
    public func floatTensorConverting(_ name: String) throws -> Tensor {
        guard let entry = entries[name] else {
            throw SafeTensorsError(source: source, problem: "tensor '\(name)' is missing")
        }
        let count = Tensor.elementCount(entry.shape) ?? 0
        func scalars<Raw: FixedWidthInteger>(_: Raw.Type, _ convert: (Raw) -> Float) -> [Float] {
            bytes.withUnsafeBytes { raw in
                let base = raw.baseAddress! + entry.byteRange.lowerBound
                return (0..<count).map { i in
                    convert(Raw(littleEndian: base.loadUnaligned(fromByteOffset: i * MemoryLayout<Raw>.size, as: Raw.self)))
                }
            }
        }
        switch entry.dtype {
        case .F32:
            return try floatTensor(name)
        case .F64:
            return Tensor(shape: entry.shape, scalars: scalars(UInt64.self) { Float(Double(bitPattern: $0)) })
        case .F16:
            return Tensor(shape: entry.shape, scalars: scalars(UInt16.self) { Self.halfToFloat($0) })
        case .BF16:
            return Tensor(shape: entry.shape, scalars: scalars(UInt16.self) { Float(bitPattern: UInt32($0) << 16) })
        default:
            throw SafeTensorsError(source: source, problem: "tensor '\(name)' has dtype \(entry.dtype.rawValue); a floating-point dtype (F32, F64, F16 or BF16) is expected")
        }
    }

    /// IEEE 754 binary16 to Float32 (subnormals, infinities and NaN included).
    static func halfToFloat(_ bits: UInt16) -> Float {
        let sign: Float = bits & 0x8000 == 0 ? 1 : -1
        let exponent = Int((bits >> 10) & 0x1F), fraction = Float(bits & 0x3FF)
        switch exponent {
        case 0: return sign * fraction * 0x1p-24
        case 31: return fraction == 0 ? sign * .infinity : .nan
        default: return sign * (1 + fraction / 1024) * Float(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }

    /// The I64 tensor called `name`, flattened.
    public func int64Tensor(_ name: String) throws -> (shape: [Int], values: [Int64]) {
        guard let entry = entries[name] else {
            throw SafeTensorsError(source: source, problem: "tensor '\(name)' is missing")
        }
        guard entry.dtype == .I64 else {
            throw SafeTensorsError(source: source, problem: "tensor '\(name)' has dtype \(entry.dtype.rawValue); I64 is expected")
        }
        var values = [Int64](repeating: 0, count: entry.byteRange.count / 8)
        values.withUnsafeMutableBytes { destination in
            bytes.withUnsafeBytes { source in
                destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[entry.byteRange]))
            }
        }
        return (entry.shape, values.map { Int64(littleEndian: $0) })
    }

    // MARK: - Writing

    /// A tensor to write.
    public enum Value: Sendable {
        case float32(shape: [Int], values: [Float])
        case int64(shape: [Int], values: [Int64])
    }

    /// Serialises tensors (written in the given order) and string metadata to safetensors bytes.
    public static func serialize(_ tensors: [(name: String, value: Value)], metadata: [String: String]) throws -> [UInt8] {
        var header: [String: HeaderEntry] = [:]
        if !metadata.isEmpty { header["__metadata__"] = .metadata(metadata) }
        var offset = 0
        for (name, value) in tensors {
            let (dtype, shape, byteCount): (String, [Int], Int) = switch value {
            case .float32(let shape, let values): ("F32", shape, values.count * 4)
            case .int64(let shape, let values): ("I64", shape, values.count * 8)
            }
            header[name] = .tensor(TensorInfo(dtype: dtype, shape: shape, data_offsets: [offset, offset + byteCount]))
            offset += byteCount
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var json = try encoder.encode(header)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var out = [UInt8]()
        out.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: json)
        for (_, value) in tensors {
            switch value {
            case .float32(_, let values):
                values.withUnsafeBytes { out.append(contentsOf: $0) }
            case .int64(_, let values):
                values.map(\.littleEndian).withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        return out
    }

    // MARK: - Header decoding

    private struct TensorInfo: Codable {
        let dtype: String
        let shape: [Int]
        let data_offsets: [Int]

        init(dtype: String, shape: [Int], data_offsets: [Int]) {
            self.dtype = dtype
            self.shape = shape
            self.data_offsets = data_offsets
        }

        init(from decoder: any Decoder) throws {
            // Only the three fields: an entry with more is not a tensor this reader understands.
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: ["dtype", "shape", "data_offsets"])
            let c = try decoder.container(keyedBy: CodingKeys.self)
            dtype = try c.decode(String.self, forKey: .dtype)
            shape = try c.decode([Int].self, forKey: .shape)
            data_offsets = try c.decode([Int].self, forKey: .data_offsets)
        }
    }

    private enum HeaderEntry: Codable {
        case tensor(TensorInfo)
        case metadata([String: String])

        init(from decoder: any Decoder) throws {
            // Told apart by name, so a bad tensor entry reports its own problem (e.g. a shape too
            // large for an integer), not "expected a string".
            let container = try decoder.singleValueContainer()
            if decoder.codingPath.last?.stringValue == "__metadata__" {
                guard let map = try? container.decode([String: String].self) else {
                    throw DecodingError.dataCorruptedError(in: container, debugDescription: "__metadata__ must be an object of strings")
                }
                self = .metadata(map)
            } else {
                self = .tensor(try container.decode(TensorInfo.self))
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .tensor(let info): try container.encode(info)
            case .metadata(let map): try container.encode(map)
            }
        }
    }
}

/// A safetensors file that failed validation: which file and what is wrong.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    public let source: String
    public let problem: String
    public var description: String { "\(source) is not a valid safetensors file: \(problem)" }
}

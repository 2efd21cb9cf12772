import CZlib
import Foundation

/// An 8-bit image (grey, RGB or RGBA) as PNG (ISO/IEC 15948): encoded with zlib for the report's
/// image grids, decoded (all five row filters) to check screenshots of the report.
public struct PNGImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// 1 (grey), 3 (RGB) or 4 (RGBA).
    public let channels: Int
    /// Row-major samples, `channels` per pixel.
    public var pixels: [UInt8]

    public enum PNGError: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        public var description: String {
            switch self { case .malformed(let problem): "not a PNG Bulwark can read: \(problem)" }
        }
    }

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && [1, 3, 4].contains(channels) && pixels.count == width * height * channels)
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    private static let signature: [UInt8] = [137, 80, 78, 71, 13, 10, 26, 10]

    /// The PNG file (rows unfiltered, zlib level 9).
    public func encoded() -> Data {
        var raw = [UInt8]()
        raw.reserveCapacity(height * (width * channels + 1))
        for row in 0..<height {
            raw.append(0)
            raw.append(contentsOf: pixels[(row * width * channels)..<((row + 1) * width * channels)])
        }
        var compressedCount = compressBound(uLong(raw.count))
        var compressed = [UInt8](repeating: 0, count: Int(compressedCount))
        let status = compress2(&compressed, &compressedCount, raw, uLong(raw.count), 9)
        precondition(status == Z_OK, "zlib compress2 failed (\(status))")
        var file = Data(Self.signature)
        var header = Data()
        for value in [UInt32(width), UInt32(height)] { header.append(contentsOf: withUnsafeBytes(of: value.bigEndian) { Array($0) }) }
        header.append(contentsOf: [8, [1: 0, 3: 2, 4: 6][channels]!, 0, 0, 0])
        Self.appendChunk("IHDR", header, to: &file)
        Self.appendChunk("tEXt", Data("Software\u{0}Bulwark".utf8), to: &file)
        Self.appendChunk("IDAT", Data(compressed.prefix(Int(compressedCount))), to: &file)
        Self.appendChunk("IEND", Data(), to: &file)
        return file
    }

    private static func appendChunk(_ type: String, _ body: Data, to file: inout Data) {
        file.append(contentsOf: withUnsafeBytes(of: UInt32(body.count).bigEndian) { Array($0) })
        let typed = Data(type.utf8) + body
        file.append(typed)
        let crc = typed.withUnsafeBytes { UInt32(crc32(0, $0.bindMemory(to: UInt8.self).baseAddress, uInt(typed.count))) }
        file.append(contentsOf: withUnsafeBytes(of: crc.bigEndian) { Array($0) })
    }

    /// Decodes an 8-bit, non-interlaced grey, RGB or RGBA PNG.
    /// - Throws: `PNGError.malformed` naming what is wrong or unsupported.
    public static func decode(_ data: Data) throws -> PNGImage {
        let bytes = [UInt8](data)
        guard bytes.count > 8, Array(bytes[0..<8]) == signature else { throw PNGError.malformed("no PNG signature") }
        var offset = 8, width = 0, height = 0, channels = 0
        var compressed = [UInt8]()
        func u32(_ at: Int) -> Int { Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3]) }
        while offset + 8 <= bytes.count {
            let length = u32(offset), type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            guard length >= 0, offset + 12 + length <= bytes.count else { throw PNGError.malformed("chunk \(type) runs past the end") }
            let body = bytes[(offset + 8)..<(offset + 8 + length)]
            switch type {
            case "IHDR":
                guard length == 13 else { throw PNGError.malformed("IHDR has \(length) bytes") }
                width = u32(offset + 8)
                height = u32(offset + 12)
                let (depth, color, interlace) = (body[body.startIndex + 8], body[body.startIndex + 9], body[body.startIndex + 12])
                guard depth == 8, interlace == 0, let count = [0: 1, 2: 3, 6: 4][Int(color)] else {
                    throw PNGError.malformed("bit depth \(depth), colour type \(color), interlace \(interlace) (supported: 8-bit grey, RGB, RGBA, no interlace)")
                }
                guard (1...20_000).contains(width), (1...20_000).contains(height) else { throw PNGError.malformed("size \(width)×\(height)") }
                channels = count
            case "IDAT": compressed.append(contentsOf: body)
            case "IEND": offset = bytes.count
            default: break
            }
            offset += 12 + length
        }
        guard channels > 0 else { throw PNGError.malformed("no IHDR") }
        let stride = width * channels
        var raw = [UInt8](repeating: 0, count: height * (stride + 1))
        var rawCount = uLong(raw.count)
        guard uncompress(&raw, &rawCount, compressed, uLong(compressed.count)) == Z_OK, Int(rawCount) == raw.count else {
            throw PNGError.malformed("the image data does not inflate to \(height) rows of \(stride) bytes")
        }
        var pixels = [UInt8](repeating: 0, count: height * stride)
        for row in 0..<height {
            let filter = raw[row * (stride + 1)]
            for i in 0..<stride {
                let x = raw[row * (stride + 1) + 1 + i]
                let a = i >= channels ? Int(pixels[row * stride + i - channels]) : 0
                let b = row > 0 ? Int(pixels[(row - 1) * stride + i]) : 0
                let c = i >= channels && row > 0 ? Int(pixels[(row - 1) * stride + i - channels]) : 0
                let predictor: Int
                switch filter {
                case 0: predictor = 0
                case 1: predictor = a
                case 2: predictor = b
                case 3: predictor = (a + b) / 2
                case 4:
                    let p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c)
                    predictor = pa <= pb && pa <= pc ? a : (pb <= pc ? b : c)
                default: throw PNGError.malformed("row \(row) has filter type \(filter)")
                }
                pixels[row * stride + i] = UInt8(truncatingIfNeeded: Int(x) + predictor)
            }
        }
        return PNGImage(width: width, height: height, channels: channels, pixels: pixels)
    }
}

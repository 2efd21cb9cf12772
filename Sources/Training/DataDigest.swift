import BulwarkSecurity
import TensorCore

extension LabeledData {
    /// SHA-256 of the examples themselves (features as little-endian Float32, then labels as
    /// little-endian Int64), whatever file they came from: reports and partial results record it,
    /// and comparisons and merges refuse different data.
    public var contentDigest: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(features.scalars.count * 4 + labels.count * 8)
        for value in features.scalars { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        for label in labels { withUnsafeBytes(of: Int64(label).littleEndian) { bytes.append(contentsOf: $0) } }
        return FileDigest.sha256(bytes)
    }
}

import _CKernels

/// A constant right-hand side of matrix products, packed once in panels of 32 columns, so that
/// `product` reads it without repacking (OpenBLAS repacks both operands on every call, about a
/// tenth of an attack step's time at an attack batch's sizes). A dense layer's weights are packed
/// this way while an attack runs (`Sequential.withPackedWeights`).
///
/// Each element of a product is the sum over the inner dimension in order (plus the output when
/// accumulating): the same values up to rounding as `BLAS.gemm`, not bit for bit.
public final class PackedMatrix: @unchecked Sendable {
    /// The logical shape (k, n) of the packed matrix B in C = A·B.
    public let rows: Int, columns: Int
    let storage: FloatBuffer

    /// Whether products run a vector kernel on this CPU (AVX-512); without it they are slower than
    /// `BLAS.gemm`, and callers should not pack.
    public static let isFast = bulwark_packed_gemm_fast() != 0

    /// Packs the (k, n) matrix `m`, or its transpose if `transposed` (then `m` is (n, k)).
    public init(_ m: MatrixRef, transposed: Bool) {
        (rows, columns) = transposed ? (m.columns, m.rows) : (m.rows, m.columns)
        storage = FloatBuffer(count: bulwark_packed_size(rows, columns))
        // Element (p, j) of the packed matrix is m[p, j], or m[j, p] when transposed.
        let (rowStride, columnStride) = transposed ? (1, m.columns) : (m.columns, 1)
        bulwark_pack_panels(m.base, rows, columns, rowStride, columnStride, storage.pointer)
    }

    /// c = a·B, or c += a·B if `accumulate`. `portable` runs the plain loop that CPUs without
    /// AVX-512 would run (for tests).
    public func product(_ a: MatrixRef, into c: MatrixRef, accumulate: Bool = false, portable: Bool = false) {
        precondition(a.columns == rows && c.rows == a.rows && c.columns == columns,
                     "packed product shapes: A \(a.rows)×\(a.columns), B \(rows)×\(columns), C \(c.rows)×\(c.columns)")
        if portable && rows > 0 {
            bulwark_packed_gemm_plain(a.rows, columns, rows, a.base, a.columns, storage.pointer, c.base, c.columns, accumulate ? 1 : 0)
        } else {
            bulwark_packed_gemm(a.rows, columns, rows, a.base, a.columns, storage.pointer, c.base, c.columns, accumulate ? 1 : 0)
        }
    }
}

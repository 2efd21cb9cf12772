/// A non-owning, row-major `rows × columns` view of Float32 memory.
///
/// Views are cheap values (a pointer and two integers). The owner (a `FloatBuffer` or a scoped
/// `withUnsafe…` call) must outlive every use of the view.
@frozen
public struct MatrixRef: @unchecked Sendable {
    public let base: UnsafeMutablePointer<Float>
    public let rows: Int
    public let columns: Int

    @inlinable
    public init(_ base: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
        precondition(rows >= 0 && columns >= 0, "matrix shape must be non-negative, got \(rows)×\(columns)")
        self.base = base
        self.rows = rows
        self.columns = columns
    }

    @inlinable public var count: Int { rows * columns }

    @inlinable public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: base, count: count)
    }

    @inlinable
    public subscript(row: Int, column: Int) -> Float {
        get { base[row * columns + column] }
        nonmutating set { base[row * columns + column] = newValue }
    }

    /// Pointer to the first element of row `row`.
    @inlinable public func row(_ row: Int) -> UnsafeMutablePointer<Float> { base + row * columns }

    /// The rows `range` of this matrix, sharing memory.
    @inlinable
    public func rows(_ range: Range<Int>) -> MatrixRef {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "rows \(range) outside 0..<\(rows)")
        return MatrixRef(base + range.lowerBound * columns, rows: range.count, columns: columns)
    }

    @inlinable
    public func copy(from other: MatrixRef) {
        precondition(other.rows == rows && other.columns == columns,
                     "copy from \(other.rows)×\(other.columns) into \(rows)×\(columns)")
        base.update(from: other.base, count: count)
    }

    public var array: [Float] { Array(buffer) }
}

/// Owned Float32 storage with a stable address, 64-byte aligned, allocated once and reused.
///
/// Parameters, gradients, optimizer moments and workspaces live in `FloatBuffer`s; layers and
/// kernels work on `MatrixRef` views into them, so a steady-state step allocates nothing.
public final class FloatBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// A zero-filled buffer of `count` floats.
    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer count must be non-negative, got \(count)")
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
        self.count = count
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { pointer.deallocate() }

    @inlinable public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }

    /// A `rows × columns` row-major view of the first `rows·columns` floats.
    @inlinable public func matrix(rows: Int, columns: Int, offset: Int = 0) -> MatrixRef {
        precondition(offset >= 0 && offset + rows * columns <= count,
                     "view (\(rows)×\(columns) at \(offset)) exceeds buffer of \(count) floats")
        return MatrixRef(pointer + offset, rows: rows, columns: columns)
    }

    @inlinable public func zero() { pointer.update(repeating: 0, count: count) }

    public var array: [Float] { Array(buffer) }
}

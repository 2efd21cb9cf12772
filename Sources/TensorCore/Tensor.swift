/// A Float32, row-major tensor with a checked shape: the value type used at API boundaries
/// (datasets, model files, results). Hot loops use `MatrixRef` views instead.
public struct Tensor: Sendable, Equatable {
    public let shape: [Int]
    public var scalars: [Float]

    /// - Precondition: `scalars.count` equals the product of `shape`.
    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "tensor shape must be non-negative, got \(shape)")
        precondition(Tensor.elementCount(shape) == scalars.count,
                     "shape \(shape) needs \(Tensor.elementCount(shape) ?? -1) scalars, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: 0, count: Tensor.elementCount(shape) ?? 0))
    }

    /// Product of the dimensions, or nil if it overflows `Int`.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var total = 1
        for dimension in shape {
            let (product, overflow) = total.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            total = product
        }
        return total
    }

    public var rank: Int { shape.count }
    public var count: Int { scalars.count }

    /// Rows and columns of a rank-2 tensor (a rank-1 tensor is one row).
    public var matrixShape: (rows: Int, columns: Int) {
        switch rank {
        case 1: return (1, shape[0])
        case 2: return (shape[0], shape[1])
        default: preconditionFailure("tensor of shape \(shape) is not a matrix")
        }
    }

    public subscript(row: Int, column: Int) -> Float {
        get { scalars[row * matrixShape.columns + column] }
        set { scalars[row * matrixShape.columns + column] = newValue }
    }

    /// Calls `body` with a view of this rank-1 or rank-2 tensor; the view must not escape.
    public mutating func withMatrix<R>(_ body: (MatrixRef) throws -> R) rethrows -> R {
        let (rows, columns) = matrixShape
        if scalars.isEmpty {  // an empty array may have no storage address; give the view a valid one
            var placeholder: [Float] = [0]
            return try placeholder.withUnsafeMutableBufferPointer { try body(MatrixRef($0.baseAddress!, rows: rows, columns: columns)) }
        }
        return try scalars.withUnsafeMutableBufferPointer { buffer in
            try body(MatrixRef(buffer.baseAddress!, rows: rows, columns: columns))
        }
    }

    /// A copy of the rows `range` as a new tensor.
    public func rows(_ range: Range<Int>) -> Tensor {
        let columns = matrixShape.columns
        return Tensor(shape: [range.count, columns],
                      scalars: Array(scalars[(range.lowerBound * columns)..<(range.upperBound * columns)]))
    }

    /// A tensor holding the rows at `indices`, in that order.
    public func gatherRows(_ indices: [Int]) -> Tensor {
        let columns = matrixShape.columns
        var result = [Float]()
        result.reserveCapacity(indices.count * columns)
        for index in indices {
            result.append(contentsOf: scalars[(index * columns)..<((index + 1) * columns)])
        }
        return Tensor(shape: [indices.count, columns], scalars: result)
    }
}

extension MatrixRef {
    /// A new tensor holding a copy of this view.
    public var tensor: Tensor { Tensor(shape: [rows, columns], scalars: array) }
}

extension Tensor {
    /// A `rows` × `columns` tensor of independent uniform values in [0, 1) from `generator` (row by
    /// row), such as uniform-noise images.
    public static func uniform(rows: Int, columns: Int, using generator: inout RandomGenerator) -> Tensor {
        Tensor(shape: [rows, columns], scalars: (0..<(rows * columns)).map { _ in generator.nextUnitFloat() })
    }

    /// Calls `body` with a read-only view of this tensor: `body` must not write through it.
    public func withReadOnlyMatrix<R>(_ body: (MatrixRef) throws -> R) rethrows -> R {
        let (rows, columns) = matrixShape
        if scalars.isEmpty {
            var copy = self
            return try copy.withMatrix(body)
        }
        return try scalars.withUnsafeBufferPointer { buffer in
            try body(MatrixRef(UnsafeMutablePointer(mutating: buffer.baseAddress!), rows: rows, columns: columns))
        }
    }
}

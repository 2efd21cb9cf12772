import Testing
import TensorCore
import _TestSupport

@Suite("GEMM: BLAS against the naive reference")
struct GEMMTests {
    /// (m, n, k) shapes including 1×1×1, sizes that are not multiples of 8, and thin matrices.
    static let shapes: [(Int, Int, Int)] = [(1, 1, 1), (1, 7, 3), (5, 1, 9), (3, 5, 7), (17, 9, 13), (33, 65, 1), (64, 10, 257), (128, 256, 784)]

    @Test("every transpose combination, α and β", arguments: Transpose.allCases, Transpose.allCases)
    func matchesReference(transposeA: Transpose, transposeB: Transpose) {
        for (index, (m, n, k)) in Self.shapes.enumerated() {
            var a = TestSupport.randomTensor(rows: transposeA == .none ? m : k, columns: transposeA == .none ? k : m, seed: UInt64(index))
            var b = TestSupport.randomTensor(rows: transposeB == .none ? k : n, columns: transposeB == .none ? n : k, seed: UInt64(index + 100))
            var fast = TestSupport.randomTensor(rows: m, columns: n, seed: UInt64(index + 200))
            var naive = fast
            for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-2, 0.25)] {
                a.withMatrix { a in b.withMatrix { b in
                    fast.withMatrix { BLAS.gemm(a, transposeA, times: b, transposeB, into: $0, alpha: alpha, beta: beta) }
                    naive.withMatrix { Reference.gemm(a, transposeA, times: b, transposeB, into: $0, alpha: alpha, beta: beta) }
                } }
                #expect(TestSupport.close(fast.scalars, naive.scalars, relative: 1e-4, absolute: 1e-4),
                        "m=\(m) n=\(n) k=\(k) α=\(alpha) β=\(beta)")
            }
        }
    }

    @Test("k = 0 scales C by β")
    func emptyInnerDimension() {
        var a = Tensor(shape: [3, 0], scalars: [])
        var b = Tensor(shape: [0, 2], scalars: [])
        var c = Tensor(shape: [3, 2], scalars: [1, 2, 3, 4, 5, 6])
        a.withMatrix { a in b.withMatrix { b in c.withMatrix { BLAS.gemm(a, times: b, into: $0, beta: 0.5) } } }
        #expect(c.scalars == [0.5, 1, 1.5, 2, 2.5, 3])
    }
}


@Suite("Packed products against the naive reference")
struct PackedMatrixTests {
    /// (m, n, k): row counts around the kernel's 12-row blocks, column counts around its 32-column
    /// panels (partial panels of 1, 10, 16, 31, 33 columns), and an attack layer's size.
    static let shapes: [(Int, Int, Int)] = [(1, 1, 1), (5, 10, 7), (12, 32, 3), (13, 33, 9), (25, 16, 50), (11, 31, 1), (24, 70, 17),
                                            (37, 64, 256), (178, 256, 784)]

    @Test("C = A·B and C += A·B, B packed as given or transposed, vector and portable kernels",
          arguments: [false, true], [false, true])
    func matchesReference(transposed: Bool, portable: Bool) {
        for (index, (m, n, k)) in Self.shapes.enumerated() {
            var a = TestSupport.randomTensor(rows: m, columns: k, seed: UInt64(300 + index))
            var b = TestSupport.randomTensor(rows: transposed ? n : k, columns: transposed ? k : n, seed: UInt64(400 + index))
            let packed = b.withMatrix { PackedMatrix($0, transposed: transposed) }
            #expect(packed.rows == k && packed.columns == n)
            for accumulate in [false, true] {
                var fast = TestSupport.randomTensor(rows: m, columns: n, seed: UInt64(500 + index))
                var naive = fast
                a.withMatrix { a in
                    fast.withMatrix { packed.product(a, into: $0, accumulate: accumulate, portable: portable) }
                    b.withMatrix { b in naive.withMatrix { Reference.gemm(a, times: b, transposed ? .transposed : .none, into: $0, beta: accumulate ? 1 : 0) } }
                }
                #expect(TestSupport.close(fast.scalars, naive.scalars, relative: 1e-4, absolute: 1e-4),
                        "m=\(m) n=\(n) k=\(k) transposed=\(transposed) accumulate=\(accumulate)")
            }
        }
    }

    @Test("the product writes only C's m × n block of a larger buffer")
    func writesOnlyItsBlock() {
        var a = TestSupport.randomTensor(rows: 13, columns: 5, seed: 1)
        var b = TestSupport.randomTensor(rows: 5, columns: 33, seed: 2)
        let packed = b.withMatrix { PackedMatrix($0, transposed: false) }
        var storage = [Float](repeating: 7, count: 13 * 33 + 64)
        storage.withUnsafeMutableBufferPointer { buffer in
            a.withMatrix { packed.product($0, into: MatrixRef(buffer.baseAddress!, rows: 13, columns: 33)) }
        }
        #expect(storage[(13 * 33)...].allSatisfy { $0 == 7 }, "nothing past C is written")
    }
}

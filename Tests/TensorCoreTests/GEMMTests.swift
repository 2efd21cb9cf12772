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


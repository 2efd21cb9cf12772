import CBLAS
import _OpenBLASCore

/// Whether a GEMM operand is used as stored or transposed.
public enum Transpose: Sendable, CaseIterable {
    case none, transposed

    @usableFromInline var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

/// Labelled Swift wrappers over OpenBLAS's CBLAS (row-major). Shapes are checked before the call.
public enum BLAS {
    /// General matrix multiply, every transpose combination:
    /// ```
    /// C ← α · op(A) · op(B) + β · C,   op(A): m×k,  op(B): k×n,  C: m×n
    /// ```
    /// - Precondition: the shapes agree (a programmer error otherwise).
    @inlinable
    public static func gemm(
        _ a: MatrixRef, _ transposeA: Transpose = .none,
        times b: MatrixRef, _ transposeB: Transpose = .none,
        into c: MatrixRef, alpha: Float = 1, beta: Float = 0
    ) {
        let (m, k) = transposeA == .none ? (a.rows, a.columns) : (a.columns, a.rows)
        let (kB, n) = transposeB == .none ? (b.rows, b.columns) : (b.columns, b.rows)
        precondition(k == kB && c.rows == m && c.columns == n,
                     "gemm shapes: op(A) \(m)×\(k), op(B) \(kB)×\(n), C \(c.rows)×\(c.columns)")
        guard m > 0, n > 0 else { return }
        if k == 0 {  // BLAS leaves C unscaled by β when k = 0 on some builds; make it explicit.
            Kernels.scale(c.buffer, by: beta)
            return
        }
        cblas_sgemm(
            CblasRowMajor, transposeA.cblas, transposeB.cblas,
            Int32(m), Int32(n), Int32(k),
            alpha, a.base, Int32(max(a.columns, 1)), b.base, Int32(max(b.columns, 1)),
            beta, c.base, Int32(max(c.columns, 1)))
    }

    /// Σᵢ xᵢ·yᵢ over `count` contiguous elements.
    @inlinable
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
        guard count > 0 else { return 0 }
        return cblas_sdot(Int32(count), x, 1, y, 1)
    }

    /// Euclidean norm of `x`.
    @inlinable
    public static func norm2(_ x: UnsafeBufferPointer<Float>) -> Float {
        guard !x.isEmpty else { return 0 }
        return cblas_snrm2(Int32(x.count), x.baseAddress!, 1)
    }

    /// The OpenBLAS kernel family running the GEMMs ("SkylakeX", "Haswell", …), the one OpenBLAS
    /// chose by itself, and why they differ. When OpenBLAS does not know the CPU model it falls back
    /// to SSE3 kernels ("Prescott"); Bulwark then selects the family matching the CPU's vector
    /// extensions before `main` (see `_OpenBLASCore`). `OPENBLAS_CORETYPE` overrides both.
    public static var kernels: KernelFamily {
        KernelFamily(inUse: String(cString: bulwark_openblas_core()),
                     detectedByOpenBLAS: String(cString: bulwark_openblas_detected_core()),
                     reason: String(cString: bulwark_openblas_core_reason()))
    }

    /// See `BLAS.kernels`.
    public struct KernelFamily: Sendable, Equatable, CustomStringConvertible {
        public var inUse: String
        public var detectedByOpenBLAS: String
        public var reason: String

        /// "SkylakeX (selected by Bulwark …)" or "Haswell (OpenBLAS's own choice)".
        public var description: String { "\(inUse) (\(reason))" }

        /// The widest vector extension a family's kernels use: 3 AVX-512, 2 AVX2 and FMA, 1 AVX, 0 SSE.
        public static func vectorLevel(of family: String) -> Int { Int(bulwark_openblas_core_vector_level(family)) }

        /// The widest vector extension this CPU and OS support, on the same scale.
        public static var cpuVectorLevel: Int { Int(bulwark_cpu_vector_level()) }
    }

    /// Number of threads OpenBLAS uses for one call.
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set {
            precondition(newValue >= 1, "BLAS thread count must be at least 1, got \(newValue)")
            openblas_set_num_threads(Int32(newValue))
        }
    }
}

extension Reference {
    /// Triple-loop GEMM with the same contract as `BLAS.gemm` (Double accumulation).
    public static func gemm(
        _ a: MatrixRef, _ transposeA: Transpose = .none,
        times b: MatrixRef, _ transposeB: Transpose = .none,
        into c: MatrixRef, alpha: Float = 1, beta: Float = 0
    ) {
        let (m, k) = transposeA == .none ? (a.rows, a.columns) : (a.columns, a.rows)
        let n = transposeB == .none ? b.columns : b.rows
        func elementA(_ i: Int, _ p: Int) -> Float { transposeA == .none ? a[i, p] : a[p, i] }
        func elementB(_ p: Int, _ j: Int) -> Float { transposeB == .none ? b[p, j] : b[j, p] }
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k { sum += Double(elementA(i, p)) * Double(elementB(p, j)) }
                c[i, j] = alpha * Float(sum) + (beta == 0 ? 0 : beta * c[i, j])
            }
        }
    }
}

/// Naive reference implementations of every fast kernel, used by the tests.
public enum Reference {}

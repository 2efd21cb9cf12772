import Attacks
import CBLAS

/// The inputs a certificate covers, for a chunk of examples: the ε-ball of `norm` around each
/// example. For L∞ the ball is intersected with the pixel domain [0, 1] (every attack's projection
/// does the same), which gives a box; an L2 ball is used whole (a superset of its intersection with
/// the domain, so the bounds stay sound).
struct InputRegion {
    let norm: Norm
    let rows: Int
    let width: Int
    /// The examples (rows × width).
    let points: [Double]
    let labels: [Int]
    let epsilons: [Double]
    /// L∞: the box's centre and half-widths (rows × width); L2: the points and zeros.
    let center: [Double]
    let radius: [Double]

    init(norm: Norm, points: [Double], width: Int, labels: [Int], epsilons: [Double]) {
        self.norm = norm
        rows = labels.count
        self.width = width
        self.points = points
        self.labels = labels
        self.epsilons = epsilons
        switch norm {
        case .linf:
            var center = [Double](repeating: 0, count: points.count)
            var radius = [Double](repeating: 0, count: points.count)
            for r in 0..<rows {
                let epsilon = epsilons[r]
                for j in 0..<width {
                    let x = points[r * width + j]
                    let lower = max(x - epsilon, 0), upper = min(x + epsilon, 1)
                    // An input outside [0, 1] keeps its own value as the box's end.
                    let low = min(lower, x), high = max(upper, x)
                    center[r * width + j] = (low + high) / 2
                    radius[r * width + j] = (high - low) / 2
                }
            }
            self.center = center
            self.radius = radius
        case .l2:
            center = points
            radius = [Double](repeating: 0, count: points.count)
        }
    }

    /// The largest L2 distance from example `row` to a point of its region (for Lipschitz bounds).
    func l2Radius(row: Int) -> Double {
        switch norm {
        case .l2: return epsilons[row]
        case .linf:
            var sum = 0.0
            for j in 0..<width {
                let index = row * width + j
                let x = points[index]
                let deviation = max(x - (center[index] - radius[index]), center[index] + radius[index] - x)
                sum += deviation * deviation
            }
            return sum.squareRoot()
        }
    }

    /// max over the region of |λ·(x − c)| for a Float32 coefficient vector λ (width), accumulated
    /// in Float64: |λ|·r for a box, ε‖λ‖₂ for a ball.
    func spread(_ lambda: UnsafePointer<Float>, row: Int) -> Double {
        let base = row * width
        var total = SIMD4<Double>()
        var j = 0
        switch norm {
        case .linf:
            radius.withUnsafeBufferPointer { r in
                while j + 4 <= width {
                    let l = SIMD4<Double>(SIMD4<Float>(UnsafeBufferPointer(start: lambda + j, count: 4)))
                    let magnitude = l.replacing(with: -l, where: l .< 0)
                    total += magnitude * SIMD4<Double>(UnsafeBufferPointer(rebasing: r[(base + j)..<(base + j + 4)]))
                    j += 4
                }
                while j < width {
                    total[0] += abs(Double(lambda[j])) * r[base + j]
                    j += 1
                }
            }
            return total.sum()
        case .l2:
            while j + 4 <= width {
                let l = SIMD4<Double>(SIMD4<Float>(UnsafeBufferPointer(start: lambda + j, count: 4)))
                total += l * l
                j += 4
            }
            while j < width {
                total[0] += Double(lambda[j]) * Double(lambda[j])
                j += 1
            }
            return epsilons[row] * total.sum().squareRoot()
        }
    }

    /// min (or max) of λ·x + constant over row `row`'s region, for a coefficient vector λ (width).
    func concretize(_ lambda: UnsafePointer<Double>, constant: Double, row: Int, upper: Bool) -> Double {
        let base = row * width
        switch norm {
        case .linf:
            var linear = 0.0, spread = 0.0
            center.withUnsafeBufferPointer { c in
                radius.withUnsafeBufferPointer { r in
                    for j in 0..<width {
                        let l = lambda[j]
                        linear += l * c[base + j]
                        spread += abs(l) * r[base + j]
                    }
                }
            }
            return constant + linear + (upper ? spread : -spread)
        case .l2:
            let linear = points.withUnsafeBufferPointer { cblas_ddot(Int32(width), lambda, 1, $0.baseAddress! + base, 1) }
            let spread = epsilons[row] * cblas_dnrm2(Int32(width), lambda, 1)
            return constant + linear + (upper ? spread : -spread)
        }
    }
}

/// Row-major Float64 GEMM, C ← A·op(B) + β·C (A: m×k; B: k×n, or n×k transposed).
@inline(__always)
func dgemm(_ a: UnsafePointer<Double>, rows m: Int, inner k: Int, _ b: UnsafePointer<Double>, columns n: Int,
           transposeB: Bool, into c: UnsafeMutablePointer<Double>, beta: Double = 0) {
    guard m > 0, n > 0, k > 0 else {
        if beta == 0 { c.update(repeating: 0, count: m * n) }
        return
    }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k),
                1, a, Int32(k), b, Int32(transposeB ? k : n), beta, c, Int32(n))
}

import Foundation
import Testing
import TensorCore
import _TestSupport

@Suite("Element-wise kernels against naive references")
struct KernelTests {
    /// Lengths around the vector widths (4, 8) and their multiples.
    static let lengths = [1, 3, 7, 8, 9, 31, 64, 1001]

    func matrix(_ values: [Float]) -> Tensor { Tensor(shape: [1, values.count], scalars: values) }

    @Test("activations forward", arguments: lengths)
    func activationsForward(n: Int) {
        let x = TestSupport.randomValues(n, seed: UInt64(n), in: -4, 4)
        var input = matrix(x)
        var output = Tensor(zeros: [1, n])
        input.withMatrix { i in output.withMatrix { Kernels.relu(i, into: $0) } }
        #expect(output.scalars == Reference.relu(x))
        input.withMatrix { i in output.withMatrix { Kernels.leakyReLU(i, slope: 0.1, into: $0) } }
        #expect(TestSupport.close(output.scalars, Reference.leakyReLU(x, slope: 0.1)))
        input.withMatrix { i in output.withMatrix { Kernels.tanh(i, into: $0) } }
        #expect(TestSupport.close(output.scalars, Reference.tanh(x), relative: 1e-5, absolute: 1e-6))
        input.withMatrix { i in output.withMatrix { Kernels.sigmoid(i, into: $0) } }
        #expect(TestSupport.close(output.scalars, Reference.sigmoid(x), relative: 1e-5, absolute: 1e-6))
    }

    @Test("sigmoid does not overflow for large |x|")
    func sigmoidExtremes() {
        var input = matrix([-1000, -88, 0, 88, 1000])
        var output = Tensor(zeros: [1, 5])
        input.withMatrix { i in output.withMatrix { Kernels.sigmoid(i, into: $0) } }
        #expect(output.scalars.allSatisfy { $0.isFinite })
        #expect(output.scalars[0] == 0 && output.scalars[2] == 0.5 && output.scalars[4] == 1)
    }

    @Test("activations backward, including in place (dx aliasing dy)", arguments: lengths)
    func activationsBackward(n: Int) {
        let y = TestSupport.randomValues(n, seed: UInt64(n) + 1, in: -1, 1)
        let dy = TestSupport.randomValues(n, seed: UInt64(n) + 2)
        let cases: [(String, (MatrixRef, MatrixRef, MatrixRef) -> Void, (Float, Float) -> Float)] = [
            ("relu", { Kernels.reluBackward(output: $0, outputGradient: $1, into: $2) }, { y, g in y > 0 ? g : 0 }),
            ("leaky", { Kernels.leakyReLUBackward(output: $0, outputGradient: $1, slope: 0.2, into: $2) }, { y, g in y > 0 ? g : 0.2 * g }),
            ("tanh", { Kernels.tanhBackward(output: $0, outputGradient: $1, into: $2) }, { y, g in g * (1 - y * y) }),
            ("sigmoid", { Kernels.sigmoidBackward(output: $0, outputGradient: $1, into: $2) }, { y, g in g * y * (1 - y) }),
        ]
        for (name, kernel, reference) in cases {
            let expected = zip(y, dy).map(reference)
            var output = matrix(y), gradient = matrix(dy), result = Tensor(zeros: [1, n])
            output.withMatrix { o in gradient.withMatrix { g in result.withMatrix { kernel(o, g, $0) } } }
            #expect(TestSupport.close(result.scalars, expected, relative: 1e-6, absolute: 1e-7), "\(name)")
            output.withMatrix { o in gradient.withMatrix { g in kernel(o, g, g) } }  // in place
            #expect(TestSupport.close(gradient.scalars, expected, relative: 1e-6, absolute: 1e-7), "\(name) in place")
        }
    }

    @Test("column sums accumulate", arguments: [(1, 1), (3, 7), (128, 256), (5, 10)])
    func columnSums(rows: Int, columns: Int) {
        var g = TestSupport.randomTensor(rows: rows, columns: columns, seed: 9)
        var b = TestSupport.randomValues(columns, seed: 10)
        let expected = zip(b, g.withMatrix { Reference.columnSums($0) }).map { $0 + $1 }
        g.withMatrix { g in b.withUnsafeMutableBufferPointer { Kernels.accumulateColumnSums(of: g, into: $0.baseAddress!) } }
        #expect(TestSupport.close(b, expected, relative: 1e-5, absolute: 1e-5))
    }

    @Test("argmax takes the first maximum and skips NaN")
    func argmax() {
        var x = Tensor(shape: [4, 3], scalars: [1, 3, 2, 5, 5, 1, .nan, 0, 1, -3, -2, -1])
        var indices = [Int](repeating: -1, count: 4)
        x.withMatrix { m in indices.withUnsafeMutableBufferPointer { Kernels.argmaxRows(m, into: $0.baseAddress!) } }
        #expect(indices == [1, 0, 2, 2])
        var random = TestSupport.randomTensor(rows: 50, columns: 10, seed: 3)
        var fast = [Int](repeating: 0, count: 50)
        random.withMatrix { m in fast.withUnsafeMutableBufferPointer { Kernels.argmaxRows(m, into: $0.baseAddress!) } }
        #expect(fast == random.withMatrix { Reference.argmaxRows($0) })
    }

    @Test("axpy, scale and clamp", arguments: lengths)
    func vectorOperations(n: Int) {
        let x = TestSupport.randomValues(n, seed: 20, in: -2, 2)
        var y = TestSupport.randomValues(n, seed: 21, in: -2, 2)
        let expected = zip(x, y).map { $1 + 0.5 * $0 }
        x.withUnsafeBufferPointer { x in y.withUnsafeMutableBufferPointer { Kernels.axpy(0.5, x.baseAddress!, $0.baseAddress!, count: n) } }
        #expect(TestSupport.close(y, expected, relative: 1e-6, absolute: 1e-6))
        var z = x
        z.withUnsafeMutableBufferPointer { Kernels.scale($0, by: -3) }
        #expect(TestSupport.close(z, x.map { -3 * $0 }))
        z = x
        z.withUnsafeMutableBufferPointer { Kernels.clamp($0, lower: -1, upper: 0.5) }
        #expect(z == x.map { min(max($0, -1), 0.5) })
    }

    @Test("ReLU-change update of a dense layer equals recomputing it", arguments: [(37, 300), (256, 256), (5, 1), (16, 128)])
    func reluChangeUpdate(width: Int, n: Int) {
        let before = TestSupport.randomValues(width, seed: 30, in: -1, 1)
        var after = TestSupport.randomValues(width, seed: 31, in: -1, 1)
        for j in stride(from: 0, to: width, by: 3) { after[j] = before[j] }  // unchanged units
        let w = TestSupport.randomValues(width * n, seed: 32, in: -1, 1)  // (width, n)
        let relu = { (v: [Float]) in v.map { max($0, 0) } }
        func layer(_ a: [Float]) -> [Float] {
            (0..<n).map { o in (0..<width).reduce(Float(0)) { $0 + a[$1] * w[$1 * n + o] } }
        }
        let base = layer(relu(before))
        var out = [Float](repeating: .nan, count: n), index = [Int](repeating: 0, count: width), change = [Float](repeating: 0, count: width)
        let changed = Kernels.reluChangeUpdate(after: after, before: before, width: width, transposedWeights: w, outputs: n, base: base,
                                               into: &out, index: &index, change: &change)
        #expect(changed == zip(after, before).filter { max($0, 0) != max($1, 0) }.count)
        #expect(TestSupport.close(out, layer(relu(after)), relative: 1e-4, absolute: 1e-4))
    }

    @Test("rows update equals one axpy per changed input, bit for bit", arguments: [(784, 256, 9), (20, 37, 5), (3, 129, 0), (300, 16, 300)])
    func rowsUpdate(inputs: Int, n: Int, changed: Int) {
        let w = TestSupport.randomValues(inputs * n, seed: 40, in: -1, 1)  // (inputs, n)
        let base = TestSupport.randomValues(n, seed: 41, in: -1, 1)
        var generator = RandomGenerator(seed: 42)
        let index = (0..<changed).map { _ in generator.nextInt(below: inputs) }
        let change = TestSupport.randomValues(changed, seed: 43, in: -0.2, 0.2)
        var expected = base
        for t in 0..<changed { w.withUnsafeBufferPointer { Kernels.axpy(change[t], $0.baseAddress! + index[t] * n, &expected, count: n) } }
        var out = [Float](repeating: .nan, count: n)
        Kernels.rowsUpdate(base: base, into: &out, transposedWeights: w, outputs: n, index: index, change: change, count: changed)
        #expect(out == expected)
        var inPlace = base
        inPlace.withUnsafeMutableBufferPointer { Kernels.rowsUpdate(base: $0.baseAddress!, into: $0.baseAddress!, transposedWeights: w, outputs: n,
                                                                    index: index, change: change, count: changed) }
        #expect(inPlace == expected, "out may be base")
    }

    @Test("APGD's L∞ step equals its formula, bit for bit, and stays in the ball and [0, 1]")
    func apgdLinfStep() {
        let d = 1001
        var clean = TestSupport.randomValues(d, seed: 50, in: 0, 1)
        for j in stride(from: 0, to: d, by: 7) { clean[j] = 0 }  // background pixels
        for j in stride(from: 3, to: d, by: 11) { clean[j] = 1 }
        var gradient = TestSupport.randomValues(d, seed: 51, in: -1, 1)
        for j in stride(from: 0, to: d, by: 5) { gradient[j] = 0 }
        let (eta, a, epsilon): (Float, Float, Float) = (0.05, 0.75, 0.1)
        var x = zip(clean, TestSupport.randomValues(d, seed: 52, in: -0.1, 0.1)).map { min(max($0 + $1, 0), 1) }
        var old = zip(clean, TestSupport.randomValues(d, seed: 53, in: -0.1, 0.1)).map { min(max($0 + $1, 0), 1) }
        var (expectedX, expectedOld) = (x, old)
        for j in 0..<d {
            let lower = max(clean[j] - epsilon, 0), upper = min(clean[j] + epsilon, 1)
            let direction: Float = gradient[j] > 0 ? 1 : (gradient[j] < 0 ? -1 : 0)
            let z = min(max(expectedX[j] + eta * direction, lower), upper)
            let next = min(max(expectedX[j] + a * (z - expectedX[j]) + (1 - a) * (expectedX[j] - expectedOld[j]), lower), upper)
            expectedOld[j] = expectedX[j]
            expectedX[j] = next
        }
        Kernels.apgdLinfStep(&x, previous: &old, clean: clean, gradient: gradient, count: d, stepSize: eta, momentum: a, epsilon: epsilon)
        #expect(x == expectedX && old == expectedOld)
        #expect(zip(x, clean).allSatisfy { abs($0 - $1) <= epsilon * (1 + 1e-6) && $0 >= 0 && $0 <= 1 })
    }

    @Test("Adam update equals the scalar formula", arguments: [false, true])
    func adamUpdate(decoupled: Bool) {
        let n = 37
        var p = TestSupport.randomValues(n, seed: 1), g = TestSupport.randomValues(n, seed: 2)
        var m = TestSupport.randomValues(n, seed: 3, in: -0.1, 0.1), v = TestSupport.randomValues(n, seed: 4, in: 0, 0.1)
        let (lr, b1, b2, eps, wd) = (Float(0.01), Float(0.9), Float(0.999), Float(1e-8), Float(0.1))
        let t = 3.0
        let c1 = Float(1 - pow(0.9, t)), c2 = Float(1 - pow(0.999, t))
        var expected = p
        for i in 0..<n {
            let gi = g[i] + (decoupled ? 0 : wd * p[i])
            let mi = b1 * m[i] + (1 - b1) * gi
            let vi = b2 * v[i] + (1 - b2) * gi * gi
            let decayed = decoupled ? p[i] * (1 - lr * wd) : p[i]
            expected[i] = decayed - lr * (mi / c1) / ((vi / c2).squareRoot() + eps)
        }
        Kernels.adamUpdate(parameters: &p, gradients: &g, firstMoment: &m, secondMoment: &v, count: n,
                           stepSize: lr / c1, beta1: b1, beta2: b2, epsilon: eps, inverseRootCorrection2: 1 / c2.squareRoot(),
                           l2: decoupled ? 0 : wd, shrink: decoupled ? 1 - lr * wd : 1)
        #expect(TestSupport.close(p, expected, relative: 1e-5, absolute: 1e-6))
    }
}

@Suite("Reductions against naive references")
struct ReductionTests {
    @Test("row maxima and sums", arguments: [(1, 1), (3, 7), (17, 33)])
    func reductions(rows: Int, columns: Int) {
        var x = TestSupport.randomTensor(rows: rows, columns: columns, seed: 31, in: -5, 5)
        var maxima = [Float](repeating: 0, count: rows)
        x.withMatrix { m in maxima.withUnsafeMutableBufferPointer { Kernels.rowMax(m, into: $0.baseAddress!) } }
        #expect(maxima == (0..<rows).map { r in x.scalars[(r * columns)..<((r + 1) * columns)].max()! })
        let total = x.scalars.withUnsafeBufferPointer { Kernels.sum($0) }
        #expect(abs(total - x.scalars.reduce(0.0) { $0 + Double($1) }) < 1e-9)
        #expect(x.scalars.withUnsafeBufferPointer { Kernels.allFinite($0) })
        x.scalars[0] = .nan
        #expect(!x.scalars.withUnsafeBufferPointer { Kernels.allFinite($0) })
    }
}

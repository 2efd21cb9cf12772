import CBLAS

/// CROWN (Zhang et al. 2018, "Efficient Neural Network Robustness Certification with General
/// Activation Functions"): linear bounds propagated backwards. Every ReLU (or leaky ReLU) whose
/// input interval [l, u] straddles 0 is relaxed by two lines, the chord u/(u−l)·(x − l) above and
/// the adaptive line (slope 1 if u ≥ −l, else 0; for leaky ReLU 1 or its slope) below; a
/// coefficient vector λ over a layer is pushed back to the input through W and, per neuron, the
/// line the sign of λ calls for ("back-substitution"), then minimised over the input region in
/// closed form.
///
/// Intermediate bounds are CROWN's own (layer by layer, only for the neurons IBP leaves unstable:
/// a stable neuron's relaxation is exact whatever its bounds) intersected with IBP's, so the
/// result is never looser than IBP. The last layer is folded into the margin specification
/// z_y − z_j, as in IBP.
struct CROWN {
    let network: CertifiableNetwork
    let ibp: IntervalBoundPropagation

    /// Whether the products by the first layer run in Float32 with their rounding bounded (see
    /// `backSubstitute`); false computes everything in Float64 (for tests).
    let reducedPrecision: Bool

    init(network: CertifiableNetwork, reducedPrecision: Bool = true) {
        precondition(network.activationsCROWNCannotRelax.isEmpty, "CROWN relaxes piecewise-linear activations only")
        self.network = network
        self.reducedPrecision = reducedPrecision
        ibp = IntervalBoundPropagation(network: network)
    }

    /// Rows a coefficient matrix can have: the widest hidden layer, or the classes.
    var maximumRows: Int { network.affineLayers.reduce(network.classCount) { max($0, $1.outputWidth) } }

    /// Floats of one workspace.
    var workspaceSize: Int { 6 * maximumRows * network.maximumWidth + 2 * network.maximumWidth * network.maximumWidth + 2 * maximumRows }

    /// Scratch for one chunk's back-substitutions.
    final class Workspace {
        let capacity: Int
        let rows: Int
        /// The starting coefficients of a back-substitution, its working copy, and GEMM output.
        let initial: UnsafeMutablePointer<Double>
        let lambda: UnsafeMutablePointer<Double>
        let scratch: UnsafeMutablePointer<Double>
        let initialConstant: UnsafeMutablePointer<Double>
        let constant: UnsafeMutablePointer<Double>
        /// λ and W restricted to λ's non-zero columns, and which columns those are.
        let packed: UnsafeMutablePointer<Double>
        let packedWeight: UnsafeMutablePointer<Double>
        let usedColumns: UnsafeMutablePointer<Bool>
        let columnIndices: UnsafeMutablePointer<Int>
        /// The Float32 operands and product of the last step of a reduced-precision back-substitution.
        let packed32: UnsafeMutablePointer<Float>
        let packedWeight32: UnsafeMutablePointer<Float>
        let product32: UnsafeMutablePointer<Float>
        /// |W₁|·a for the current row, a being the largest |x| over its region (bounds the
        /// rounding of the Float32 product), and the row it belongs to.
        let reach: UnsafeMutablePointer<Double>
        /// W₁c for the current row's centre c.
        let firstLayerCenter: UnsafeMutablePointer<Double>
        var reachRow = -1
        /// The columns whose Float32 weight rows `packedWeight32` holds (the lower and upper passes
        /// of a row usually share them).
        var packedColumns: [Int] = []

        init(rows: Int, width: Int) {
            self.rows = rows
            capacity = rows * width
            initial = .allocate(capacity: capacity)
            lambda = .allocate(capacity: capacity)
            scratch = .allocate(capacity: capacity)
            initialConstant = .allocate(capacity: rows)
            constant = .allocate(capacity: rows)
            packed = .allocate(capacity: capacity)
            packedWeight = .allocate(capacity: width * width)
            usedColumns = .allocate(capacity: width)
            columnIndices = .allocate(capacity: width)
            packed32 = .allocate(capacity: capacity)
            packedWeight32 = .allocate(capacity: width * width)
            product32 = .allocate(capacity: capacity)
            reach = .allocate(capacity: width)
            firstLayerCenter = .allocate(capacity: width)
        }

        deinit {
            packed.deallocate()
            packedWeight.deallocate()
            usedColumns.deallocate()
            columnIndices.deallocate()
            packed32.deallocate()
            packedWeight32.deallocate()
            product32.deallocate()
            reach.deallocate()
            firstLayerCenter.deallocate()
            initial.deallocate()
            lambda.deallocate()
            scratch.deallocate()
            initialConstant.deallocate()
            constant.deallocate()
        }
    }

    /// The two lines bounding an activation on each neuron of a layer, from its input bounds.
    struct Relaxation {
        var slopeLower: [Double]
        var interceptLower: [Double]
        var slopeUpper: [Double]
        var interceptUpper: [Double]

        init(_ activation: CertifiableNetwork.Activation, lower: [Double], upper: [Double]) {
            let count = lower.count
            slopeLower = [Double](repeating: 0, count: count)
            interceptLower = slopeLower
            slopeUpper = slopeLower
            interceptUpper = slopeLower
            let negativeSlope: Double
            switch activation {
            case .relu: negativeSlope = 0
            case .leakyReLU(let slope): negativeSlope = slope
            case .tanh, .sigmoid: preconditionFailure("CROWN relaxes piecewise-linear activations only")
            }
            for j in 0..<count {
                (slopeLower[j], slopeUpper[j], interceptUpper[j]) = piecewiseLinearRelaxation(lower: lower[j], upper: upper[j],
                                                                                               negativeSlope: negativeSlope)
            }
        }
    }

    /// How much a row's bounds matter.
    enum Need {
        /// The tightest bounds.
        case full
        /// Only whether the worst margin's bound exceeds `tolerance`: the work stops as soon as that
        /// is decided (by the cheap bound, or by a point of the region that breaks the margin).
        case decision(tolerance: Double)
        /// Nothing (a misclassified example): IBP's bounds are kept.
        case none
    }

    /// Whether some activation's input comes from an affine layer after the first: only then do
    /// CROWN's own intermediate bounds differ from IBP's.
    var tightensIntermediateBounds: Bool {
        network.operations.indices.contains { t in
            if case .activation = network.operations[t], t >= 2, case .affine = network.operations[t - 1] { return true }
            return false
        }
    }

    /// Lower bounds of z_y − z_j over each row's region (rows × classes, +∞ at j = y).
    ///
    /// Each row is first bounded with IBP's intermediate intervals (CROWN-IBP, Zhang et al. 2020:
    /// one back-substitution of the margins), then, if that does not settle it, with CROWN's own
    /// intermediate bounds; the result is the largest of the sound bounds found.
    func margins(_ region: InputRegion, needs: [Need]? = nil, workspace: Workspace) -> [Double] {
        workspace.reachRow = -1  // the caches are per region
        workspace.packedColumns = []
        let intervals = ibp.bounds(region)
        var margins = intervals.margins
        let classes = network.classCount
        for row in 0..<region.rows {
            let need = needs?[row] ?? .full
            if case .none = need { continue }
            var bounds = finalMargins(row: row, region: region, relaxations: relaxations(row: row, intervals: intervals, region: region,
                                                                                    tighten: false, workspace: workspace),
                                      workspace: workspace)
            for j in 0..<classes { margins[row * classes + j] = max(margins[row * classes + j], bounds[j]) }
            guard tightensIntermediateBounds else { continue }
            if case .decision(let tolerance) = need {
                if margins[(row * classes)..<((row + 1) * classes)].min()! > tolerance { continue }
                if reducedPrecision, breaksMargin(row: row, region: region, coefficients: workspace.product32, tolerance: tolerance) { continue }
            }
            bounds = finalMargins(row: row, region: region, relaxations: relaxations(row: row, intervals: intervals, region: region,
                                                                               tighten: true, workspace: workspace),
                                  workspace: workspace)
            for j in 0..<classes { margins[row * classes + j] = max(margins[row * classes + j], bounds[j]) }
        }
        return margins
    }

    /// The relaxation of every activation for one row, from IBP's intervals, tightened (if
    /// `tighten`) by CROWN's own bounds of the neurons IBP leaves unstable.
    func relaxations(row: Int, intervals: IntervalBoundPropagation.Bounds, region: InputRegion, tighten: Bool,
                     workspace: Workspace) -> [Int: Relaxation] {
        let operations = network.operations
        var relaxations: [Int: Relaxation] = [:]
        var nodeBounds: [Int: (lower: [Double], upper: [Double])] = [:]
        for (t, operation) in operations.enumerated() {
            guard case .activation(let activation) = operation, let interval = intervals.activationInputs[t] else { continue }
            let width = interval.lower.count / region.rows
            var lower = Array(interval.lower[(row * width)..<((row + 1) * width)])
            var upper = Array(interval.upper[(row * width)..<((row + 1) * width)])
            switch operations[t - 1] {
            case .affine(let k) where tighten && t - 1 > 0:
                // The first affine layer's interval is already exact over the region.
                let unstable = (0..<width).filter { lower[$0] < 0 && upper[$0] > 0 }
                if !unstable.isEmpty {
                    let layer = network.affineLayers[k]
                    layer.weight.withUnsafeBufferPointer { w in
                        for (m, i) in unstable.enumerated() {
                            (workspace.initial + m * layer.inputWidth).update(from: w.baseAddress! + i * layer.inputWidth,
                                                                              count: layer.inputWidth)
                            workspace.initialConstant[m] = layer.bias[i]
                        }
                    }
                    let low = backSubstitute(rows: unstable.count, width: layer.inputWidth, from: t - 2, lower: true,
                                             relaxations: relaxations, region: region, row: row, workspace: workspace,
                                             reducedPrecision: reducedPrecision)
                    let high = backSubstitute(rows: unstable.count, width: layer.inputWidth, from: t - 2, lower: false,
                                              relaxations: relaxations, region: region, row: row, workspace: workspace,
                                              reducedPrecision: reducedPrecision)
                    for (m, i) in unstable.enumerated() {
                        lower[i] = max(lower[i], low[m])
                        upper[i] = min(upper[i], high[m])
                    }
                }
            case .activation(let previous):
                if let before = nodeBounds[t - 1] {
                    for j in 0..<width {
                        lower[j] = max(lower[j], previous(before.lower[j]))
                        upper[j] = min(upper[j], previous(before.upper[j]))
                    }
                }
            default: break
            }
            nodeBounds[t] = (lower, upper)
            relaxations[t] = Relaxation(activation, lower: lower, upper: upper)
        }
        return relaxations
    }

    /// Lower bounds of z_y − z_j for one row (classes, +∞ at y) by back-substitution of the margin
    /// specification (in reduced precision, so the final coefficients over the input, one row per
    /// j ≠ y in order, are left in the workspace's `product32`).
    func finalMargins(row: Int, region: InputRegion, relaxations: [Int: Relaxation],
                      workspace: Workspace) -> [Double] {
        guard case .affine(let k)? = network.operations.last else { preconditionFailure("the last operation must be affine") }
        let layer = network.affineLayers[k]
        let classes = network.classCount, y = region.labels[row]
        layer.weight.withUnsafeBufferPointer { w in
            var m = 0
            for j in 0..<classes where j != y {
                for c in 0..<layer.inputWidth {
                    workspace.initial[m * layer.inputWidth + c] = w[y * layer.inputWidth + c] - w[j * layer.inputWidth + c]
                }
                workspace.initialConstant[m] = layer.bias[y] - layer.bias[j]
                m += 1
            }
        }
        let result = backSubstitute(rows: classes - 1, width: layer.inputWidth, from: network.operations.count - 2, lower: true,
                                    relaxations: relaxations, region: region, row: row, workspace: workspace, reducedPrecision: reducedPrecision)
        var margins = [Double](repeating: .infinity, count: classes)
        var m = 0
        for j in 0..<classes where j != y {
            margins[j] = result[m]
            m += 1
        }
        return margins
    }

    /// Whether a point of the region has a margin ≤ `tolerance`, trying the points that minimise
    /// the linear lower bounds (`coefficients`, one row per j ≠ y over the input): if so, no bound
    /// can certify the row.
    func breaksMargin(row: Int, region: InputRegion, coefficients: UnsafeMutablePointer<Float>, tolerance: Double) -> Bool {
        let width = region.width, classes = network.classCount, y = region.labels[row]
        var points = [Double](repeating: 0, count: (classes - 1) * width)
        for m in 0..<(classes - 1) {
            let lambda = coefficients + m * width
            switch region.norm {
            case .linf:
                for c in 0..<width {
                    let index = row * width + c
                    points[m * width + c] = lambda[c] >= 0 ? region.center[index] - region.radius[index] : region.center[index] + region.radius[index]
                }
            case .l2:
                var norm = 0.0
                for c in 0..<width { norm += Double(lambda[c]) * Double(lambda[c]) }
                let scale = norm > 0 ? region.epsilons[row] / norm.squareRoot() : 0
                for c in 0..<width { points[m * width + c] = region.points[row * width + c] - scale * Double(lambda[c]) }
            }
        }
        let logits = network.logits(points, rows: classes - 1)
        for m in 0..<(classes - 1) {
            for j in 0..<classes where j != y && logits[m * classes + y] - logits[m * classes + j] <= tolerance { return true }
        }
        return false
    }

    /// The columns of λ (rows × width) that are not zero in every row, into the workspace's
    /// `columnIndices`, in order; returns how many.
    func nonZeroColumns(_ lambda: UnsafeMutablePointer<Double>, rows: Int, width: Int, workspace: Workspace) -> Int {
        let used = workspace.usedColumns
        used.update(repeating: false, count: width)
        for r in 0..<rows {
            let coefficients = lambda + r * width
            for c in 0..<width where coefficients[c] != 0 { used[c] = true }
        }
        var kept = 0
        for c in 0..<width where used[c] { workspace.columnIndices[kept] = c; kept += 1 }
        return kept
    }

    /// λ·W into `output` (rows × layer.inputWidth). The columns of λ that are zero in every row
    /// (neurons a ReLU switches off on the whole region) are left out of the product, often most of them.
    func multiply(_ lambda: UnsafeMutablePointer<Double>, rows: Int, width: Int, by layer: CertifiableNetwork.AffineLayer,
                  into output: UnsafeMutablePointer<Double>, workspace: Workspace) {
        let kept = nonZeroColumns(lambda, rows: rows, width: width, workspace: workspace)
        layer.weight.withUnsafeBufferPointer { weight in
            // Packing costs a copy of W's kept rows: worth it only for many rows of λ.
            guard kept * 10 < width * 9, rows >= 32 else {
                dgemm(lambda, rows: rows, inner: width, weight.baseAddress!, columns: layer.inputWidth, transposeB: false, into: output)
                return
            }
            for r in 0..<rows {
                for k in 0..<kept { workspace.packed[r * kept + k] = lambda[r * width + workspace.columnIndices[k]] }
            }
            for k in 0..<kept {
                (workspace.packedWeight + k * layer.inputWidth).update(from: weight.baseAddress! + workspace.columnIndices[k] * layer.inputWidth,
                                                                      count: layer.inputWidth)
            }
            dgemm(workspace.packed, rows: rows, inner: kept, workspace.packedWeight, columns: layer.inputWidth, transposeB: false, into: output)
        }
    }

    /// The last step of a reduced-precision back-substitution (see `backSubstitute`): the bounds
    /// of λ·(W₁x) + constant over the row's region, with λ·W₁ in Float32 and its rounding bounded.
    func reducedPrecisionBounds(_ lambda: UnsafeMutablePointer<Double>, rows: Int, width: Int, layer: CertifiableNetwork.AffineLayer,
                                lower: Bool, region: InputRegion, row: Int, workspace: Workspace) -> [Double] {
        if workspace.reachRow != row {
            // W₁c (c: the box's centre, or the ball's), exactly in Float64; and |W₁|s, s being the
            // box's half-widths, or ε for every pixel of a ball (‖v‖₂ ≤ ‖v‖₁).
            let base = row * region.width
            let spread = region.norm == .linf ? Array(region.radius[base..<(base + region.width)])
                                              : [Double](repeating: region.epsilons[row], count: region.width)
            region.center.withUnsafeBufferPointer { center in
                cblas_dgemv(CblasRowMajor, CblasNoTrans, Int32(layer.outputWidth), Int32(layer.inputWidth), 1, layer.weight,
                            Int32(layer.inputWidth), center.baseAddress! + base, 1, 0, workspace.firstLayerCenter, 1)
            }
            cblas_dgemv(CblasRowMajor, CblasNoTrans, Int32(layer.outputWidth), Int32(layer.inputWidth), 1, layer.absoluteWeight,
                        Int32(layer.inputWidth), spread, 1, 0, workspace.reach, 1)
            workspace.reachRow = row
        }
        let kept = nonZeroColumns(lambda, rows: rows, width: width, workspace: workspace)
        var roundingSlack = [Double](repeating: 0, count: rows)
        var centre = [Double](repeating: 0, count: rows)
        // γ_n = nu/(1 − nu) with n = kept + 1 products and sums, u = 2⁻²⁴; 1.01 covers the division.
        // Products that fall into Float32's subnormal range lose their relative accuracy: each can
        // be off by 2⁻¹⁴⁹ absolutely, which the second term covers (per input pixel and product).
        let gamma = 1.01 * Double(kept + 1) * 0x1p-24
        let subnormalSlack = Double(kept + 1) * Double(layer.inputWidth) * 0x1p-148
        for r in 0..<rows {
            var slack = 0.0, linear = 0.0
            for k in 0..<kept {
                let column = workspace.columnIndices[k]
                let value = lambda[r * width + column]
                workspace.packed32[r * kept + k] = Float(value)
                slack += abs(value) * workspace.reach[column]
                linear += value * workspace.firstLayerCenter[column]
            }
            roundingSlack[r] = gamma * slack + subnormalSlack
            centre[r] = workspace.constant[r] + linear
        }
        let columns = Array(UnsafeBufferPointer(start: workspace.columnIndices, count: kept))
        if columns != workspace.packedColumns {
            layer.weight32.withUnsafeBufferPointer { weight in
                for k in 0..<kept {
                    (workspace.packedWeight32 + k * layer.inputWidth).update(from: weight.baseAddress! + columns[k] * layer.inputWidth,
                                                                            count: layer.inputWidth)
                }
            }
            workspace.packedColumns = columns
        }
        if kept > 0 {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(layer.inputWidth), Int32(kept), 1,
                        workspace.packed32, Int32(kept), workspace.packedWeight32, Int32(layer.inputWidth), 0,
                        workspace.product32, Int32(layer.inputWidth))
        } else {
            workspace.product32.update(repeating: 0, count: rows * layer.inputWidth)
        }
        return (0..<rows).map { r in
            let spread = region.spread(workspace.product32 + r * layer.inputWidth, row: row) + roundingSlack[r]
            return lower ? centre[r] - spread : centre[r] + spread
        }
    }

    /// Bounds of λ·node + c over a row's region, for the coefficients (`rows` × `width`) and
    /// constants in the workspace's `initial` buffers, λ being over the output of operation `from`:
    /// pushed back through operations `from`, `from − 1`, …, 0, then minimised (or maximised).
    ///
    /// With `reducedPrecision`, the last product (by the first layer's weights, the largest) runs in
    /// Float32, twice as fast, and every bound is moved outwards by a bound of that product's
    /// rounding, |fl(λW₁) − λW₁| ≤ γ_{k+1}·|λ||W₁| (Higham 2002, §3.5; the +1 covers rounding λ to
    /// Float32). The value at the region's centre, λ·(W₁c), is computed from W₁c in Float64;
    /// only the spread around it, |λW₁|·r (or ε‖λW₁‖₂), uses the product, whose rounding then
    /// moves it by at most γ_{k+1}·|λ|·(|W₁|r) (ε·|W₁|1 for a ball). The bounds stay sound;
    /// they loosen by about 1e-5 relative. The final coefficients are left in the workspace's `product32`.
    func backSubstitute(rows: Int, width startWidth: Int, from start: Int, lower: Bool, relaxations: [Int: Relaxation],
                        region: InputRegion, row: Int, workspace: Workspace,
                        reducedPrecision: Bool = false) -> [Double] {
        // λ is read from `initial` (left unchanged, for the next pass) until the first step writes
        // it into `lambda`; products alternate between `lambda` and `scratch`.
        var lambda = workspace.initial
        let constant = workspace.constant
        constant.update(from: workspace.initialConstant, count: rows)
        var width = startWidth
        for t in stride(from: start, through: 0, by: -1) {
            switch network.operations[t] {
            case .affine(let k):
                let layer = network.affineLayers[k]
                cblas_dgemv(CblasRowMajor, CblasNoTrans, Int32(rows), Int32(width), 1, lambda, Int32(width),
                            layer.bias, 1, 1, constant, 1)
                if reducedPrecision && t == 0 {
                    return reducedPrecisionBounds(lambda, rows: rows, width: width, layer: layer, lower: lower,
                                                  region: region, row: row, workspace: workspace)
                }
                let output = lambda == workspace.lambda ? workspace.scratch : workspace.lambda
                multiply(lambda, rows: rows, width: width, by: layer, into: output, workspace: workspace)
                lambda = output
                width = layer.inputWidth
            case .activation:
                let relaxation = relaxations[t]!
                // A lower bound takes the lower line where λ ≥ 0 and the upper line where λ < 0; an
                // upper bound the opposite. Branch-free, so the loop vectorises.
                let (positive, negative) = lower ? (relaxation.slopeLower, relaxation.slopeUpper) : (relaxation.slopeUpper, relaxation.slopeLower)
                let (positiveShift, negativeShift) = lower ? (relaxation.interceptLower, relaxation.interceptUpper)
                                                           : (relaxation.interceptUpper, relaxation.interceptLower)
                positive.withUnsafeBufferPointer { positive in
                negative.withUnsafeBufferPointer { negative in
                positiveShift.withUnsafeBufferPointer { positiveShift in
                negativeShift.withUnsafeBufferPointer { negativeShift in
                    let output = lambda == workspace.initial ? workspace.lambda : lambda
                    for r in 0..<rows {
                        let coefficients = lambda + r * width
                        let result = output + r * width
                        var shift = SIMD4<Double>()
                        var j = 0
                        while j + 4 <= width {
                            let l = SIMD4<Double>(UnsafeBufferPointer(start: coefficients + j, count: 4))
                            let up = l.replacing(with: 0, where: l .< 0), down = l - up
                            let p = SIMD4<Double>(UnsafeBufferPointer(rebasing: positive[j..<(j + 4)]))
                            let n = SIMD4<Double>(UnsafeBufferPointer(rebasing: negative[j..<(j + 4)]))
                            let ps = SIMD4<Double>(UnsafeBufferPointer(rebasing: positiveShift[j..<(j + 4)]))
                            let ns = SIMD4<Double>(UnsafeBufferPointer(rebasing: negativeShift[j..<(j + 4)]))
                            let relaxed = up * p + down * n
                            for k in 0..<4 { result[j + k] = relaxed[k] }
                            shift += up * ps + down * ns
                            j += 4
                        }
                        var tail = shift.sum()
                        while j < width {
                            let l = coefficients[j]
                            let up = max(l, 0), down = min(l, 0)
                            result[j] = up * positive[j] + down * negative[j]
                            tail += up * positiveShift[j] + down * negativeShift[j]
                            j += 1
                        }
                        constant[r] += tail
                    }
                    lambda = output
                }}}}
            }
        }
        precondition(width == region.width, "back-substitution must end at the input")
        return (0..<rows).map { r in region.concretize(lambda + r * width, constant: constant[r], row: row, upper: !lower) }
    }
}

/// Interval bound propagation (IBP; Gowal et al. 2018, "On the Effectiveness of Interval Bound
/// Propagation for Training Verifiably Robust Models"): a box around every layer's output, as
/// centre ± radius, c' = W c + b and r' = |W| r through affine layers, σ applied to both ends
/// through monotone activations. The last layer is folded into the margins z_y − z_j ("elision"),
/// whose bounds (w_y − w_j)·c + b_y − b_j ∓ |w_y − w_j|·r are tighter than differences of
/// logit bounds.
struct IntervalBoundPropagation {
    let network: CertifiableNetwork

    /// Bounds of one chunk: the interval of every activation's input, and the margins' lower bounds.
    struct Bounds {
        /// For each operation index that is an activation, its input's lower and upper bounds (rows × width).
        var activationInputs: [Int: (lower: [Double], upper: [Double])] = [:]
        /// Lower bounds of z_y − z_j (rows × classes; +∞ at j = y).
        var margins: [Double] = []
    }

    func bounds(_ region: InputRegion) -> Bounds {
        var result = Bounds()
        let rows = region.rows
        var width = region.width
        var center = region.center
        var radius = region.radius
        // An L2 ball stays a ball until the first affine layer maps it to a box.
        var isL2Ball = region.norm == .l2
        let operations = network.operations
        for (index, operation) in operations.enumerated().dropLast() {
            switch operation {
            case .affine(let k):
                let layer = network.affineLayers[k]
                var nextCenter = [Double](repeating: 0, count: rows * layer.outputWidth)
                var nextRadius = [Double](repeating: 0, count: rows * layer.outputWidth)
                for r in 0..<rows {
                    for i in 0..<layer.outputWidth { nextCenter[r * layer.outputWidth + i] = layer.bias[i] }
                }
                dgemm(center, rows: rows, inner: width, layer.weight, columns: layer.outputWidth, transposeB: true,
                      into: &nextCenter, beta: 1)
                if isL2Ball {
                    for r in 0..<rows {
                        for i in 0..<layer.outputWidth { nextRadius[r * layer.outputWidth + i] = region.epsilons[r] * layer.rowNorms[i] }
                    }
                    isL2Ball = false
                } else {
                    dgemm(radius, rows: rows, inner: width, layer.absoluteWeight, columns: layer.outputWidth, transposeB: true,
                          into: &nextRadius)
                }
                center = nextCenter
                radius = nextRadius
                width = layer.outputWidth
            case .activation(let activation):
                if isL2Ball {  // The ball lies in the L∞ box of the same radius.
                    for r in 0..<rows { for j in 0..<width { radius[r * width + j] = region.epsilons[r] } }
                    isL2Ball = false
                }
                var lower = [Double](repeating: 0, count: rows * width)
                var upper = [Double](repeating: 0, count: rows * width)
                for e in 0..<(rows * width) {
                    lower[e] = center[e] - radius[e]
                    upper[e] = center[e] + radius[e]
                    let low = activation(lower[e]), high = activation(upper[e])
                    center[e] = (low + high) / 2
                    radius[e] = (high - low) / 2
                }
                result.activationInputs[index] = (lower, upper)
            }
        }
        guard case .affine(let k)? = operations.last else { preconditionFailure("the last operation must be affine") }
        result.margins = foldedMargins(network.affineLayers[k], center: center, radius: radius, width: width,
                                       ballRadius: isL2Ball ? region.epsilons : nil, labels: region.labels)
        return result
    }

    /// Lower bounds of z_y − z_j for a last layer applied to a box (or, for a one-layer network, to
    /// an L2 ball of radius `ballRadius[r]` around `center`).
    func foldedMargins(_ layer: CertifiableNetwork.AffineLayer, center: [Double], radius: [Double], width: Int,
                       ballRadius: [Double]?, labels: [Int]) -> [Double] {
        let rows = labels.count, classes = layer.outputWidth
        var logits = [Double](repeating: 0, count: rows * classes)
        dgemm(center, rows: rows, inner: width, layer.weight, columns: classes, transposeB: true, into: &logits)
        var margins = [Double](repeating: .infinity, count: rows * classes)
        layer.weight.withUnsafeBufferPointer { w in
            radius.withUnsafeBufferPointer { radius in
                for r in 0..<rows {
                    let y = labels[r]
                    for j in 0..<classes where j != y {
                        var spread = 0.0
                        if let ballRadius {
                            var squares = 0.0
                            for k in 0..<width { let d = w[y * width + k] - w[j * width + k]; squares += d * d }
                            spread = ballRadius[r] * squares.squareRoot()
                        } else {
                            for k in 0..<width { spread += abs(w[y * width + k] - w[j * width + k]) * radius[r * width + k] }
                        }
                        margins[r * classes + j] = logits[r * classes + y] - logits[r * classes + j]
                            + layer.bias[y] - layer.bias[j] - spread
                    }
                }
            }
        }
        return margins
    }
}

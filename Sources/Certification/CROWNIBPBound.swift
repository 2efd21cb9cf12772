import NeuralNet
import TensorCore

/// CROWN-IBP (Zhang et al. 2020, "Towards Stable and Efficient Training of Verifiably Robust
/// Neural Networks") for training: the margins z_y − z_j bounded by one CROWN back-substitution
/// whose ReLU relaxations come from IBP's intermediate boxes, in Float32 over a batch, and the exact
/// gradient of those bounds: with respect to every weight and bias directly, and with respect to
/// the IBP boxes (through the upper chord's slope u/(u − l) and intercept), which the caller adds
/// to IBP's own backward pass. The adaptive lower slope (1 if u ≥ −l, else 0 or the leaky slope)
/// is a choice, not differentiated.
///
/// The coefficient rows of all examples (B·(classes − 1) of them) are stacked, so each layer is one
/// GEMM; the relaxation scales each row by its own example's slopes.
final class CROWNIBPBound {
    /// The network as dense layers with a piecewise-linear activation between consecutive ones.
    struct Layer {
        let input: Int
        let output: Int
        let offset: Int
    }

    let layers: [Layer]
    /// The negative-side slope of each activation (0 for ReLU), between layer k and k + 1.
    let negativeSlopes: [Float]
    let rows: Int
    let classes: Int
    /// Per activation k (after layer k): Λ before and after its relaxation (R × width), the slopes and
    /// the upper intercept of each example's neurons (rows × width).
    private let before: [FloatBuffer], after: [FloatBuffer]
    private let lowerSlope: [FloatBuffer], upperSlope: [FloatBuffer], upperIntercept: [FloatBuffer]
    /// Λ over the input (R × d), the constants, their gradients, and scratch.
    private let inputCoefficients: FloatBuffer
    private let constants: FloatBuffer, constantGradient: FloatBuffer
    private let gradientA: FloatBuffer, gradientB: FloatBuffer
    /// The bound of each margin (rows × classes; 0 at j = y).
    let margins: FloatBuffer
    /// ∂L/∂centre and ∂L/∂radius of the IBP box at each activation's input (rows × width).
    let centerGradient: [FloatBuffer], radiusGradient: [FloatBuffer]

    init(layers: [Layer], negativeSlopes: [Float], rows: Int, classes: Int) {
        self.layers = layers
        self.negativeSlopes = negativeSlopes
        self.rows = rows
        self.classes = classes
        let R = rows * (classes - 1)
        let hidden = layers.dropLast().map(\.output)
        before = hidden.map { FloatBuffer(count: R * $0) }
        after = hidden.map { FloatBuffer(count: R * $0) }
        lowerSlope = hidden.map { FloatBuffer(count: rows * $0) }
        upperSlope = hidden.map { FloatBuffer(count: rows * $0) }
        upperIntercept = hidden.map { FloatBuffer(count: rows * $0) }
        inputCoefficients = FloatBuffer(count: R * layers[0].input)
        constants = FloatBuffer(count: R)
        constantGradient = FloatBuffer(count: R)
        let widest = ([layers[0].input] + layers.map(\.output)).max()!
        gradientA = FloatBuffer(count: R * widest)
        gradientB = FloatBuffer(count: R * widest)
        margins = FloatBuffer(count: rows * classes)
        centerGradient = hidden.map { FloatBuffer(count: rows * $0) }
        radiusGradient = hidden.map { FloatBuffer(count: rows * $0) }
    }

    /// The margins' lower bounds into `margins`, for `batchRows` rows, given the input box
    /// (`inputCenter`, `inputRadius`) and IBP's box at each activation's input.
    func forward(batchRows: Int, labels: UnsafePointer<Int>, parameters: UnsafeMutablePointer<Float>,
                 inputCenter: MatrixRef, inputRadius: MatrixRef, activationCenters: [MatrixRef], activationRadii: [MatrixRef]) {
        let n = batchRows, per = classes - 1, R = n * per
        let last = layers[layers.count - 1]
        let lastWeight = MatrixRef(parameters + last.offset, rows: last.output, columns: last.input)
        let lastBias = parameters + last.offset + last.output * last.input
        // Λ = C·W_L: row (i, j) is w_y − w_j; c = b_y − b_j.
        var lambda = gradientA.matrix(rows: R, columns: last.input)
        for i in 0..<n {
            let y = labels[i]
            var m = 0
            for j in 0..<classes where j != y {
                let row = lambda.row(i * per + m), wy = lastWeight.row(y), wj = lastWeight.row(j)
                for k in 0..<last.input { row[k] = wy[k] - wj[k] }
                constants.pointer[i * per + m] = lastBias[y] - lastBias[j]
                m += 1
            }
        }
        for k in stride(from: layers.count - 2, through: 0, by: -1) {
            let width = layers[k].output
            // The relaxation of activation k from IBP's box at its input.
            let center = activationCenters[k], radius = activationRadii[k]
            let aL = lowerSlope[k].pointer, aU = upperSlope[k].pointer, bU = upperIntercept[k].pointer
            let s = negativeSlopes[k]
            for e in 0..<(n * width) {
                (aL[e], aU[e], bU[e]) = piecewiseLinearRelaxation(lower: center.base[e] - radius.base[e], upper: center.base[e] + radius.base[e],
                                                                  negativeSlope: s)
            }
            let pre = before[k].matrix(rows: R, columns: width), post = after[k].matrix(rows: R, columns: width)
            pre.copy(from: lambda)
            for i in 0..<n {
                for m in 0..<per {
                    let r = i * per + m
                    let source = pre.row(r), target = post.row(r)
                    var shift: Float = 0
                    for h in 0..<width {
                        let value = source[h], slopeIndex = i * width + h
                        if value >= 0 { target[h] = value * aL[slopeIndex] }
                        else { target[h] = value * aU[slopeIndex]; shift += value * bU[slopeIndex] }
                    }
                    constants.pointer[r] += shift
                }
            }
            // Through layer k: c += Λ̃·b, Λ = Λ̃·W.
            let layer = layers[k]
            let weight = MatrixRef(parameters + layer.offset, rows: layer.output, columns: layer.input)
            let bias = parameters + layer.offset + layer.output * layer.input
            for r in 0..<R { constants.pointer[r] += BLAS.dot(post.row(r), bias, count: width) }
            let next = k == 0 ? inputCoefficients.matrix(rows: R, columns: layer.input)
                              : (lambda.base == gradientA.pointer ? gradientB : gradientA).matrix(rows: R, columns: layer.input)
            BLAS.gemm(post, .none, times: weight, .none, into: next)
            lambda = next
        }
        // min over the input box: Λ·c₀ − |Λ|·r₀ + c.
        let d = layers[0].input
        for i in 0..<n {
            let c0 = inputCenter.row(i), r0 = inputRadius.row(i)
            let y = labels[i]
            var m = 0
            for j in 0..<classes {
                if j == y { margins.pointer[i * classes + j] = 0; continue }
                let r = i * per + m, coefficients = lambda.row(r)
                var value = constants.pointer[r]
                for h in 0..<d { value += coefficients[h] * c0[h] - abs(coefficients[h]) * r0[h] }
                margins.pointer[i * classes + j] = value
                m += 1
            }
        }
    }

    /// Adds ∂L/∂θ to `gradients` for ∂L/∂margin in `marginGradient` (rows × classes; entries at y
    /// ignored), and leaves ∂L/∂(IBP centre, radius) at each activation's input in
    /// `centerGradient` and `radiusGradient`. Uses the buffers of the last `forward`.
    func backward(batchRows: Int, labels: UnsafePointer<Int>, parameters: UnsafeMutablePointer<Float>,
                  gradients: UnsafeMutablePointer<Float>, marginGradient: MatrixRef,
                  inputCenter: MatrixRef, inputRadius: MatrixRef, activationCenters: [MatrixRef], activationRadii: [MatrixRef]) {
        let n = batchRows, per = classes - 1, R = n * per
        let d = layers[0].input
        // The concretisation: ∂/∂Λ = g·(c₀ − sign(Λ)·r₀), ∂/∂c = g.
        var dLambda = gradientA.matrix(rows: R, columns: d)
        let lambda = inputCoefficients.matrix(rows: R, columns: d)
        for i in 0..<n {
            let c0 = inputCenter.row(i), r0 = inputRadius.row(i), y = labels[i]
            var m = 0
            for j in 0..<classes where j != y {
                let r = i * per + m, g = marginGradient[i, j]
                constantGradient.pointer[r] = g
                let coefficients = lambda.row(r), out = dLambda.row(r)
                for h in 0..<d {
                    let v = coefficients[h]
                    out[h] = g * (c0[h] - (v > 0 ? r0[h] : (v < 0 ? -r0[h] : 0)))
                }
                m += 1
            }
        }
        for k in 0..<(layers.count - 1) {
            let layer = layers[k], width = layer.output
            let weight = MatrixRef(parameters + layer.offset, rows: layer.output, columns: layer.input)
            let weightGradient = MatrixRef(gradients + layer.offset, rows: layer.output, columns: layer.input)
            let biasGradient = gradients + layer.offset + layer.output * layer.input
            let bias = parameters + layer.offset + layer.output * layer.input
            let post = after[k].matrix(rows: R, columns: width)
            // Layer k (Λ_out = Λ̃·W, c += Λ̃·b): ∂W += Λ̃ᵀ∂Λ_out, ∂b += Λ̃ᵀ∂c, ∂Λ̃ = ∂Λ_out·Wᵀ + ∂c·bᵀ.
            BLAS.gemm(post, .transposed, times: dLambda, .none, into: weightGradient, beta: 1)
            for r in 0..<R {
                let g = constantGradient.pointer[r], row = post.row(r)
                if g != 0 { for h in 0..<width { biasGradient[h] += g * row[h] } }
            }
            let dPost = (dLambda.base == gradientA.pointer ? gradientB : gradientA).matrix(rows: R, columns: width)
            BLAS.gemm(dLambda, .none, times: weight, .transposed, into: dPost)
            for r in 0..<R {
                let g = constantGradient.pointer[r], row = dPost.row(r)
                if g != 0 { for h in 0..<width { row[h] += g * bias[h] } }
            }
            // Activation k: Λ̃ = Λ⁺·a_L + Λ⁻·a_U, c += Λ⁻·b_U.
            let pre = before[k].matrix(rows: R, columns: width)
            let aL = lowerSlope[k].pointer, aU = upperSlope[k].pointer, bU = upperIntercept[k].pointer
            let dCenter = centerGradient[k].matrix(rows: n, columns: width), dRadius = radiusGradient[k].matrix(rows: n, columns: width)
            dCenter.buffer.update(repeating: 0)
            dRadius.buffer.update(repeating: 0)
            let center = activationCenters[k], radius = activationRadii[k]
            let s = negativeSlopes[k]
            for i in 0..<n {
                for h in 0..<width {
                    let e = i * width + h
                    let l = center.base[e] - radius.base[e], u = center.base[e] + radius.base[e]
                    var slopeGradient: Float = 0, interceptGradient: Float = 0
                    for m in 0..<per {
                        let r = i * per + m
                        let value = pre[r, h], g = dPost[r, h], gc = constantGradient.pointer[r]
                        if value >= 0 {
                            dPost.row(r)[h] = g * aL[e]
                        } else {
                            dPost.row(r)[h] = g * aU[e] + gc * bU[e]
                            slopeGradient += g * value
                            interceptGradient += gc * value
                        }
                    }
                    // Only an unstable neuron's chord depends on its bounds.
                    guard l < 0 && u > 0, slopeGradient != 0 || interceptGradient != 0 else { continue }
                    let span = u - l, chord = (u - s * l) / span
                    let chordByU = l * (s - 1) / (span * span), chordByL = u * (1 - s) / (span * span)
                    // b_U = l·(s − a_U).
                    let interceptByU = -l * chordByU, interceptByL = (s - chord) - l * chordByL
                    let dU = slopeGradient * chordByU + interceptGradient * interceptByU
                    let dL = slopeGradient * chordByL + interceptGradient * interceptByL
                    // l = c − r, u = c + r.
                    dCenter.base[e] += dU + dL
                    dRadius.base[e] += dU - dL
                }
            }
            dLambda = dPost
        }
        // Λ = C·W_L, c = b_y − b_j.
        let last = layers[layers.count - 1]
        let lastGradient = MatrixRef(gradients + last.offset, rows: last.output, columns: last.input)
        let lastBiasGradient = gradients + last.offset + last.output * last.input
        for i in 0..<n {
            let y = labels[i]
            var m = 0
            for j in 0..<classes where j != y {
                let r = i * per + m, row = dLambda.row(r), gy = lastGradient.row(y), gj = lastGradient.row(j)
                for h in 0..<last.input { gy[h] += row[h]; gj[h] -= row[h] }
                lastBiasGradient[y] += constantGradient.pointer[r]
                lastBiasGradient[j] -= constantGradient.pointer[r]
                m += 1
            }
        }
    }
}

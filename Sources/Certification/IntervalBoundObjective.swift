import Foundation
import NeuralNet
import TensorCore

/// The ε and κ of certified training at each step (Gowal et al. 2018, §4; Zhang et al. 2020):
/// `warmupEpochs` of natural training (ε = 0, κ = 1), then ε rising linearly to `epsilon` and κ
/// falling linearly to `finalKappa` over `rampEpochs`, then both held.
public struct CertifiedTrainingSchedule: Equatable, Sendable {
    public var epsilon: Float
    public var warmupEpochs: Double
    public var rampEpochs: Double
    public var finalKappa: Float

    public init(epsilon: Float, warmupEpochs: Double, rampEpochs: Double, finalKappa: Float) {
        self.epsilon = epsilon
        self.warmupEpochs = warmupEpochs
        self.rampEpochs = rampEpochs
        self.finalKappa = finalKappa
    }

    /// - Throws: `NeuralNetError.invalidHyperparameter` naming a bad value.
    public func validate() throws {
        guard epsilon > 0 && epsilon <= 1 else {
            throw NeuralNetError.invalidHyperparameter(name: "certified training ε", value: "\(epsilon)", requirement: "must be in (0, 1] (pixels are in [0, 1])")
        }
        guard warmupEpochs >= 0 && warmupEpochs.isFinite, rampEpochs >= 0 && rampEpochs.isFinite else {
            throw NeuralNetError.invalidHyperparameter(name: "certified training warm-up / ramp", value: "\(warmupEpochs) / \(rampEpochs)",
                                                       requirement: "must be finite numbers of epochs ≥ 0")
        }
        guard finalKappa >= 0 && finalKappa <= 1 else {
            throw NeuralNetError.invalidHyperparameter(name: "certified training κ", value: "\(finalKappa)", requirement: "must be in [0, 1]")
        }
    }

    /// ε and κ at `step` (0-based, over the whole run).
    public func values(step: Int, stepsPerEpoch: Int) -> (epsilon: Float, kappa: Float) {
        let epoch = Double(step) / Double(max(stepsPerEpoch, 1))
        let progress = rampEpochs == 0 ? (epoch >= warmupEpochs ? 1 : 0) : min(max((epoch - warmupEpochs) / rampEpochs, 0), 1)
        return (epsilon * Float(progress), 1 - (1 - finalKappa) * Float(progress))
    }
}

/// Certified training with interval bound propagation (Gowal et al. 2018, "On the Effectiveness of
/// Interval Bound Propagation for Training Verifiably Robust Models"):
/// ```
/// L = κ · CE(z(x), y) + (1 − κ) · CE(ẑ(x, ε), y),   ẑ_y = 0,  ẑ_j = −(lower bound of z_y − z_j over the ε-box)
/// ```
/// The bounds are IBP's, with the last layer folded into the margins (as `IntervalBoundPropagation`
/// computes them, in Float32 here), and the loss is differentiated through them exactly: through
/// c' = Wc + b and r' = |W|r (∂/∂W picks up sign(W)·(∂L/∂r')rᵀ) and through each activation's two
/// ends. ε and κ follow a `CertifiedTrainingSchedule`; while ε = 0 this is plain cross-entropy.
///
/// `@unchecked Sendable`: `workspaces` is set in `prepare` and the schedule's values in
/// `beginStep`, both before shards run; a shard then touches only its own workspace.
///
/// With `crownIBP`, the worst-case margins are β·(CROWN-IBP bounds) + (1 − β)·(IBP bounds), β
/// falling from 1 to 0 as ε ramps up (Zhang et al. 2020, "Towards Stable and Efficient Training of
/// Verifiably Robust Neural Networks"); CROWN-IBP needs dense layers with ReLU or leaky ReLU
/// between them (`crownIBPProblem(_:)` says why a model does not fit).
public final class IntervalBoundObjective: TrainingObjective, @unchecked Sendable {
    public let schedule: CertifiedTrainingSchedule
    public let crownIBP: Bool
    public let record: String
    /// The schedule's values for the current step.
    public private(set) var epsilon: Float = 0
    public private(set) var kappa: Float = 1
    /// The weight of the CROWN-IBP bounds (0 without `crownIBP`).
    public private(set) var crownWeight: Float = 0
    private var plan: [Operation] = []
    /// CROWN-IBP's bound and buffers, per shard (with `crownIBP`).
    var crownBounds: [CROWNIBPBound] = []
    /// One per shard (internal for tests).
    var workspaces: [Workspace] = []

    enum Operation {
        /// A dense layer whose parameters start at `offset` (weight out × in, then bias).
        case dense(input: Int, output: Int, offset: Int)
        case activation(LayerSpec)
    }

    /// - Parameter record: the objective's checkpoint record (its spec's canonical JSON).
    /// - Throws: `NeuralNetError.invalidHyperparameter` for a bad schedule.
    public init(schedule: CertifiedTrainingSchedule, crownIBP: Bool = false, record: String) throws {
        try schedule.validate()
        self.schedule = schedule
        self.crownIBP = crownIBP
        self.record = record
    }

    public var description: String {
        "\(crownIBP ? "CROWN-IBP" : "IBP") certified training (ε \(schedule.epsilon) after \(schedule.warmupEpochs) warm-up and \(schedule.rampEpochs) ramp epochs, κ → \(schedule.finalKappa))"
    }

    public func beginStep(_ step: Int, stepsPerEpoch: Int, batchRows: Int) {
        (epsilon, kappa) = schedule.values(step: step, stepsPerEpoch: stepsPerEpoch)
        crownWeight = crownIBP && epsilon > 0 ? 1 - epsilon / schedule.epsilon : 0
    }

    /// Why CROWN-IBP cannot train `architecture` (nil if it can): it needs dense layers with one
    /// ReLU or leaky ReLU between consecutive ones (dropout aside).
    public static func crownIBPProblem(_ architecture: ModelSpec) -> String? {
        var expectDense = true
        for layer in architecture.layers {
            switch layer {
            case .dropout: continue
            case .dense: guard expectDense else { break }; expectDense = false; continue
            case .relu, .leakyReLU: guard !expectDense else { break }; expectDense = true; continue
            case .tanh, .sigmoid: return "CROWN-IBP relaxes relu and leaky_relu; this model has \(layer == .tanh ? "tanh" : "sigmoid") (use --certified ibp)"
            }
            return "CROWN-IBP needs dense layers with one activation between consecutive ones; this model has two of a kind in a row"
        }
        return nil
    }

    /// Per-shard buffers: every node's centre and radius, |W| of every dense layer, the backward
    /// pass's ping-pong gradients, a weight-sized scratch, and the worst-case logits.
    final class Workspace {
        let centers: [FloatBuffer]
        let radii: [FloatBuffer]
        let absoluteWeights: [FloatBuffer]
        let gradientCenter: (FloatBuffer, FloatBuffer)
        let gradientRadius: (FloatBuffer, FloatBuffer)
        let scratch: FloatBuffer
        let worstLogits: FloatBuffer
        let worstGradient: FloatBuffer
        let crownGradient: FloatBuffer

        init(plan: [Operation], inputWidth: Int, rows: Int, classes: Int) {
            var widths = [inputWidth]
            var weightSizes: [Int] = []
            for operation in plan.dropLast() {
                if case .dense(let input, let output, _) = operation {
                    widths.append(output)
                    weightSizes.append(input * output)
                } else {
                    widths.append(widths.last!)
                }
            }
            if case .dense(let input, let output, _)? = plan.last { weightSizes.append(input * output) }
            centers = widths.map { FloatBuffer(count: rows * $0) }
            radii = widths.map { FloatBuffer(count: rows * $0) }
            absoluteWeights = weightSizes.map { FloatBuffer(count: $0) }
            let widest = widths.max()!
            gradientCenter = (FloatBuffer(count: rows * widest), FloatBuffer(count: rows * widest))
            gradientRadius = (FloatBuffer(count: rows * widest), FloatBuffer(count: rows * widest))
            scratch = FloatBuffer(count: weightSizes.max()!)
            worstLogits = FloatBuffer(count: rows * classes)
            worstGradient = FloatBuffer(count: rows * classes)
            crownGradient = FloatBuffer(count: rows * classes)
        }
    }

    public func prepare(network: Sequential, shards: Int, rows: Int, features: Int) {
        var plan: [Operation] = []
        var width = network.inputWidth
        for (layer, range) in zip(network.spec.layers, network.parameterRanges) {
            switch layer {
            case .dense(let out):
                plan.append(.dense(input: width, output: out, offset: range.lowerBound))
                width = out
            case .dropout: break
            case .relu, .leakyReLU, .tanh, .sigmoid: plan.append(.activation(layer))
            }
        }
        self.plan = plan
        workspaces = (0..<shards).map { _ in Workspace(plan: plan, inputWidth: features, rows: rows, classes: network.classCount) }
        if crownIBP {
            precondition(Self.crownIBPProblem(network.spec) == nil, "CROWN-IBP needs alternating dense and ReLU layers (checked by the recipe)")
            var layers: [CROWNIBPBound.Layer] = []
            var slopes: [Float] = []
            for operation in plan {
                switch operation {
                case .dense(let input, let output, let offset): layers.append(.init(input: input, output: output, offset: offset))
                case .activation(.leakyReLU(let slope)): slopes.append(slope)
                case .activation: slopes.append(0)
                }
            }
            crownBounds = (0..<shards).map { _ in CROWNIBPBound(layers: layers, negativeSlopes: slopes, rows: rows, classes: network.classCount) }
        }
    }

    public func lossAndGradients(_ batch: MatrixRef, labels: UnsafePointer<Int>, network: Sequential, shard: Int,
                                 gradientScale: Float, predictions: UnsafeMutablePointer<Int>,
                                 generator: inout RandomGenerator) throws -> Double {
        let logits = network.forward(batch, mode: .training, shard: shard)
        let clean = SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: labels, gradientScale: gradientScale * kappa,
                                                        gradient: network.logitsGradient(shard: shard))
        Kernels.argmaxRows(logits, into: predictions)
        network.backward(parameterGradients: .overwrite, computeInputGradient: false, shard: shard)
        guard epsilon > 0 && kappa < 1 else { return clean }
        let worst = worstCaseLossAndGradients(batch, labels: labels, epsilon: epsilon, parameters: network.parameters.pointer,
                                              gradients: network.parameterGradients(shard: shard).pointer,
                                              gradientScale: gradientScale * (1 - kappa), workspace: workspaces[shard],
                                              crown: crownWeight > 0 ? crownBounds[shard] : nil, crownWeight: crownWeight)
        return Double(kappa) * clean + Double(1 - kappa) * worst
    }

    /// Σ CE(ẑ, y) over the rows, and (if `gradients` is given) its gradient times `gradientScale`
    /// added to `gradients` (laid out like `parameters`).
    func worstCaseLossAndGradients(_ batch: MatrixRef, labels: UnsafePointer<Int>, epsilon: Float, parameters: UnsafeMutablePointer<Float>,
                                   gradients: UnsafeMutablePointer<Float>?, gradientScale: Float, workspace w: Workspace,
                                   crown: CROWNIBPBound? = nil, crownWeight: Float = 0) -> Double {
        let rows = batch.rows
        func node(_ buffers: [FloatBuffer], _ t: Int, _ width: Int) -> MatrixRef { buffers[t].matrix(rows: rows, columns: width) }
        // The input box: [x − ε, x + ε] ∩ [0, 1] (an input outside [0, 1] keeps its own value as an end).
        var width = batch.columns
        let c0 = node(w.centers, 0, width), r0 = node(w.radii, 0, width)
        for e in 0..<(rows * width) {
            let x = batch.base[e]
            let low = min(max(x - epsilon, 0), x), high = max(min(x + epsilon, 1), x)
            c0.base[e] = (low + high) / 2
            r0.base[e] = (high - low) / 2
        }
        // Forward through every operation but the last.
        var widths = [width]
        var denseIndex = 0
        for (t, operation) in plan.dropLast().enumerated() {
            let c = node(w.centers, t, width), r = node(w.radii, t, width)
            switch operation {
            case .dense(let input, let output, let offset):
                let weight = MatrixRef(parameters + offset, rows: output, columns: input)
                let absolute = w.absoluteWeights[denseIndex].matrix(rows: output, columns: input)
                for e in 0..<(input * output) { absolute.base[e] = abs(weight.base[e]) }
                let nextC = node(w.centers, t + 1, output), nextR = node(w.radii, t + 1, output)
                Kernels.broadcastRows(parameters + offset + input * output, into: nextC)
                BLAS.gemm(c, .none, times: weight, .transposed, into: nextC, beta: 1)
                BLAS.gemm(r, .none, times: absolute, .transposed, into: nextR)
                width = output
                denseIndex += 1
            case .activation(let layer):
                let nextC = node(w.centers, t + 1, width), nextR = node(w.radii, t + 1, width)
                for e in 0..<(rows * width) {
                    let low = Self.apply(layer, c.base[e] - r.base[e]), high = Self.apply(layer, c.base[e] + r.base[e])
                    nextC.base[e] = (low + high) / 2
                    nextR.base[e] = (high - low) / 2
                }
            }
            widths.append(width)
        }
        // The last layer, folded into the margins: ẑ_j = −m_j, m_j = (w_y − w_j)·c + b_y − b_j − |w_y − w_j|·r.
        guard case .dense(let hidden, let classes, let lastOffset)? = plan.last else { preconditionFailure("the last layer must be dense") }
        let K = plan.count - 1
        let c = node(w.centers, K, hidden), r = node(w.radii, K, hidden)
        let lastWeight = MatrixRef(parameters + lastOffset, rows: classes, columns: hidden)
        let lastBias = parameters + lastOffset + classes * hidden
        let worst = w.worstLogits.matrix(rows: rows, columns: classes)
        BLAS.gemm(c, .none, times: lastWeight, .transposed, into: worst)
        for i in 0..<rows {
            let y = labels[i], z = worst.row(i), radius = r.row(i)
            let zy = z[y] + lastBias[y]
            for j in 0..<classes where j != y {
                let wy = lastWeight.row(y), wj = lastWeight.row(j)
                var spread: Float = 0
                for k in 0..<hidden { spread += abs(wy[k] - wj[k]) * radius[k] }
                z[j] = -(zy - z[j] - lastBias[j] - spread)
            }
            z[y] = 0
        }
        // CROWN-IBP: the boxes at every activation's input relax its ReLUs (node t = input of operation t).
        let activationNodes = plan.indices.filter { if case .activation = plan[$0] { true } else { false } }
        let activationCenters = activationNodes.map { node(w.centers, $0, widths[$0]) }
        let activationRadii = activationNodes.map { node(w.radii, $0, widths[$0]) }
        if let crown {
            crown.forward(batchRows: rows, labels: labels, parameters: parameters, inputCenter: c0, inputRadius: r0,
                          activationCenters: activationCenters, activationRadii: activationRadii)
            for i in 0..<rows {
                let z = worst.row(i)
                for j in 0..<classes where j != labels[i] {
                    z[j] = crownWeight * -crown.margins.pointer[i * classes + j] + (1 - crownWeight) * z[j]
                }
            }
        }
        let G = w.worstGradient.matrix(rows: rows, columns: classes)
        let loss = SoftmaxCrossEntropy.lossAndGradient(logits: worst, labels: labels, gradientScale: gradientScale, gradient: G)
        guard let gradients else { return loss }
        if let crown {
            // ∂L/∂m_CROWN = −β·∂L/∂ẑ; IBP's bounds get the remaining (1 − β).
            let marginGradient = w.crownGradient.matrix(rows: rows, columns: classes)
            for e in 0..<(rows * classes) { marginGradient.base[e] = -crownWeight * G.base[e] }
            crown.backward(batchRows: rows, labels: labels, parameters: parameters, gradients: gradients, marginGradient: marginGradient,
                           inputCenter: c0, inputRadius: r0, activationCenters: activationCenters, activationRadii: activationRadii)
            for e in 0..<(rows * classes) { G.base[e] *= 1 - crownWeight }
        }

        // Backward. G′: G with G′_y = −Σ_{j≠y} G_j, so that ∂L/∂c = G′W and the μ-part of ∂L/∂W is G′ᵀc.
        for i in 0..<rows {
            let g = G.row(i), y = labels[i]
            var sum: Float = 0
            for j in 0..<classes where j != y { sum += g[j] }
            g[y] = -sum
        }
        var dC = w.gradientCenter.0.matrix(rows: rows, columns: hidden)
        var dR = w.gradientRadius.0.matrix(rows: rows, columns: hidden)
        let lastGradient = MatrixRef(gradients + lastOffset, rows: classes, columns: hidden)
        BLAS.gemm(G, .none, times: lastWeight, .none, into: dC)
        BLAS.gemm(G, .transposed, times: c, .none, into: lastGradient, beta: 1)
        dR.buffer.update(repeating: 0)
        for i in 0..<rows {
            let g = G.row(i), y = labels[i], radius = r.row(i), dr = dR.row(i)
            let wy = lastWeight.row(y), gy = lastGradient.row(y)
            (gradients + lastOffset + classes * hidden)[y] += g[y]
            for j in 0..<classes where j != y {
                let wj = lastWeight.row(j), gj = lastGradient.row(j), gJ = g[j]
                (gradients + lastOffset + classes * hidden)[j] += gJ
                for k in 0..<hidden {
                    let difference = wy[k] - wj[k]
                    dr[k] += gJ * abs(difference)
                    let t = difference > 0 ? gJ * radius[k] : (difference < 0 ? -gJ * radius[k] : 0)
                    gy[k] += t
                    gj[k] -= t
                }
            }
        }
        // Through the other operations, last to first.
        denseIndex = w.absoluteWeights.count - 2
        for t in stride(from: K - 1, through: 0, by: -1) {
            let inWidth = widths[t]
            let c = node(w.centers, t, inWidth), r = node(w.radii, t, inWidth)
            switch plan[t] {
            case .dense(let input, let output, let offset):
                let weight = MatrixRef(parameters + offset, rows: output, columns: input)
                let weightGradient = MatrixRef(gradients + offset, rows: output, columns: input)
                let biasGradient = gradients + offset + input * output
                BLAS.gemm(dC, .transposed, times: c, .none, into: weightGradient, beta: 1)
                let outer = w.scratch.matrix(rows: output, columns: input)
                BLAS.gemm(dR, .transposed, times: r, .none, into: outer)
                for e in 0..<(input * output) {
                    let v = weight.base[e]
                    weightGradient.base[e] += v > 0 ? outer.base[e] : (v < 0 ? -outer.base[e] : 0)
                }
                for i in 0..<rows {
                    let row = dC.row(i)
                    for o in 0..<output { biasGradient[o] += row[o] }
                }
                if t > 0 {
                    let nextC = (dC.base == w.gradientCenter.0.pointer ? w.gradientCenter.1 : w.gradientCenter.0).matrix(rows: rows, columns: input)
                    let nextR = (dR.base == w.gradientRadius.0.pointer ? w.gradientRadius.1 : w.gradientRadius.0).matrix(rows: rows, columns: input)
                    BLAS.gemm(dC, .none, times: weight, .none, into: nextC)
                    BLAS.gemm(dR, .none, times: w.absoluteWeights[denseIndex].matrix(rows: output, columns: input), .none, into: nextR)
                    dC = nextC
                    dR = nextR
                }
                denseIndex -= 1
            case .activation(let layer):
                for e in 0..<(rows * inWidth) {
                    let low = c.base[e] - r.base[e], high = c.base[e] + r.base[e]
                    let up = (dC.base[e] + dR.base[e]) / 2 * Self.derivative(layer, high)
                    let down = (dC.base[e] - dR.base[e]) / 2 * Self.derivative(layer, low)
                    dC.base[e] = up + down
                    dR.base[e] = up - down
                }
                if let crown, let k = activationNodes.firstIndex(of: t) {
                    // CROWN-IBP's gradient with respect to this box.
                    let extraC = crown.centerGradient[k].pointer, extraR = crown.radiusGradient[k].pointer
                    for e in 0..<(rows * inWidth) {
                        dC.base[e] += extraC[e]
                        dR.base[e] += extraR[e]
                    }
                }
            }
        }
        return loss
    }

    @inline(__always)
    static func apply(_ layer: LayerSpec, _ x: Float) -> Float {
        switch layer {
        case .relu: return max(x, 0)
        case .leakyReLU(let slope): return x >= 0 ? x : slope * x
        case .tanh: return Foundation.tanh(x)
        case .sigmoid: return 1 / (1 + exp(-x))
        case .dense, .dropout: return x
        }
    }

    @inline(__always)
    static func derivative(_ layer: LayerSpec, _ x: Float) -> Float {
        switch layer {
        case .relu: return x > 0 ? 1 : 0
        case .leakyReLU(let slope): return x > 0 ? 1 : slope
        case .tanh: let t = Foundation.tanh(x); return 1 - t * t
        case .sigmoid: let s = 1 / (1 + exp(-x)); return s * (1 - s)
        case .dense, .dropout: return 1
        }
    }
}

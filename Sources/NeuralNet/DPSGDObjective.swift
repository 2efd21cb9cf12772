import Foundation
import TensorCore

/// Differentially private SGD (Abadi et al., 2016, "Deep Learning with Differential Privacy") as a
/// training objective: each example's gradient is clipped to norm ≤ C, and Gaussian noise of
/// standard deviation σ·C is added to the clipped sum before the optimizer sees it.
/// ```
/// g = (1/B) · ( Σᵢ gᵢ · min(1, C / ‖gᵢ‖) + N(0, σ²C²·I) )
/// ```
/// Clipping never materialises per-example gradients: the forward pass runs once; one reverse
/// pass of input gradients gives every ‖gᵢ‖ from the layers' activations and back-propagated errors
/// (`Sequential.addPerExampleGradientNormsSquared`, Goodfellow 2015); each row of ∂L/∂logits is then
/// scaled by its clip factor and a normal backward pass yields Σᵢ gᵢ·min(1, C/‖gᵢ‖), since the
/// parameter gradient is linear in ∂L/∂logits for fixed activations ("ghost clipping").
///
/// Any optimizer may follow (noise is added before it, so Adam's moments see only noised
/// gradients). Batches are fixed-size slices of each epoch's shuffle ("shuffled sampling"); the
/// privacy accountant (`RDPAccountant`) analyses them as Poisson sampling with rate q = B/N, as
/// Opacus and TensorFlow Privacy tutorials do; that analysis is an approximation for shuffling.
///
/// Noise is drawn in Double precision (Box–Muller from 53-bit uniforms), in parallel shards of
/// the parameter vector, each with its own stream derived from one 64-bit draw per step. By default
/// (`NoiseSource.secure`) that draw comes from the operating system's CSPRNG and is never stored:
/// noise derived from the run's seed, which a model file records, could be subtracted by anyone who
/// holds the file, leaving the guarantee empty. `NoiseSource.seeded` derives it from the seed
/// instead, so the same seed gives the same model (for experiments that must repeat, never for a
/// model whose training data is private). Either way the noise does not depend on the thread count.
///
/// `@unchecked Sendable`: the scratch arrays are set in `prepare`, before shards run; a shard job
/// touches only its own entries.
public final class DPSGDObjective: TrainingObjective, @unchecked Sendable {
    /// σ: the noise standard deviation in units of the clip norm.
    public let noiseMultiplier: Float
    /// C: the per-example gradient norm bound.
    public let clipNorm: Float
    public let labelSmoothing: Float
    public let noiseSource: NoiseSource
    private var savedLogitsGradients: [FloatBuffer] = []
    private var norms: [UnsafeMutablePointer<Double>] = []
    private var pool: WorkerPool = .shared
    private let clippedCounts: UnsafeMutablePointer<Int>
    private let shardCapacity = WorkerPool.defaultShardCount

    /// - Throws: `NeuralNetError.invalidHyperparameter` unless σ ≥ 0, C > 0 (both finite) and 0 ≤ label smoothing < 1.
    /// Where each step's noise seed comes from.
    public enum NoiseSource: String, Sendable, Codable {
        /// The operating system's CSPRNG, one 64-bit draw per step, never stored.
        case secure
        /// The trainer's seeded stream: reproducible, and so not private against whoever knows the seed.
        case seeded
    }

    public init(noiseMultiplier: Float, clipNorm: Float, labelSmoothing: Float = 0, noiseSource: NoiseSource = .secure) throws {
        try require(noiseMultiplier.isFinite && noiseMultiplier >= 0, "DP noise multiplier", noiseMultiplier, "must be ≥ 0")
        try require(clipNorm.isFinite && clipNorm > 0, "DP clip norm", clipNorm, "must be > 0")
        try require(labelSmoothing >= 0 && labelSmoothing < 1, "label smoothing", labelSmoothing, "must be in [0, 1)")
        self.noiseMultiplier = noiseMultiplier
        self.clipNorm = clipNorm
        self.labelSmoothing = labelSmoothing
        self.noiseSource = noiseSource
        clippedCounts = .allocate(capacity: shardCapacity)
        clippedCounts.initialize(repeating: 0, count: shardCapacity)
    }

    deinit {
        for n in norms { n.deallocate() }
        clippedCounts.deallocate()
    }

    public var description: String {
        "DP-SGD (noise multiplier \(noiseMultiplier), clip \(clipNorm)" + (labelSmoothing == 0 ? ")" : ", label smoothing \(labelSmoothing))")
    }

    public var record: String {
        #"{"clip":\#(clipNorm),"label_smoothing":\#(labelSmoothing),"noise":"\#(noiseSource.rawValue)","noise_multiplier":\#(noiseMultiplier),"type":"dp_sgd"}"#
    }

    /// Examples whose gradient was clipped (norm > C) since the last `resetClippedCount()`.
    public var clippedCount: Int { (0..<shardCapacity).reduce(0) { $0 + clippedCounts[$1] } }
    public func resetClippedCount() { clippedCounts.update(repeating: 0, count: shardCapacity) }

    public func prepare(network: Sequential, shards: Int, rows: Int, features: Int) {
        precondition(shards <= shardCapacity, "DP-SGD supports up to \(shardCapacity) shards, got \(shards)")
        for n in norms { n.deallocate() }
        savedLogitsGradients = (0..<shards).map { _ in FloatBuffer(count: max(rows, 1) * network.classCount) }
        norms = (0..<shards).map { _ in .allocate(capacity: max(rows, 1)) }
        pool = network.pool
    }

    public func lossAndGradients(_ batch: MatrixRef, labels: UnsafePointer<Int>, network: Sequential, shard: Int,
                                 gradientScale: Float, predictions: UnsafeMutablePointer<Int>,
                                 generator: inout RandomGenerator) throws -> Double {
        precondition(shard < norms.count, "prepare(network:shards:rows:features:) was not called for shard \(shard)")
        let logits = network.forward(batch, mode: .training, shard: shard)
        let logitsGradient = network.logitsGradient(shard: shard)
        let loss = SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: labels, labelSmoothing: labelSmoothing,
                                                       gradientScale: gradientScale, gradient: logitsGradient)
        Kernels.argmaxRows(logits, into: predictions)
        let saved = savedLogitsGradients[shard].matrix(rows: logitsGradient.rows, columns: logitsGradient.columns)
        saved.copy(from: logitsGradient)

        let rows = batch.rows
        let norm = norms[shard]
        norm.update(repeating: 0, count: rows)
        network.addPerExampleGradientNormsSquared(shard: shard, into: norm)
        // The norms are of the scaled gradients; clip each example's unscaled gradient to C. The
        // factor 1 + 1e-5 keeps Float32 rounding of the norm from letting a gradient exceed C.
        let bound = Double(clipNorm) * Double(gradientScale)
        var clipped = 0
        for i in 0..<rows {
            let length = norm[i].squareRoot() * (1 + 1e-5)
            guard length > bound else { continue }
            clipped += 1
            let factor = Float(bound / length)
            let row = saved.row(i)
            for j in 0..<saved.columns { row[j] *= factor }
        }
        clippedCounts[shard] += clipped
        logitsGradient.copy(from: saved)
        network.backward(parameterGradients: .overwrite, computeInputGradient: false, shard: shard)
        return loss
    }

    public var modifiesReducedGradients: Bool { noiseMultiplier > 0 }

    /// Adds N(0, (σ·C/B)²) to every coordinate of the summed, scaled gradient.
    public func finishGradients(_ gradients: FloatBuffer, batchRows: Int, generator: inout RandomGenerator) {
        guard noiseMultiplier > 0 else { return }
        let standardDeviation = Double(noiseMultiplier) * Double(clipNorm) / Double(batchRows)
        var system = SystemRandomNumberGenerator()
        let seed = noiseSource == .secure ? system.next() : generator.next()
        let target = SendablePointer(gradients.pointer)
        let count = gradients.count
        let shards = shardCapacity
        pool.run(shards: shards) { s in
            let range = WorkerPool.shardRange(count, part: s, parts: shards, alignment: 2)
            var noise = RandomGenerator(seed: seed, stream: .dpNoise, index: UInt64(s))
            Self.addGaussianNoise(target.pointer + range.lowerBound, count: range.count,
                                  standardDeviation: standardDeviation, generator: &noise)
        }
    }

    /// x += s·z for standard normal z, two deviates per Box–Muller draw, in Double.
    static func addGaussianNoise(_ x: UnsafeMutablePointer<Float>, count: Int, standardDeviation s: Double,
                                 generator: inout RandomGenerator) {
        var i = 0
        while i < count {
            let u1 = max(Double(generator.next() >> 11) * 0x1p-53, Double.leastNonzeroMagnitude)
            let u2 = Double(generator.next() >> 11) * 0x1p-53
            let radius = (-2 * Foundation.log(u1)).squareRoot() * s
            let angle = 2 * Double.pi * u2
            x[i] += Float(radius * Foundation.cos(angle))
            if i + 1 < count { x[i + 1] += Float(radius * Foundation.sin(angle)) }
            i += 2
        }
    }
}

extension RandomStream {
    /// DP-SGD's Gaussian noise, per step and parameter shard.
    public static let dpNoise = RandomStream("neuralnet.dp-sgd.noise")
}

import Attacks
import Foundation
import NeuralNet
import TensorCore

/// How a certificate is computed.
public enum CertificationMethod: String, CaseIterable, Codable, Sendable {
    /// Interval bound propagation (Gowal et al. 2018): fastest, loosest.
    case ibp
    /// CROWN (Zhang et al. 2018): linear relaxation with back-substitution; ReLU and leaky ReLU.
    case crown
    /// The product of exact spectral norms (L2; Tsuzuku et al. 2018).
    case lipschitz

    public var displayName: String {
        switch self {
        case .ibp: return "IBP"
        case .crown: return "CROWN"
        case .lipschitz: return "Lipschitz"
        }
    }
}

/// Certified accuracy of one model by one method: for each example, a lower bound of the worst
/// logit margin min_{j≠y} (z_y − z_j) over the ε-ball around it. An example is certified when it
/// is classified correctly and that bound exceeds `tolerance`: then no input in the ball, the
/// attacks' best included, can change its class. Bounds are computed in Float64.
///
/// Certification is a lower bound on robust accuracy, attacks an upper bound; the truth lies
/// between. Examples are processed in fixed chunks of `chunkRows`, in parallel on the pool, so
/// results do not depend on the thread count.
public struct Certifier: Sendable {
    /// The margin a certified example's lower bound must exceed. The bounds are about the network
    /// in exact arithmetic; the model runs in Float32, whose forward pass rounds by about 1e-6
    /// relative on a 784-wide dot product, and an attack's Float32 clipping can land ~3e-8 outside
    /// the Float64 box. This margin absorbs both in practice; it is a safety margin, not a proof.
    public static let tolerance = 1e-4
    /// Examples per chunk of work.
    public static let chunkRows = 50

    public let method: CertificationMethod
    public let norm: Norm
    public let network: CertifiableNetwork
    let inference: InferenceNetwork
    let lipschitz: LipschitzBound?
    public var pool: WorkerPool

    /// - Throws: `CertificationError.unsupportedModel` if the method cannot bound this model (CROWN
    ///   on tanh or sigmoid layers, or a model too wide for CROWN's workspace).
    public init(_ model: Sequential, method: CertificationMethod, norm: Norm, pool: WorkerPool = .shared) throws {
        network = CertifiableNetwork(model)
        self.method = method
        self.norm = norm
        self.pool = pool
        inference = model.inferenceModel()
        switch method {
        case .crown:
            let unsupported = network.activationsCROWNCannotRelax
            guard unsupported.isEmpty else {
                throw CertificationError.unsupportedModel("CROWN relaxes relu and leaky_relu layers; this model has "
                    + "\(unsupported.joined(separator: " and ")). Use --method ibp (any monotone activation) or lipschitz")
            }
            let floats = CROWN(network: network).workspaceSize
            guard floats <= 1 << 27 else {
                throw CertificationError.unsupportedModel("CROWN needs \(floats * 8 >> 20) MiB of scratch per thread for "
                    + "\(model.spec.shorthand) (the limit is 1 GiB); use --method ibp")
            }
            lipschitz = nil
        case .lipschitz:
            lipschitz = try LipschitzBound(network: network)
        case .ibp:
            lipschitz = nil
        }
    }

    /// The spectral norms of the affine layers (Lipschitz method only).
    public var spectralNorms: [Double]? { lipschitz?.spectralNorms }

    func check(_ data: LabeledData) throws {
        guard data.featureCount == network.inputWidth else {
            throw CertificationError.dataMismatch("the model expects \(network.inputWidth) features, the data has \(data.featureCount)")
        }
        if let label = data.labelOutside(classes: network.classCount) {
            throw CertificationError.dataMismatch("label \(label) is outside the model's \(network.classCount) classes")
        }
        if norm == .linf {
            // The L∞ ball is clipped to the pixel domain [0, 1]: for inputs outside it that region is
            // not the ball an attack searches, so a certificate would claim too much.
            do { try AttackRunner.checkInputRange(data.features) } catch {
                throw CertificationError.dataMismatch("\(error); L∞ certificates clip the ball to [0, 1] (scale the data with --feature-scale, or certify --norm l2, whose ball is not clipped)")
            }
        }
    }

    static func checkRadius(_ epsilon: Double) throws {
        guard epsilon.isFinite, epsilon >= 0 else {
            throw CertificationError.invalidRequest("ε must be a finite number ≥ 0, got \(epsilon)")
        }
    }

    /// Lower bounds of min_{j≠y} (z_y − z_j) over each example's ball of radius `epsilons[i]`: the
    /// method's tightest, for every example.
    public func marginLowerBounds(_ data: LabeledData, epsilons: [Double]) throws -> [Double] {
        try check(data)
        return try marginBounds(data, epsilons: epsilons, decisionOnly: nil)
    }

    /// `marginLowerBounds` for data already checked (`check`). `decisionOnly[i]` true: only whether
    /// the bound exceeds `tolerance` matters (CROWN may stop early, with a looser bound on the same
    /// side of the tolerance); false: the example is not certified whatever the bound
    /// (misclassified), which may be IBP's.
    private func marginBounds(_ data: LabeledData, epsilons: [Double], decisionOnly: [Bool]?) throws -> [Double] {
        precondition(epsilons.count == data.count, "one ε per example")
        for epsilon in epsilons { try Self.checkRadius(epsilon) }
        let rows = data.count, width = data.featureCount
        let chunks = (rows + Self.chunkRows - 1) / Self.chunkRows
        let results = Locked([[Double]](repeating: [], count: chunks))
        let network = self.network, method = self.method, norm = self.norm, lipschitz = self.lipschitz
        let features = data.features.scalars, labels = data.labels
        pool.run(shards: chunks) { chunk in
            let range = (chunk * Self.chunkRows)..<min(rows, (chunk + 1) * Self.chunkRows)
            let points = features[(range.lowerBound * width)..<(range.upperBound * width)].map(Double.init)
            let region = InputRegion(norm: norm, points: points, width: width, labels: Array(labels[range]),
                                     epsilons: Array(epsilons[range]))
            let margins: [Double]
            switch method {
            case .ibp: margins = IntervalBoundPropagation(network: network).bounds(region).margins
            case .crown:
                let crown = CROWN(network: network)
                let needs = decisionOnly.map { flags in
                    flags[range].map { $0 ? CROWN.Need.decision(tolerance: Self.tolerance) : .none }
                }
                margins = crown.margins(region, needs: needs, workspace: CROWN.Workspace(rows: crown.maximumRows, width: network.maximumWidth))
            case .lipschitz: margins = lipschitz!.margins(region)
            }
            let classes = network.classCount
            let worst = (0..<range.count).map { r in margins[(r * classes)..<((r + 1) * classes)].min()! }
            results.withLock { $0[chunk] = worst }
        }
        return results.withLock { $0.flatMap { $0 } }
    }

    /// Certified accuracy at one ε. With `exhaustive`, every example's margin bound is the
    /// method's tightest; without, CROWN stops on an example once its certificate is decided
    /// (the same certified set, faster), and misclassified examples keep IBP's bounds.
    public func certify(_ data: LabeledData, epsilon: Double, exhaustive: Bool = false) throws -> CertificationResult {
        try check(data)
        try Self.checkRadius(epsilon)
        let start = DispatchTime.now()
        let cleanCorrect = try correctness(data)
        let bounds = try marginBounds(data, epsilons: [Double](repeating: epsilon, count: data.count),
                                decisionOnly: exhaustive ? nil : cleanCorrect)
        let certified = zip(cleanCorrect, bounds).map { $0 && $1 > Self.tolerance }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        return CertificationResult(method: method, norm: norm, epsilon: epsilon, cleanCorrect: cleanCorrect, certified: certified,
                                   marginLowerBounds: bounds, seconds: seconds)
    }

    /// Whether the model (in Float32, as it runs) classifies each example correctly.
    public func cleanCorrectness(_ data: LabeledData) throws -> [Bool] {
        try check(data)
        return try correctness(data)
    }

    /// `cleanCorrectness` for data already checked.
    private func correctness(_ data: LabeledData) throws -> [Bool] {
        zip(try inference.predictions(data.features), data.labels).map { $0 == $1 }
    }

    /// The largest radius each example is certified at (0 if misclassified or not certified even
    /// at 0), by bisection on [0, `maximum`] to a precision of `maximum`/2^`iterations`. The
    /// default maximum covers the whole input domain [0, 1]^d: 1 for L∞, √d for L2.
    public func certifiedRadii(_ data: LabeledData, maximum: Double? = nil, iterations: Int = 20) throws -> [Double] {
        try check(data)
        let ceiling = maximum ?? (norm == .linf ? 1 : Double(data.featureCount).squareRoot())
        guard ceiling.isFinite, ceiling > 0, (1...60).contains(iterations) else {
            throw CertificationError.invalidRequest("the radius search needs a finite maximum > 0 and 1 to 60 iterations")
        }
        let cleanCorrect = try correctness(data)
        var low = [Double](repeating: 0, count: data.count)
        var high = [Double](repeating: ceiling, count: data.count)
        var active = (0..<data.count).filter { cleanCorrect[$0] }
        // Examples certified at the ceiling keep it; those not certified at 0 keep 0.
        let decide = { (count: Int) in [Bool](repeating: true, count: count) }
        let atCeiling = try marginBounds(data.subset(active), epsilons: [Double](repeating: ceiling, count: active.count),
                                   decisionOnly: decide(active.count))
        let atZero = try marginBounds(data.subset(active), epsilons: [Double](repeating: 0, count: active.count), decisionOnly: decide(active.count))
        active = zip(active, zip(atZero, atCeiling)).compactMap { index, bounds in
            if bounds.1 > Self.tolerance { low[index] = ceiling; return nil }
            if bounds.0 <= Self.tolerance { return nil }
            return index
        }
        for _ in 0..<iterations where !active.isEmpty {
            let middle = active.map { (low[$0] + high[$0]) / 2 }
            let bounds = try marginBounds(data.subset(active), epsilons: middle, decisionOnly: decide(active.count))
            for (k, index) in active.enumerated() {
                if bounds[k] > Self.tolerance { low[index] = middle[k] } else { high[index] = middle[k] }
            }
        }
        return low
    }
}

/// The certificates of one method at one ε.
public struct CertificationResult: Sendable {
    public let method: CertificationMethod
    public let norm: Norm
    public let epsilon: Double
    public let cleanCorrect: [Bool]
    /// Clean-correct and certified.
    public let certified: [Bool]
    /// min_{j≠y} lower bound of z_y − z_j for every example (see `Certifier.certify` for which).
    public let marginLowerBounds: [Double]
    public let seconds: Double

    public var n: Int { certified.count }
    public var cleanAccuracy: Proportion { Proportion(successes: cleanCorrect.filter { $0 }.count, trials: n) }
    public var certifiedAccuracy: Proportion { Proportion(successes: certified.filter { $0 }.count, trials: n) }

    /// The report metric, e.g. `certified CROWN ε=0.1` (L2: `certified CROWN l2 ε=0.5`), with per-example outcomes.
    public var metric: Metric { .accuracy(Self.metricName(method: method, norm: norm, epsilon: epsilon), certifiedAccuracy, outcomes: certified) }

    public static func metricName(method: CertificationMethod, norm: Norm, epsilon: Double) -> String {
        "certified \(method.displayName)" + (norm == .linf ? "" : " \(norm.rawValue)") + " ε=\(formatEpsilon(Float(epsilon)))"
    }
}

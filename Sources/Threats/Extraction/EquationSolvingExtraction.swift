import CBLAS
import Foundation
import NeuralNet
import TensorCore
import Training

/// Equation-solving extraction (Tramèr et al., 2016, "Stealing Machine Learning Models via
/// Prediction APIs", §4.1): a softmax-regression victim p = softmax(Wx + b) that returns
/// probabilities gives, per query x and class k, one linear equation
/// log pₖ − log p₀ = (Wₖ − W₀)·x + (bₖ − b₀). With at least d + 1 random queries the K − 1 systems
/// are solved by least squares (LAPACKE `dgels`, Float64); the surrogate with W₀ = 0, b₀ = 0 and
/// the solved differences gives the victim's probabilities exactly, since softmax does not change
/// when every logit shifts by the same amount.
public enum EquationSolvingExtraction {
    /// The stolen softmax regression (a one-layer `Sequential`) from `queries` uniform random inputs
    /// in [0, 1]^d (d + 1 if nil; more than that averages out the answers' rounding or noise).
    /// Answers with a zero probability carry no usable logarithm and are left out, as a thief would.
    /// - Throws: `ThreatError.invalidParameter` when the API does not return every class's
    ///   probability or the budget is below d + 1; `ThreatError.dataMismatch` when fewer than d + 1
    ///   answers are usable or the system is singular; the oracle's errors.
    public static func extract(from oracle: ExtractionOracle, queries: Int? = nil, seed: UInt64) throws -> Sequential {
        let (d, k) = (oracle.inputWidth, oracle.classCount)
        switch oracle.policy {
        case .label, .topK:
            throw ThreatError.invalidParameter(name: "output policy", value: "\(oracle.policy)",
                                               requirement: "equation solving needs every class's probability; use knockoff or jacobian against \(oracle.policy)")
        default: break
        }
        let n = queries ?? (d + 1)
        guard n >= d + 1, n <= oracle.queriesLeft else {
            throw ThreatError.invalidParameter(name: "budget", value: "\(oracle.queriesLeft) queries left, \(n) asked",
                                               requirement: "equation solving needs at least d + 1 = \(d + 1) queries for \(d) input features")
        }
        var generator = RandomGenerator(seed: seed, stream: .extractionQueries)
        let inputs = Tensor.uniform(rows: n, columns: d, using: &generator)
        let answers = try oracle.query(inputs).probabilities!
        // A: m × (d + 1) rows [x, 1]; B: m × (k − 1) columns log pⱼ − log p₀ (row-major, Float64),
        // over the m usable answers.
        var a: [Double] = [], b: [Double] = []
        a.reserveCapacity(n * (d + 1))
        b.reserveCapacity(n * (k - 1))
        for r in 0..<n {
            let p = answers.scalars[(r * k)..<((r + 1) * k)].map(Double.init)
            guard p.allSatisfy({ $0 > 0 }) else { continue }
            for j in 0..<d { a.append(Double(inputs.scalars[r * d + j])) }
            a.append(1)
            for c in 1..<k { b.append(log(p[c]) - log(p[0])) }
        }
        let m = b.count / max(k - 1, 1)
        guard m >= d + 1 else {
            throw ThreatError.dataMismatch("only \(m) of \(n) answers have no zero probability, fewer than the d + 1 = \(d + 1) equation solving needs: "
                                           + "the victim is too confident on random inputs, or its answers are clipped")
        }
        let status = LAPACKE_dgels(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), Int32(m), Int32(d + 1), Int32(k - 1),
                                   &a, Int32(d + 1), &b, Int32(k - 1))
        guard status == 0 else { throw ThreatError.dataMismatch("the equations are singular (LAPACKE_dgels returned \(status))") }
        // b's first d + 1 rows hold the solution: column c − 1 is (Wc − W0, bc − b0).
        let surrogate = Sequential(spec: try ModelSpec.parse("\(d)-\(k)"))
        let weights = surrogate.parameters.pointer + surrogate.parameterRanges[0].lowerBound  // (k, d), then the k biases
        for c in 1..<k {
            for j in 0..<d { weights[c * d + j] = Float(b[j * (k - 1) + c - 1]) }
            weights[k * d + c] = Float(b[d * (k - 1) + c - 1])
        }
        return surrogate
    }
}

extension EquationSolvingExtraction {
    /// A victim with one hidden layer and a known architecture (Tramèr et al., 2016, §4.2): the
    /// equations softmax(f_θ(xᵢ)) = pᵢ are no longer linear in the unknown θ, so they are solved by
    /// minimising the cross-entropy between the answers and the model's outputs
    /// (`SoftTargetObjective`, with `recipe`'s optimiser and epochs), which is smallest exactly at a
    /// solution. Queries are `queries` uniform random inputs; more queries than unknowns
    /// (parameters / (classes − 1)) pin the solution down.
    /// - Throws: `ThreatError.invalidParameter` for a label-only or top-k API, an architecture with
    ///   more than one hidden layer, or a budget below `queries`; the oracle's and training's errors.
    public static func extract(from oracle: ExtractionOracle, architecture: ModelSpec, queries: Int, recipe: TrainingRecipe,
                               seed: UInt64) throws -> Sequential {
        switch oracle.policy {
        case .label, .topK:
            throw ThreatError.invalidParameter(name: "output policy", value: "\(oracle.policy)",
                                               requirement: "equation solving needs every class's probability; use knockoff or jacobian against \(oracle.policy)")
        default: break
        }
        let denseLayers = architecture.layers.filter { if case .dense = $0 { true } else { false } }.count
        guard denseLayers <= 2 else {
            throw ThreatError.invalidParameter(name: "architecture", value: architecture.shorthand,
                                               requirement: "equation solving covers victims with at most one hidden layer; use knockoff")
        }
        guard queries >= 1, queries <= oracle.queriesLeft else {
            throw ThreatError.invalidParameter(name: "queries", value: "\(queries)", requirement: "must be between 1 and the \(oracle.queriesLeft) queries left")
        }
        let d = oracle.inputWidth
        var generator = RandomGenerator(seed: seed, stream: .extractionQueries)
        let inputs = Tensor.uniform(rows: queries, columns: d, using: &generator)
        let answers = try oracle.query(inputs).probabilities!
        var solver = recipe
        solver.architecture = architecture
        solver.validationFraction = 0
        return try ModelTraining.train(solver, seed: seed, on: SoftTargetObjective.data(features: inputs),
                                       objective: SoftTargetObjective(targets: answers)).network
    }
}

extension RandomStream {
    /// The inputs an extraction attack queries.
    public static let extractionQueries = RandomStream("threats.extraction.queries")
}

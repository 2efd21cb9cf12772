import CBLAS
import Foundation
import NeuralNet
import TensorCore

/// Equation-solving extraction (Tramèr et al., 2016, "Stealing Machine Learning Models via
/// Prediction APIs", §4.1): a softmax-regression victim p = softmax(Wx + b) that returns
/// probabilities gives, per query x and class k, one linear equation
/// log pₖ − log p₀ = (Wₖ − W₀)·x + (bₖ − b₀). With at least d + 1 random queries the K − 1 systems
/// are solved by least squares (LAPACKE `dgels`, Float64); the surrogate with W₀ = 0, b₀ = 0 and
/// the solved differences gives the victim's probabilities exactly, since softmax does not change
/// when every logit shifts by the same amount.
public enum EquationSolvingExtraction {
    /// The stolen softmax regression (a one-layer `Sequential`) from `queries` uniform random inputs
    /// in [0, 1]^d (d + 1 if nil; more than that averages out the answers' rounding).
    /// - Throws: `ThreatError.invalidParameter` when the oracle does not return probabilities or the
    ///   budget is below d + 1; `ThreatError.dataMismatch` when an answer has a zero probability
    ///   (its logarithm is unusable) or the system is singular; the oracle's errors.
    public static func extract(from oracle: ExtractionOracle, queries: Int? = nil, seed: UInt64) throws -> Sequential {
        let (d, k) = (oracle.model.inputWidth, oracle.model.classCount)
        guard oracle.policy == .probabilities else {
            throw ThreatError.invalidParameter(name: "output policy", value: "\(oracle.policy)",
                                               requirement: "equation solving needs the full probability vector; use knockoff or jacobian against \(oracle.policy)")
        }
        let n = queries ?? (d + 1)
        guard n >= d + 1, n <= oracle.queriesLeft else {
            throw ThreatError.invalidParameter(name: "budget", value: "\(oracle.queriesLeft) queries left, \(n) asked",
                                               requirement: "equation solving needs at least d + 1 = \(d + 1) queries for \(d) input features")
        }
        var generator = RandomGenerator(seed: seed, stream: .extractionQueries)
        let inputs = Tensor(shape: [n, d], scalars: (0..<(n * d)).map { _ in generator.nextUnitFloat() })
        let answers = try oracle.query(inputs)
        // A: n × (d + 1) rows [x, 1]; B: n × (k − 1) columns log pⱼ − log p₀ (row-major, Float64).
        var a = [Double](repeating: 1, count: n * (d + 1))
        var b = [Double](repeating: 0, count: n * (k - 1))
        for r in 0..<n {
            for j in 0..<d { a[r * (d + 1) + j] = Double(inputs.scalars[r * d + j]) }
            let p0 = Double(answers.scalars[r * k])
            for c in 1..<k {
                let pc = Double(answers.scalars[r * k + c])
                guard p0 > 0, pc > 0 else {
                    throw ThreatError.dataMismatch("answer \(r) has a zero probability (class \(pc > 0 ? 0 : c)): its logarithm is unusable; "
                                                   + "the victim is too confident on random inputs for equation solving")
                }
                b[r * (k - 1) + c - 1] = log(pc) - log(p0)
            }
        }
        let status = LAPACKE_dgels(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), Int32(n), Int32(d + 1), Int32(k - 1),
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

extension RandomStream {
    /// The inputs an extraction attack queries.
    public static let extractionQueries = RandomStream("threats.extraction.queries")
}

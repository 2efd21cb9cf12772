import Foundation
import TensorCore

/// What a prediction API releases per input. Less output leaks less to model extraction and
/// membership inference (Tramèr et al. 2016; Shokri et al. 2017); perturbed probabilities poison
/// what a thief learns from them (Lee et al. 2019). The service (`bulwark serve`, per API key) and
/// the extraction experiments (`ExtractionOracle`) apply the same policy with this one type.
///
/// Every answer names the model's own prediction (the argmax of its logits); the policy shapes
/// only the probabilities released beside it.
public enum OutputPolicy: Sendable, Hashable, CustomStringConvertible, Codable {
    /// Every class probability.
    case full
    /// The k most probable classes with their probabilities (the others released as 0).
    case topK(Int)
    /// Every probability rounded to d decimals.
    case rounded(Int)
    /// The predicted class only.
    case label
    /// Reverse sigmoid (Lee et al. 2019, "Defending Against NN Model Stealing Attacks Using
    /// Deceptive Perturbations"): pⱼ − β(σ(γ·logit pⱼ) − ½), clipped to [0, 1] and renormalised.
    /// Confident classes lose mass, unlikely ones gain it, so the released vector's log-odds no
    /// longer follow the model's logits, while the top class is nearly always kept.
    case reverseSigmoid(beta: Double, gamma: Double)
    /// Gaussian noise N(0, σ²) added to every probability, clipped to [0, 1] and renormalised
    /// (fresh noise per answer).
    case noise(sigma: Double)

    /// A policy text that is not one of the forms.
    public struct InvalidText: Error, CustomStringConvertible, Equatable {
        public let text: String
        public var description: String {
            "unknown output policy '\(text)': use full, label, top-k:K (K ≥ 1), rounded:D (0 ≤ D ≤ 8), "
                + "reverse-sigmoid:BETA:GAMMA (0 < BETA ≤ 10, 0 < GAMMA ≤ 100) or noise:SIGMA (0 < SIGMA ≤ 1)"
        }
    }

    /// Parses `full`, `label`, `top-k:K`, `rounded:D`, `reverse-sigmoid:BETA:GAMMA` or `noise:SIGMA`.
    public init(parsing text: String) throws(InvalidText) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        func number(_ index: Int, in range: ClosedRange<Double>, open: Bool = true) throws(InvalidText) -> Double {
            guard let value = Double(parts[index]), value.isFinite, range.contains(value), !(open && value == range.lowerBound) else {
                throw InvalidText(text: text)
            }
            return value
        }
        switch (parts[0], parts.count) {
        case ("full", 1): self = .full
        case ("label", 1): self = .label
        case ("top-k", 2):
            guard let k = Int(parts[1]), (1...1000).contains(k) else { throw InvalidText(text: text) }
            self = .topK(k)
        case ("rounded", 2):
            guard let d = Int(parts[1]), (0...8).contains(d) else { throw InvalidText(text: text) }
            self = .rounded(d)
        case ("reverse-sigmoid", 3): self = .reverseSigmoid(beta: try number(1, in: 0...10), gamma: try number(2, in: 0...100))
        case ("noise", 2): self = .noise(sigma: try number(1, in: 0...1))
        default: throw InvalidText(text: text)
        }
    }

    public var description: String {
        switch self {
        case .full: "full"
        case .topK(let k): "top-k:\(k)"
        case .rounded(let d): "rounded:\(d)"
        case .label: "label"
        case .reverseSigmoid(let beta, let gamma): "reverse-sigmoid:\(beta):\(gamma)"
        case .noise(let sigma): "noise:\(sigma)"
        }
    }

    /// Whether answers carry probabilities (every policy but `label`).
    public var releasesProbabilities: Bool { self != .label }

    /// One answer: the model's prediction and the probabilities released (nil for `label`).
    public struct Answer: Sendable, Equatable {
        public var predicted: Int
        public var probabilities: [Double]?
        /// For `top-k`: the classes kept, most probable first (ties to the lower index).
        public var ranked: [Int]?
        public init(predicted: Int, probabilities: [Double]?, ranked: [Int]? = nil) {
            (self.predicted, self.probabilities, self.ranked) = (predicted, probabilities, ranked)
        }
    }

    /// The answer to one row of logits. Softmax is computed in Float64 with the maximum
    /// subtracted; the reverse sigmoid's log-odds come from the logits (zⱼ − log Σ_{i≠j} e^{zᵢ}),
    /// never from 1 − p, which rounds to 0 on confident rows.
    /// - Parameter generator: draws the noise of `noise` (unused by the other policies).
    public func answer(logits: some Collection<Float>, generator: inout RandomGenerator) -> Answer {
        let z = logits.map(Double.init)
        var predicted = 0
        for j in z.indices where z[j] > z[predicted] { predicted = j }  // first index on ties
        let top = z[predicted]
        let exponentials = z.map { exp($0 - top) }
        let sum = exponentials.reduce(0, +)
        var p = exponentials.map { $0 / sum }
        var ranked: [Int]?
        switch self {
        case .full:
            break
        case .label:
            return Answer(predicted: predicted, probabilities: nil)
        case .topK(let k):
            let order = Array(p.indices.sorted { (p[$0], $1) > (p[$1], $0) }.prefix(k))
            let kept = Set(order)
            for j in p.indices where !kept.contains(j) { p[j] = 0 }
            ranked = order
        case .rounded(let digits):
            let scale = pow(10, Double(digits))
            p = p.map { ($0 * scale).rounded() / scale }
        case .reverseSigmoid(let beta, let gamma):
            for j in p.indices {
                var others = -Double.infinity  // log Σ_{i≠j} exp(zᵢ − top)
                for i in z.indices where i != j { others = Self.logAddExp(others, z[i] - top) }
                let logOdds = (z[j] - top) - others
                p[j] -= beta * (1 / (1 + exp(-gamma * logOdds)) - 0.5)
            }
            p = Self.normalised(p, fallback: predicted)
        case .noise(let sigma):
            for j in p.indices { p[j] += sigma * Double(generator.nextGaussian()) }
            p = Self.normalised(p, fallback: predicted)
        }
        return Answer(predicted: predicted, probabilities: p, ranked: ranked)
    }

    /// Clipped to [0, 1] and scaled to sum 1 (one-hot at `fallback` if nothing is left).
    private static func normalised(_ p: [Double], fallback: Int) -> [Double] {
        let clipped = p.map { min(max($0, 0), 1) }
        let sum = clipped.reduce(0, +)
        guard sum > 0, sum.isFinite else { return p.indices.map { $0 == fallback ? 1 : 0 } }
        return clipped.map { $0 / sum }
    }

    private static func logAddExp(_ a: Double, _ b: Double) -> Double {
        let high = max(a, b)
        return high == -.infinity ? high : high + log(exp(a - high) + exp(b - high))
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension RandomStream {
    /// The noise of the `noise` output policy.
    public static let outputPolicyNoise = RandomStream("outputs.policy.noise")
}

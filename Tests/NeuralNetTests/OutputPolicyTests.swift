import Foundation
import NeuralNet
import TensorCore
import Testing

@Suite("Output policies")
struct OutputPolicyTests {
    @Test("every policy's text parses back to it; malformed texts are refused with the forms named")
    func parsing() throws {
        for policy: OutputPolicy in [.full, .label, .topK(3), .rounded(2), .reverseSigmoid(beta: 0.5, gamma: 0.2), .noise(sigma: 0.05)] {
            #expect(try OutputPolicy(parsing: policy.description) == policy)
            let encoded = try JSONEncoder().encode(policy)
            #expect(try JSONDecoder().decode(OutputPolicy.self, from: encoded) == policy)
        }
        for text in ["", "ful", "top-k", "top-k:0", "rounded:9", "reverse-sigmoid:1", "reverse-sigmoid:0:1", "reverse-sigmoid:1:nan",
                     "reverse-sigmoid:11:1", "noise:0", "noise:2", "noise:-0.1", "noise:inf", "label:1", "full:"] {
            #expect(throws: OutputPolicy.InvalidText.self, "\(text)") { try OutputPolicy(parsing: text) }
        }
        #expect(throws: OutputPolicy.InvalidText.self) { try OutputPolicy(parsing: "x") }
        do { _ = try OutputPolicy(parsing: "x") } catch { #expect("\(error)".contains("reverse-sigmoid:BETA:GAMMA")) }
    }

    @Test("reverse sigmoid on a confident row uses the log-odds from the logits, where 1 − p would round to 0")
    func reverseSigmoidConfident() {
        var generator = RandomGenerator(seed: 1)
        let (beta, gamma) = (0.8, 0.3)
        let logits: [Float] = [40, 0, 0, -5]
        let answer = OutputPolicy.reverseSigmoid(beta: beta, gamma: gamma).answer(logits: logits, generator: &generator)
        // Float64 reference from the exact log-odds: logit pⱼ = zⱼ − log Σ_{i≠j} e^{zᵢ}.
        let z = logits.map(Double.init)
        let p = z.map { exp($0 - 40) / z.reduce(0) { $0 + exp($1 - 40) } }
        var perturbed = z.indices.map { j -> Double in
            let others = log(z.indices.filter { $0 != j }.reduce(0) { $0 + exp(z[$1]) })
            return min(max(p[j] - beta * (1 / (1 + exp(-gamma * (z[j] - others))) - 0.5), 0), 1)
        }
        let sum = perturbed.reduce(0, +)
        perturbed = perturbed.map { $0 / sum }
        #expect(answer.predicted == 0)
        #expect(zip(answer.probabilities!, perturbed).allSatisfy { abs($0 - $1) < 1e-12 })
        // The top class keeps the most mass, and the vector's log-odds no longer follow the logits
        // (classes 1 and 2 tie, class 3 is e^5 less likely in the model, far less than that here).
        let q = answer.probabilities!
        #expect(q[0] > q[1] && q[1] == q[2] && q[3] > 0 && q[1] / q[3] < 2)
    }

    @Test("label releases no vector; every policy names the model's own prediction (first index on ties)")
    func predictions() {
        var generator = RandomGenerator(seed: 2)
        let logits: [Float] = [1, 3, 3, 0]
        for policy: OutputPolicy in [.full, .label, .topK(1), .rounded(0), .reverseSigmoid(beta: 1, gamma: 1), .noise(sigma: 1)] {
            let answer = policy.answer(logits: logits, generator: &generator)
            #expect(answer.predicted == 1)
            #expect((answer.probabilities == nil) == (policy == .label))
        }
    }
}

import Attacks
import Datasets
import Foundation
import NeuralNet
@testable import Robustness
import TensorCore
import Testing
import _TestSupport

/// Deliberately broken models, one per sanity check: each check must fire on its broken model and
/// stay quiet on a healthy one (and on the shipped model).
final class BrokenModel: DifferentiableClassifier, @unchecked Sendable {  // one shard per thread, as every classifier
    enum Kind { case quantizedInputs, randomized, probabilities }
    let base: Sequential
    let kind: Kind
    private var inputs: [FloatBuffer] = [], outputs: [FloatBuffer] = [], zeroGradients: [FloatBuffer] = []
    private var generators: [RandomGenerator] = []
    private var rows = 0

    init(_ base: Sequential, _ kind: Kind) {
        self.base = base
        self.kind = kind
    }

    var inputWidth: Int { base.inputWidth }
    var classCount: Int { base.classCount }
    var pool: WorkerPool { base.pool }

    func reserve(rows: Int, shards: Int) {
        base.reserve(rows: rows, shards: shards)
        guard rows > self.rows || shards > inputs.count else { return }
        self.rows = max(rows, self.rows)
        inputs = (0..<shards).map { _ in FloatBuffer(count: self.rows * inputWidth) }
        outputs = (0..<shards).map { _ in FloatBuffer(count: self.rows * classCount) }
        zeroGradients = (0..<shards).map { _ in FloatBuffer(count: self.rows * inputWidth) }
        generators = (0..<shards).map { RandomGenerator(seed: UInt64($0)) }
    }

    func logits(_ input: MatrixRef, shard: Int) -> MatrixRef {
        switch kind {
        case .quantizedInputs:
            // Inputs rounded to multiples of 1/4: the function is a staircase, its gradient zero.
            let x = inputs[shard].matrix(rows: input.rows, columns: input.columns)
            for r in 0..<input.rows { for j in 0..<input.columns { x.row(r)[j] = (input.row(r)[j] * 4).rounded() / 4 } }
            return base.logits(x, shard: shard)
        case .randomized:
            let z = base.logits(input, shard: shard)
            let y = outputs[shard].matrix(rows: z.rows, columns: z.columns)
            for r in 0..<z.rows { for j in 0..<z.columns { y.row(r)[j] = z.row(r)[j] + 0.5 * generators[shard].nextGaussian() } }
            return y
        case .probabilities:
            let z = base.logits(input, shard: shard)
            let y = outputs[shard].matrix(rows: z.rows, columns: z.columns)
            for r in 0..<z.rows {
                let m = (0..<z.columns).map { z.row(r)[$0] }.max()!
                var sum: Float = 0
                for j in 0..<z.columns { y.row(r)[j] = Foundation.exp(z.row(r)[j] - m); sum += y.row(r)[j] }
                for j in 0..<z.columns { y.row(r)[j] /= sum }
            }
            return y
        }
    }

    func logitsGradient(shard: Int) -> MatrixRef { base.logitsGradient(shard: shard) }

    func inputGradient(shard: Int) -> MatrixRef {
        let g = base.inputGradient(shard: shard)
        guard kind == .quantizedInputs else { return g }
        let zero = zeroGradients[shard].matrix(rows: g.rows, columns: g.columns)
        for r in 0..<zero.rows { zero.row(r).update(repeating: 0, count: zero.columns) }
        return zero
    }
}

@Suite("Sanity checks fire on broken models")
struct BrokenModelTests {
    /// A trained 5×5-"image" model (25 features) on a learnable rule.
    static func healthy() throws -> (Sequential, LabeledData) {
        let data = TestSupport.syntheticData(count: 300, features: 25, classes: 5, seed: 11)
        let trainer = try Trainer(configuration: TrainerConfiguration(architecture: try ModelSpec.parse("25-32-5"), seed: 1, epochs: 10, batchSize: 32,
                                                                      optimizer: .adam(learningRate: 3e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false)),
                                  objective: CrossEntropyObjective())
        _ = try trainer.train(on: data.prefix(200), validation: nil)
        return (trainer.network, data.subset(Array(200..<300)))
    }

    /// The same network with its logits scaled by 10⁴: the softmax saturates and cross-entropy
    /// gradients vanish in Float32 (a classic gradient-masking defence).
    static func masked(_ network: Sequential) -> Sequential {
        let copy = Sequential(spec: network.spec)
        copy.parameters.pointer.update(from: network.parameters.pointer, count: network.parameterCount)
        for i in network.parameterRanges.last! { copy.parameters.pointer[i] *= 10_000 }
        return copy
    }

    @Test("a gradient-masked model (saturated softmax) fails BW003 and BW005; the healthy one passes")
    func gradientMasking() throws {
        let (network, test) = try Self.healthy()
        let checker = SanityChecker(n: test.count)
        for (model, broken) in [(network, false), (Self.masked(network), true)] {
            let pgd = try AttackRunner(classifier: model, batchSize: 50).run(try PGD(epsilon: 0.3, steps: 20), on: test, seed: 0)
            let whiteBox = [SanityChecker.WhiteBoxOutcomes(norm: .linf, epsilon: 0.3, robust: pgd.robust)]
            let runs = try checker.blackBoxRuns(classifier: model, data: test, cells: [(.linf, 0.3)], seed: 0, batchSize: 50)
            let masking = checker.gradientMasking(runs, whiteBox: whiteBox)
            let large = try checker.largeEpsilon(classifier: model, data: test, attack: nil, seed: 0, batchSize: 50)
            #expect(masking.passed == !broken, "\(masking.message)")
            #expect(large.passed == !broken, "\(large.message)")
        }
    }

    @Test("quantised inputs fail BW004 (zero gradients at random starts), a randomised model BW006, probability outputs BW007")
    func brokenModels() throws {
        let (network, test) = try Self.healthy()
        let checker = SanityChecker(n: test.count)
        #expect(checker.gradients(classifier: network, data: test, epsilon: 0.1, seed: 0).passed)
        #expect(checker.randomness(classifier: network, data: test).passed)
        #expect(checker.probabilityOutputs(classifier: network, data: test).passed)

        let quantized = checker.gradients(classifier: BrokenModel(network, .quantizedInputs), data: test, epsilon: 0.1, seed: 0)
        #expect(!quantized.passed && quantized.message.contains("all-zero"), "\(quantized.message)")
        let randomized = checker.randomness(classifier: BrokenModel(network, .randomized), data: test)
        #expect(!randomized.passed && randomized.message.contains("randomised"), "\(randomized.message)")
        let probabilities = checker.probabilityOutputs(classifier: BrokenModel(network, .probabilities), data: test)
        #expect(!probabilities.passed && probabilities.message.contains("softmax"), "\(probabilities.message)")
    }

    @Test("the checks stay quiet on the shipped standard model")
    func shippedModel() throws {
        let network = try ModelFile.load(contentsOf: TestSupport.repositoryRoot + "/models/mlp-standard.safetensors").network
        let test = try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .test, limit: 100)
        let checker = SanityChecker(n: test.count)
        for check in [try checker.largeEpsilon(classifier: network, data: test, attack: nil, seed: 0, batchSize: 100),
                      checker.gradients(classifier: network, data: test, epsilon: 0.2, seed: 0),
                      checker.randomness(classifier: network, data: test),
                      checker.probabilityOutputs(classifier: network, data: test)] {
            #expect(check.passed, "\(check.id): \(check.message)")
        }
    }
}

import Foundation
import Testing
@testable import Attacks
import NeuralNet
import TensorCore
import _TestSupport

@Suite("Square attack")
struct SquareTests {
    static let image = Square.ImageShape(height: 4, width: 5)

    @Test("Square stays inside the ε-ball and [0, 1], within its query budget", arguments: Norm.allCases)
    func invariants(norm: Norm) throws {
        for seed in UInt64(0)..<3 {
            let model = Fixture.model(seed: seed)
            let data = Fixture.data(count: 37, seed: seed + 10)
            for epsilon: Float in norm == .linf ? [0.01, 0.1, 0.3] : [0.05, 0.5, 1.5] {
                let attack = try Square(norm: norm, epsilon: epsilon, queries: 60, restarts: 2, image: Self.image)
                let outcome = try AttackRunner(classifier: model, batchSize: 16).run(attack, on: data, seed: seed)
                #expect(outcome.adversarial.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
                #expect(outcome.perturbationNorms.allSatisfy { $0 <= epsilon + 1e-6 })
                #expect(outcome.queries.allSatisfy { $0 <= 120 }, "\(outcome.queries.max()!)")
                for i in 0..<data.count where outcome.cleanPredictions[i] != data.labels[i] {
                    #expect(outcome.queries[i] == 0 && outcome.perturbationNorms[i] == 0)
                }
            }
        }
    }

    @Test("Square fools a model with a large budget, and says what it needs to know about the image")
    func works() throws {
        let model = Fixture.model(seed: 4)
        let data = Fixture.data(count: 40, seed: 5)
        let outcome = try AttackRunner(classifier: model).run(try Square(epsilon: 0.3, queries: 300, image: Self.image), on: data, seed: 1)
        #expect(outcome.successRate.value > 0.5, "\(outcome.successRate)")
        #expect(outcome.queryStatistics != nil)
        // 20 features are not a square image: the shape must be given.
        #expect(throws: AttackError.self) { try AttackRunner(classifier: model).run(try Square(epsilon: 0.3, queries: 10), on: data, seed: 1) }
        #expect(Square.ImageShape.inferred(features: 784) == Square.ImageShape(height: 28, width: 28))
        #expect(Square.ImageShape.inferred(features: 3072) == Square.ImageShape(height: 32, width: 32, channels: 3))
    }

    @Test("tiny and elongated images: the L2 start grid and windows stay inside the image", arguments: [(1, 1), (2, 2), (3, 3), (1, 20), (20, 1), (4, 5)])
    func tinyImages(height: Int, width: Int) throws {
        let d = height * width
        let model = Fixture.model(seed: 1, spec: "\(d)-8-5")
        let data = Fixture.data(count: 12, features: d, seed: 2)
        for norm in Norm.allCases {
            let attack = try Square(norm: norm, epsilon: norm == .linf ? 0.2 : 0.8, queries: 30, image: .init(height: height, width: width))
            let outcome = try AttackRunner(classifier: model, batchSize: 6).run(attack, on: data, seed: 0)
            #expect(outcome.perturbationNorms.allSatisfy { $0 <= attack.epsilon + 1e-6 })
        }
    }

    @Test("the AutoAttack suite refuses inputs that are not images before its first attack, and says how to give the shape")
    func suiteNeedsImageShape() throws {
        let model = Fixture.model(seed: 1)
        let data = Fixture.data(count: 8, seed: 2)
        #expect {
            try AttackRunner(classifier: model).run(try AutoAttackSuite(epsilon: 0.1), on: data, seed: 0)
        } throws: { "\($0)".contains("--image") }
        let shaped = try AttackRunner(classifier: model).run(try AutoAttackSuite(epsilon: 0.1, squareQueries: 20, image: Self.image), on: data, seed: 0)
        #expect(shaped.n == 8)
    }

    @Test("window sides follow the authors' schedule (28×28 images, p_init 0.8)")
    func schedule() throws {
        let shape = Square.ImageShape(height: 28, width: 28)
        let linf = try Square(epsilon: 0.1)
        #expect([0, 10, 11, 50, 51, 200, 201, 500, 501, 1000, 1001, 2000, 2001, 4000, 4001].map { linf.side(iteration: $0, shape: shape) }
                    == [25, 25, 18, 18, 13, 13, 9, 9, 6, 6, 4, 4, 3, 3, 2])
        let l2 = try Square(norm: .l2, epsilon: 1)
        #expect([0, 11, 501, 4001].map { l2.side(iteration: $0, shape: shape) } == [25, 19, 7, 3])
    }

    @Test("blending first-layer outputs toward a point and refreshing the later layers gives a full pass's logits and input gradient")
    func affineFirstLayer() throws {
        let network = Fixture.model(seed: 8, spec: "20-16-8-5")
        network.reserve(rows: 4, shards: 1)
        let classifier: any AffineFirstLayerClassifier = network
        let width = try #require(classifier.affineFirstLayerWidth)
        var x = TestSupport.randomTensor(rows: 4, columns: 20, seed: 9, in: 0, 1)
        var anchor = TestSupport.randomTensor(rows: 4, columns: 20, seed: 10, in: 0, 1)
        let beta: Float = 0.9
        var anchorOutputs = Tensor(shape: [4, width], scalars: [Float](repeating: 0, count: 4 * width))
        anchor.withMatrix { a in anchorOutputs.withMatrix { classifier.firstLayerOutputs(a, into: $0, shard: 0) } }
        // Rows 1 and 3 move to anchor + β(x − anchor); rows 0 and 2 stay.
        var moved = x
        for row in [1, 3] { for j in 0..<20 { moved[row, j] = anchor[row, j] + beta * (x[row, j] - anchor[row, j]) } }
        func gradientOfFirstLogit() -> [Float] {
            let g = classifier.logitsGradient(shard: 0)
            for r in 0..<4 { for k in 0..<5 { g.row(r)[k] = k == 0 ? 1 : 0 } }
            return classifier.inputGradient(shard: 0).array
        }
        _ = x.withMatrix { classifier.logits($0, shard: 0) }
        let h = classifier.lastFirstLayerOutputs(shard: 0)
        for row in [1, 3] { for o in 0..<width { h.row(row)[o] = (1 - beta) * anchorOutputs[row, o] + beta * h.row(row)[o] } }
        let fast = classifier.refreshAfterFirstLayer(shard: 0).array
        let fastGradient = gradientOfFirstLogit()
        let exact = moved.withMatrix { classifier.logits($0, shard: 0).array }
        let exactGradient = gradientOfFirstLogit()
        #expect(TestSupport.close(fast, exact, relative: 1e-5, absolute: 1e-5))
        #expect(TestSupport.close(fastGradient, exactGradient, relative: 1e-5, absolute: 1e-5))
        #expect(fast != x.withMatrix { classifier.logits($0, shard: 0).array }, "the moved rows' logits changed")
    }

    @Test("the incremental layers give the logits of a full forward pass, through accepted candidates and compaction",
          arguments: ["20-16-8-5", "20-16-5", "20-5"])
    func incremental(spec: String) throws {
        let network = Fixture.model(seed: 6, spec: spec)
        let classes = Int(spec.split(separator: "-").last!)!
        network.reserve(rows: 4, shards: 1)
        let forward = try #require(IncrementalForward(network, rows: 4))
        var x = TestSupport.randomTensor(rows: 4, columns: 20, seed: 7, in: 0, 1)
        x.withMatrix { forward.firstLayer($0) }
        func candidates(_ changes: [(Int, Int, Float)]) -> Tensor {
            var changed = x
            for (row, feature, delta) in changes { changed[row, feature] += delta }
            for row in 0..<4 {
                let features = (0..<20).filter { changed[row, $0] != x[row, $0] }
                forward.setCandidate(row: row, features: features, changes: features.map { changed[row, $0] - x[row, $0] }, count: features.count)
            }
            return changed
        }
        func expectExact(_ incremental: MatrixRef, _ points: Tensor, rows: [Int], _ comment: Comment) {
            let fast = rows.indices.flatMap { i in (0..<classes).map { incremental.row(i)[$0] } }
            var gathered = points.gatherRows(rows)
            let exact = gathered.withMatrix { network.forward($0, mode: .evaluation).array }
            #expect(TestSupport.close(fast, exact, relative: 1e-5, absolute: 1e-5), comment)
        }
        // Candidates from the exact current points.
        var changed = candidates([(0, 3, 0.25), (0, 17, -0.5), (2, 0, 0.125), (3, 19, 0.75)])
        expectExact(forward.logits(rows: 4, fromCandidates: true), changed, rows: [0, 1, 2, 3], "first candidates")
        // Rows 0 and 2 accept theirs; the next candidates start from updated (not recomputed) points.
        forward.acceptCandidate(row: 0)
        forward.acceptCandidate(row: 2)
        for j in 0..<20 { x[0, j] = changed[0, j]; x[2, j] = changed[2, j] }
        expectExact(forward.logits(rows: 4, fromCandidates: false), x, rows: [0, 1, 2, 3], "current points after accepting")
        changed = candidates([(0, 5, 0.5), (1, 9, -0.25), (2, 3, -0.375), (2, 4, 0.5)])
        expectExact(forward.logits(rows: 4, fromCandidates: true), changed, rows: [0, 1, 2, 3], "candidates from accepted points")
        // Compaction: rows 2 and 3 move to slots 0 and 1.
        forward.moveRow(2, to: 0)
        forward.moveRow(3, to: 1)
        expectExact(forward.logits(rows: 2, fromCandidates: false), x, rows: [2, 3], "current points after compaction")
    }
}

@Suite("Square through queries alone")
struct QueryOnlyTests {
    @Test("Square on a query-only view of the model (InferenceModel) matches Square on the network, and every row sent is counted")
    func squareThroughQueries() throws {
        let network = Fixture.model(seed: 12, spec: "64-16-5")
        let data = Fixture.data(count: 40, features: 64, classes: 5, seed: 13)
        for norm in Norm.allCases {
            let attack = try Square(norm: norm, epsilon: norm == .linf ? 0.1 : 0.5, queries: 300)
            let white = try AttackRunner(classifier: network, batchSize: 20).run(attack, on: data, seed: 4)
            let queryOnly = QueryOnlyClassifier(network.inferenceModel())
            let black = try AttackRunner(classifier: queryOnly, batchSize: 20).run(attack, on: data, seed: 4)
            // L2 evaluates every candidate by a full forward pass on both paths; L∞ on the network
            // updates first layers incrementally, which may flip a near-tie.
            if norm == .l2 {
                #expect(black.robust == white.robust && black.queries == white.queries)
            } else {
                #expect(abs(black.robustCorrect - white.robustCorrect) <= 1)
            }
            #expect(black.adversarial.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
            // The attack's own count, plus the clean classification, the attack's check of the clean
            // points and the runner's final classification of every row.
            #expect(queryOnly.queries >= black.queries.reduce(0, +) + 3 * data.count, "\(queryOnly.queries)")
        }
    }

    @Test("a gradient attack on a query-only model is refused before it runs, naming the problem")
    func gradientAttackRefused() throws {
        let queryOnly = QueryOnlyClassifier(Fixture.model(seed: 12, spec: "64-16-5").inferenceModel())
        let data = Fixture.data(count: 10, features: 64, classes: 5, seed: 13)
        #expect { try AttackRunner(classifier: queryOnly).run(try PGD(epsilon: 0.1, steps: 3), on: data, seed: 0) } throws: { error in
            "\(error)".contains("query-only model takes score-based attacks (square) only")
        }
        #expect(queryOnly.queries == 0)
    }
}

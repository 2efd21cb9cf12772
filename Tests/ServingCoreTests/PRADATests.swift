import Datasets
import Foundation
import NeuralNet
@testable import ServingCore
import TensorCore
import Testing
import _TestSupport

@Suite("Extraction detection (PRADA)")
struct PRADATests {
    @Test("Shapiro–Wilk W matches scipy.stats.shapiro, and Φ⁻¹ matches scipy.stats.norm.ppf")
    func shapiroWilk() {
        // scipy 1.17.1: x_i = (i² mod 17) + sin(i), i = 0..<n; and x_i = exp(i/50), n = 300.
        let expected: [(Int, Double)] = [(3, 0.9796233897581345), (4, 0.9629738807253958), (5, 0.9459400434314021), (6, 0.9655969668151215),
                                         (11, 0.8774714481644772), (20, 0.9001496218974825), (100, 0.913609172016534),
                                         (1000, 0.9125537624278043), (5000, 0.9129774293007714)]
        for (n, w) in expected {
            let sample = (0..<n).map { Double(($0 * $0) % 17) + sin(Double($0)) }
            #expect(abs(ShapiroWilk.statistic(sample)! - w) < 2e-5, "n = \(n)")
        }
        #expect(abs(ShapiroWilk.statistic((0..<300).map { exp(Double($0) / 50) })! - 0.7142354966443052) < 2e-5)
        #expect(ShapiroWilk.statistic([1, 2]) == nil && ShapiroWilk.statistic(Array(repeating: 0, count: 5001)) == nil)
        #expect(ShapiroWilk.statistic(Array(repeating: 3, count: 50)) == 0, "no spread is not normal")
        #expect(abs(ShapiroWilk.inverseNormal(0.975) - 1.959963984540054) < 1e-12)
        #expect(abs(ShapiroWilk.inverseNormal(1e-6) - -4.753424308822899) < 1e-10)
        #expect(abs(ShapiroWilk.inverseNormal(0.3) - -0.5244005127080409) < 1e-12)
    }

    /// The shipped standard model and the committed sample.
    static func setting() throws -> (model: InferenceNetwork, train: LabeledData, test: LabeledData) {
        let network = try ModelFile.load(contentsOf: TestSupport.repositoryRoot + "/models/mlp-standard.safetensors").network
        return (network.inferenceModel(pool: nil), try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .train),
                try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .test))
    }

    /// A Jacobian-augmentation-shaped stream (Papernot et al. 2017): `seeds` natural images, then
    /// rounds that each add x ± λ on every pixel (a sign per pixel, clamped to [0, 1]) for every
    /// point so far, until `count` queries.
    static func jacobianStream(from data: LabeledData, seeds: Int, count: Int, lambda: Float = 0.1, seed: UInt64) -> Tensor {
        let d = data.featureCount
        var points = Array(data.features.scalars.prefix(seeds * d))
        var generator = RandomGenerator(seed: seed)
        while points.count < count * d {
            let current = points.count / d
            for r in 0..<min(current, count - current) {
                for j in 0..<d {
                    let step: Float = generator.next() & 1 == 0 ? lambda : -lambda
                    points.append(min(max(points[r * d + j] + step, 0), 1))
                }
            }
        }
        return Tensor(shape: [count, d], scalars: points)
    }

    @Test("δ fitted on benign training-image streams: PRADA flags a Jacobian-style stream within 1,000 queries and stays quiet on a test-set replay")
    func detection() throws {
        let (model, train, test) = try Self.setting()
        // Fit δ on 4 benign streams of 1,000 training images (at most 0% flagged).
        var minima: [Double] = []
        for s in 0..<4 {
            let stream = train.features.rows(s * 1000..<((s + 1) * 1000))
            let predicted = try model.predictions(stream)
            minima.append(stream.withReadOnlyMatrix { PRADADetector(delta: 0.5).minimumW(of: $0, predicted: predicted, classes: 10) }!)
        }
        let settings = PRADADetector(delta: PRADADetector.delta(forBenignMinimumW: minima, falsePositiveRate: 0))
        #expect(settings.delta > 0.5 && settings.delta < 1 && settings.problem == nil, "δ = \(settings.delta) from \(minima)")

        // A benign client replaying the test set (not used to fit δ), in order.
        let replay = PRADAStream(settings: settings, width: 784, classes: 10)
        let testPredicted = try model.predictions(test.features)
        test.features.withReadOnlyMatrix { _ = replay.observe($0, predicted: testPredicted) }
        #expect(replay.flaggedAfter == nil, "benign replay flagged at \(replay.flaggedAfter ?? 0); smallest W \(replay.minimumW ?? 1), δ \(settings.delta)")
        #expect(replay.queries == test.count)

        // The thief: 150 seed images of the test set, then augmentation rounds, 1,000 queries.
        let attack = Self.jacobianStream(from: test, seeds: 150, count: 1000, seed: 7)
        let thief = PRADAStream(settings: settings, width: 784, classes: 10)
        let attackPredicted = try model.predictions(attack)
        attack.withReadOnlyMatrix { _ = thief.observe($0, predicted: attackPredicted) }
        #expect(thief.flaggedAfter != nil && thief.flaggedAfter! <= 1000, "smallest W \(thief.minimumW ?? 1), δ \(settings.delta)")
    }

    @Test("on the sample's test images in order, W at every test point matches an independent numpy/scipy PRADA (Benchmarks/peers/compare_prada.py) to 1e-6")
    func peer() throws {
        struct Fixture: Decodable {
            struct Point: Decodable { let queries: Int; let w: Double }
            let predicted: [Int]
            let trace: [Point]
        }
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: URL(fileURLWithPath:
            TestSupport.repositoryRoot + "/Tests/ServingCoreTests/Fixtures/prada-replay.json")))
        let (model, _, test) = try Self.setting()
        let predicted = try model.predictions(test.features)
        #expect(predicted == fixture.predicted, "the model's predictions differ from numpy's")
        // No memory bound here, as in the authors' implementation.
        let stream = PRADAStream(settings: PRADADetector(delta: 0.5, maximumStoredInputs: 1_000_000), width: 784, classes: 10)
        var trace: [(Int, Double)] = []
        test.features.withReadOnlyMatrix { x in
            for r in 0..<x.rows {
                stream.observe(UnsafePointer(x.row(r)), predicted: predicted[r])
                if stream.lastTestQueries == r + 1, let w = stream.lastW { trace.append((r + 1, w)) }
            }
        }
        #expect(trace.map(\.0) == fixture.trace.map(\.queries))
        let worst = zip(trace, fixture.trace).map { abs($0.1 - $1.w) }.max() ?? 1
        #expect(worst < 1e-6, "largest |W − W_scipy| = \(worst)")
    }

    @Test("the nearest distance is exact on near-duplicates, memory stays bounded, and bad settings are named")
    func bounds() throws {
        var settings = PRADADetector(delta: 0.9, minimumQueries: 3, testInterval: 1, maximumStoredInputs: 5)
        let stream = PRADAStream(settings: settings, width: 4, classes: 2)
        for i in 0..<20 {
            var x: [Float] = [100, 100, 100, Float(i) * 1e-3]
            _ = stream.observe(&x, predicted: 0)
            // ‖x‖² ≈ 30,000: the expanded form alone would lose a 1e-3 distance to rounding.
            if i == 1 { #expect(abs(stream.lastDistance! - 1e-3) < 1e-6, "\(stream.lastDistance!)") }
            if i == 0 { #expect(stream.lastDistance == nil) }
        }
        #expect(stream.queries == 20 && stream.capacityPerClass == 2 && stream.storedInputs <= 2, "\(stream.storedInputs) stored")
        settings.delta = 1
        #expect(settings.problem != nil)
        #expect(PRADADetector(delta: 0.9, minimumQueries: 2).problem != nil)
        #expect(PRADADetector.delta(forBenignMinimumW: [0.95, 0.97, 0.99], falsePositiveRate: 0) < 0.95)
        #expect(PRADADetector.delta(forBenignMinimumW: [0.95, 0.97, 0.99], falsePositiveRate: 0) > 0.9499)
    }
}

@Suite("Extraction detection (query volume)")
struct ExtractionVolumeTests {
    @Test("rows are counted per key over a sliding hour; a key past the limit is flagged once, others are not")
    func volume() {
        let clock = Locked<ContinuousClock.Instant>(ContinuousClock.now)
        let monitor = ExtractionMonitor(now: { clock.withLock { $0 } })
        func advance(minutes: Int) { clock.withLock { $0 = $0.advanced(by: .seconds(60 * minutes)) } }
        #expect(monitor.observeVolume(key: "a", rows: 60, limit: 100) == nil)
        advance(minutes: 30)
        #expect(monitor.observeVolume(key: "a", rows: 40, limit: 100) == nil, "100 rows in the hour is the limit, not past it")
        #expect(monitor.observeVolume(key: "b", rows: 100, limit: 100) == nil, "keys are counted apart")
        advance(minutes: 31)  // the first 60 rows are more than an hour old
        #expect(monitor.observeVolume(key: "a", rows: 60, limit: 100) == nil)
        let detection = monitor.observeVolume(key: "a", rows: 1, limit: 100)
        #expect(detection == .init(afterQueries: 161, w: nil) && detection?.detector == "volume")
        #expect(monitor.isFlagged(key: "a") && !monitor.isFlagged(key: "b"))
        #expect(monitor.observeVolume(key: "a", rows: 500, limit: 100) == nil, "flagged once")
        monitor.retain(keys: ["b"])
        #expect(!monitor.isFlagged(key: "a"))
    }

    @Test("a key's out-of-distribution share is judged from 100 rows on; a key past the limit is flagged once")
    func outOfDistribution() {
        let monitor = ExtractionMonitor()
        #expect(monitor.observeOutOfDistribution(key: "a", rows: 50, flagged: 50, limit: 0.4) == nil, "too few rows to judge")
        let detection = monitor.observeOutOfDistribution(key: "a", rows: 50, flagged: 0, limit: 0.4)
        #expect(detection == .init(afterQueries: 100, w: nil, detector: "out-of-distribution"))
        #expect(monitor.observeOutOfDistribution(key: "b", rows: 100, flagged: 40, limit: 0.4) == nil, "40% is the limit, not past it")
        #expect(monitor.observeOutOfDistribution(key: "a", rows: 100, flagged: 100, limit: 0.4) == nil, "flagged once")
        #expect(monitor.isFlagged(key: "a") && !monitor.isFlagged(key: "b"))
    }
}

@Suite("Rate limits by cost")
struct RateLimiterCostTests {
    @Test("a request may cost several tokens (rows); Retry-After says when they will be there; a refund gives them back up to the burst")
    func cost() {
        let clock = Locked<ContinuousClock.Instant>(ContinuousClock.now)
        let limiter = RateLimiter(now: { clock.withLock { $0 } })
        #expect(limiter.take(id: "k", rate: 1, burst: 10, cost: 6).allowed)
        let refused = limiter.take(id: "k", rate: 1, burst: 10, cost: 6)
        #expect(!refused.allowed && refused.retryAfterSeconds == 2 && refused.remaining == 4)
        clock.withLock { $0 = $0.advanced(by: .seconds(2)) }
        #expect(limiter.take(id: "k", rate: 1, burst: 10, cost: 6).allowed)
        // A refunded request's tokens come back, never beyond the burst.
        limiter.refund(id: "k", tokens: 6, burst: 10)
        #expect(limiter.take(id: "k", rate: 1, burst: 10, cost: 6).allowed)
        limiter.refund(id: "k", tokens: 100, burst: 10)
        #expect(limiter.take(id: "k", rate: 1, burst: 10, cost: 10).allowed && !limiter.take(id: "k", rate: 1, burst: 10, cost: 1).allowed)
    }
}

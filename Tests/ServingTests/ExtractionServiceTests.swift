#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import Dispatch
import Foundation
import NeuralNet
import ServingClient
import ServingCore
import TensorCore
import Testing
import Threats
import _TestSupport

/// Model extraction against the live service: PRADA per key with each action, and the thief's
/// HTTPS client (`RemotePredictionAPI`) obeying 429 and `Retry-After`.
@Suite("Model extraction against the service")
struct ExtractionServiceTests {
    /// PRADA for every served model: tested from more than 20 distances, δ = 0.8.
    static let detectors: @Sendable (InferenceNetwork, String) throws -> AnomalyDetectors = { _, sha256 in
        AnomalyDetectors(modelSHA256: sha256, targetFalsePositiveRate: 0.01, mahalanobis: nil, noise: nil,
                         extraction: PRADADetector(delta: 0.8, minimumQueries: 20))
    }

    /// A thief's stream PRADA must flag: 20 random images, then small steps from the first one
    /// (every step the same length, like augmentation steps: a spike in the distances).
    static func thiefRows(_ count: Int) -> [[Float]] {
        let seeds = TestService.sampleRows(20, seed: 100)
        return (0..<count).map { i in
            guard i >= 20 else { return seeds[i] }
            var row = seeds[0]
            row[i % 784] = row[i % 784] < 0.5 ? row[i % 784] + 0.1 : row[i % 784] - 0.1
            return row
        }
    }

    /// Runs a blocking call on a Dispatch thread, never on Swift concurrency's cooperative pool
    /// (the service in this process needs those threads to answer it).
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// The service's clock, moved only by the client's waits: what the tests see does not depend on
    /// how fast a busy machine answers.
    final class FakeClock: Sendable {
        let instant = Locked<ContinuousClock.Instant>(ContinuousClock.now)
        let waited = Locked<Int>(0)
        var now: @Sendable () -> ContinuousClock.Instant { { [instant] in instant.withLock { $0 } } }
        var sleep: @Sendable (Int) -> Void {
            { [instant, waited] seconds in
                instant.withLock { $0 = $0.advanced(by: .seconds(seconds)) }
                waited.withLock { $0 += seconds }
            }
        }
    }

    func client(_ service: TestService, key role: Role = .predictor, rowsPerRequest: Int = 10,
                sleep: @escaping @Sendable (Int) -> Void = { Thread.sleep(forTimeInterval: Double($0)) }) async throws -> RemotePredictionAPI {
        let (url, key, pem) = (service.baseURL + "/v1/models/m/predict", service.keys[role]!.text, Array(service.certificatePEM.utf8))
        return try await Self.blocking { try RemotePredictionAPI(url: url, apiKey: key, caCertificatePEM: pem, rowsPerRequest: rowsPerRequest, sleep: sleep) }
    }

    @Test("block: the thief's stream is flagged, audited and counted, its next request refused 403; a benign key replaying inputs is never flagged")
    func block() async throws {
        var limits = ServeConfiguration.Limits()
        limits.extractionAction = .block
        try await TestService(limits: limits, detectors: Self.detectors).use { service in
            let thief = try await client(service)
            #expect(thief.policy == .full && thief.inputWidth == 784 && thief.classCount == 10)
            let oracle = try ExtractionOracle(thief, budget: 1000)
            let stream = Tensor(shape: [200, 784], scalars: Self.thiefRows(200).flatMap { $0 })
            await #expect(throws: ThreatError.self) { try await Self.blocking { _ = try oracle.query(stream) } }
            let detectedAfter = try #require(thief.detectedAfterQueries)
            #expect(detectedAfter > 20 && detectedAfter < 200, "the client learns it was blocked")

            // A benign key sending 300 random images in 30 requests: answered, never flagged.
            let benign = try await client(service, key: .admin)
            let answers = try await Self.blocking { try benign.answers(Tensor(shape: [300, 784], scalars: TestService.sampleRows(300, seed: 9).flatMap { $0 })) }
            #expect(answers.count == 300 && benign.detectedAfterQueries == nil)

            let metrics = try PrometheusText.parse(try await service.request(.GET, "/metrics", key: service.keys[.auditor]).text)
            #expect(metrics.first { $0.name == "bulwark_extraction_detections_total" && $0.labels["key"] == "predictor-key" }?.value == 1)
            #expect(!metrics.contains { $0.name == "bulwark_extraction_detections_total" && $0.labels["key"] == "admin-key" })
            #expect(metrics.first { $0.name == "bulwark_extraction_refusals_total" && $0.labels["action"] == "block" }?.value ?? 0 >= 1)
            let audit = try await service.request(.GET, "/v1/audit?since=0", key: service.keys[.auditor])
            let entries = (audit.json["entries"] as? [[String: Any]] ?? []).filter { $0["event"] as? String == "extraction_suspected" }
            #expect(entries.count == 1 && entries.first?["key"] as? String == "predictor-key")
            let detail = entries.first?["detail"] as? [String: String]
            #expect(detail?["detector"] == "prada" && detail?["action"] == "block" && Int(detail?["after_queries"] ?? "") != nil)
        }
    }

    @Test("throttle: after detection the key may send 1 row per second: 429 extraction-throttled with Retry-After, and the client waits it out")
    func throttle() async throws {
        var limits = ServeConfiguration.Limits()
        limits.extractionAction = .throttle
        limits.extractionThrottleRate = 1
        let clock = FakeClock()
        try await TestService(limits: limits, now: clock.now, detectors: Self.detectors).use { service in
            let rows = Self.thiefRows(400)
            var refused: TestService.Reply?
            // Flagged within the first rows; then the throttle's bucket (max_rows = 256 rows) drains.
            for start in stride(from: 0, to: 400, by: 10) {
                let reply = try await service.predict(Array(rows[start..<(start + 10)]))
                if reply.status != 200 { refused = reply; break }
            }
            #expect(refused?.status == 429 && (refused?.json["type"] as? String)?.hasSuffix("/extraction-throttled") == true, "\(refused?.text ?? "never refused")")
            #expect(Int(refused?.headers.first(name: "Retry-After") ?? "") ?? 0 >= 1)
            for _ in 0..<12 where try await service.predict([rows[0]]).status == 200 {}  // empty the bucket
            // The client obeys: 3 single-row requests at 1 row per second each wait 1 s, and all are answered.
            let thief = try await client(service, rowsPerRequest: 1, sleep: clock.sleep)
            let answers = try await Self.blocking { try thief.answers(Tensor(shape: [3, 784], scalars: Array(rows[1...3].joined()))) }
            #expect(answers.count == 3 && thief.retries == 3 && clock.waited.withLock { $0 } == 3 && thief.detectedAfterQueries == 0)
        }
    }

    @Test("volume: a key past extraction_max_rows_per_hour is flagged (detector volume, without any detectors file) and blocked; other keys go on")
    func volume() async throws {
        var limits = ServeConfiguration.Limits()
        limits.extractionAction = .block
        limits.extractionMaxRowsPerHour = 50
        try await TestService(limits: limits).use { service in
            let rows = TestService.sampleRows(30)
            #expect(try await service.predict(rows).status == 200)
            #expect(try await service.predict(rows).status == 200, "the request that passes the limit is still answered")
            let blocked = try await service.predict([rows[0]])
            #expect(blocked.status == 403 && (blocked.json["type"] as? String)?.hasSuffix("/extraction-blocked") == true)
            #expect(try await service.predict(rows, key: .admin).status == 200)
            let audit = try await service.request(.GET, "/v1/audit?since=0", key: service.keys[.auditor])
            let entry = (audit.json["entries"] as? [[String: Any]] ?? []).first { $0["event"] as? String == "extraction_suspected" }
            let detail = entry?["detail"] as? [String: String]
            #expect(detail?["detector"] == "volume" && detail?["after_queries"] == "60" && detail?["max_rows_per_hour"] == "50")
        }
    }

    @Test("out of distribution: a key whose share of rows the Mahalanobis detector flags passes extraction_max_ood_fraction is flagged after 100 rows and blocked")
    func outOfDistribution() async throws {
        var limits = ServeConfiguration.Limits()
        limits.extractionAction = .block
        limits.extractionMaxOutOfDistributionFraction = 0.5
        try await TestService(limits: limits, detectors: ServedDetectorTests.flaggingEverything).use { service in
            let rows = TestService.sampleRows(60)
            #expect(try await service.predict(rows).status == 200, "60 rows: too few to judge")
            #expect(try await service.predict(rows).status == 200, "the request that crosses 100 rows is answered")
            let blocked = try await service.predict([rows[0]])
            #expect(blocked.status == 403 && (blocked.json["type"] as? String)?.hasSuffix("/extraction-blocked") == true)
            let audit = try await service.request(.GET, "/v1/audit?since=0", key: service.keys[.auditor])
            let entry = (audit.json["entries"] as? [[String: Any]] ?? []).first { $0["event"] as? String == "extraction_suspected" }
            let detail = entry?["detail"] as? [String: String]
            #expect(detail?["detector"] == "out-of-distribution" && detail?["after_queries"] == "120" && detail?["max_ood_fraction"] == "0.5")
        }
    }

    @Test("the client respects the key's rate limit: each 429 waits its Retry-After, nothing is lost or repeated")
    func rateLimit() async throws {
        let clock = FakeClock()
        try await TestService(burst: 1, rate: 1, now: clock.now).use { service in
            let client = try await client(service, rowsPerRequest: 2, sleep: clock.sleep)
            let x = Tensor(shape: [6, 784], scalars: TestService.sampleRows(6, seed: 21).flatMap { $0 })
            let answers = try await Self.blocking { try client.answers(x) }
            // One token per second: GET /v1/models takes the first; each of the 3 predicts gets a 429 with Retry-After: 1, waits, and is answered.
            #expect(answers.count == 6 && client.retries == 3 && clock.waited.withLock { $0 } == 3, "\(client.retries) retries")
            let local = try ModelFile.load(contentsOf: service.modelPath).network.inferenceModel().predictions(x)
            #expect(answers.map(\.predicted) == local)
            #expect(answers.allSatisfy { abs(($0.probabilities ?? []).reduce(0, +) - 1) < 1e-5 })
            // A wrong key, a plain-http URL and a URL that is not a predict route are refused with what to fix.
            let (base, pem) = (service.baseURL, Array(service.certificatePEM.utf8))
            await #expect(throws: ThreatError.self) {
                try await Self.blocking { _ = try RemotePredictionAPI(url: base + "/v1/models/m/predict", apiKey: APIKey.generate().text, caCertificatePEM: pem) }
            }
            #expect(throws: ThreatError.self) { try RemotePredictionAPI(url: "http://localhost:1/v1/models/m/predict", apiKey: "k") }
            #expect(throws: ThreatError.self) { try RemotePredictionAPI(url: base + "/v1/models/m", apiKey: "k") }
        }
    }
}
#endif

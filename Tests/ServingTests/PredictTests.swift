#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import Foundation
import NIOHTTP1
import NeuralNet
import Serving
import TensorCore
import Testing
import _TestSupport

@Suite("Predictions, input validation and rate limits")
struct PredictTests {
    @Test("predictions equal the engine's (InferenceModel) and probabilities agree to Float32 rounding, JSON and float32 bodies")
    func predictionsMatchEngine() async throws {
        try await TestService().use { service in
            let rows = TestService.sampleRows(5)
            let reply = try await service.predict(rows)
            #expect(reply.status == 200, "\(reply.text)")
            let loaded = try ModelFile.load(contentsOf: service.modelPath)
            let model = loaded.network.inferenceModel()
            let input = Tensor(shape: [rows.count, TestService.width], scalars: rows.flatMap { $0 })
            let expectedClasses = try model.predictions(input)
            let expectedProbabilities = try model.probabilities(input)
            let predictions = reply.json["predictions"] as? [[String: Any]] ?? []
            #expect(predictions.count == rows.count)
            for (i, prediction) in predictions.enumerated() {
                #expect(prediction["class"] as? Int == expectedClasses[i])
                let probabilities = (prediction["probabilities"] as? [Double] ?? []).map(Float.init)
                // The service's softmax runs in Float64 (OutputPolicy), the engine's in Float32: equal to an ulp or two.
                #expect(TestSupport.close(probabilities, (0..<TestService.classes).map { expectedProbabilities[i, $0] }, relative: 1e-6, absolute: 1e-8))
            }
            #expect(reply.json["sha256"] as? String == service.server.state.registry.model(named: "m")?.sha256)

            var binary: [UInt8] = []
            for value in rows.flatMap({ $0 }) { withUnsafeBytes(of: value.bitPattern.littleEndian) { binary += $0 } }
            let octets = try await service.request(.POST, "/v1/models/m/predict", key: service.keys[.predictor], body: binary,
                                                   contentType: "application/octet-stream")
            #expect(octets.status == 200)
            #expect(octets.body == reply.body)
        }
    }

    @Test("every validation error has its status and names the field")
    func validationErrors() async throws {
        var limits = ServeConfiguration.Limits()
        limits.maxRows = 4
        try await TestService(limits: limits).use { service in
            let key = service.keys[.predictor]
            func post(_ body: String, _ type: String? = "application/json") async throws -> TestService.Reply {
                try await service.request(.POST, "/v1/models/m/predict", key: key, body: Array(body.utf8), contentType: type)
            }
            let row = "[" + Array(repeating: "0.5", count: 784).joined(separator: ",") + "]"
            var bad = Array(repeating: "0.5", count: 784)
            let cases: [(body: String, type: String?, status: Int, field: String?)] = [
                ("{\"inputs\": [\(row)]}", "text/plain", 415, nil),
                ("{\"inputs\": [\(row)]}", nil, 415, nil),
                ("{\"inputs\": [\(row)", "application/json", 400, nil),
                ("{\"inputs\": [\(row)], \"inputs\": [\(row)]}", "application/json", 400, nil),
                ("{\"inputs\": [\(row)], \"extra\": 1}", "application/json", 422, "/extra"),
                ("{\"inputs\": []}", "application/json", 422, "/inputs"),
                ("{}", "application/json", 422, "/inputs"),
                ("[1]", "application/json", 422, ""),
                ("{\"inputs\": [[0.5, 0.5]]}", "application/json", 422, "/inputs/0"),
                ("{\"inputs\": [\(row), \(row), \(row), \(row), \(row)]}", "application/json", 422, "/inputs"),
                ({ bad[3] = "1.5"; return "{\"inputs\": [\(row), [\(bad.joined(separator: ","))]]}" }(), "application/json", 422, "/inputs/1/3"),
                ({ bad[3] = "-0.01"; return "{\"inputs\": [[\(bad.joined(separator: ","))]]}" }(), "application/json", 422, "/inputs/0/3"),
                ({ bad[3] = "1e999"; return "{\"inputs\": [[\(bad.joined(separator: ","))]]}" }(), "application/json", 422, "/inputs/0/3"),
                ({ bad[3] = "\"0.5\""; return "{\"inputs\": [[\(bad.joined(separator: ","))]]}" }(), "application/json", 422, "/inputs/0/3"),
                ({ bad[3] = "NaN"; return "{\"inputs\": [[\(bad.joined(separator: ","))]]}" }(), "application/json", 400, nil),
                ({ bad[3] = "1.5"; return "{\"inputs\": [[\(bad.joined(separator: ","))" }(), "application/json", 400, nil),  // not JSON: 400 before 422
            ]
            for test in cases {
                let reply = try await post(test.body, test.type)
                #expect(reply.status == test.status, "\(test.body.prefix(60)) → \(reply.text)")
                #expect(reply.headers["Content-Type"].first == "application/problem+json")
                #expect((reply.json["detail"] as? String)?.isEmpty == false)
                if let field = test.field { #expect(reply.json["field"] as? String == field, "\(reply.text)") }
            }
            // float32 bodies: NaN, a partial row.
            var nan: [UInt8] = []
            for i in 0..<784 { withUnsafeBytes(of: (i == 9 ? Float.nan : 0.5).bitPattern.littleEndian) { nan += $0 } }
            let nanReply = try await service.request(.POST, "/v1/models/m/predict", key: key, body: nan, contentType: "application/octet-stream")
            #expect(nanReply.status == 422)
            #expect(nanReply.json["field"] as? String == "/inputs/0/9")
            let partial = try await service.request(.POST, "/v1/models/m/predict", key: key, body: Array(nan.prefix(100)), contentType: "application/octet-stream")
            #expect(partial.status == 422)
            // Too large: refused by Content-Length before the body is read.
            let huge = [UInt8](repeating: 0x20, count: 5 * 784 * 25 + 2048)
            let tooLarge = try await service.request(.POST, "/v1/models/m/predict", key: key, body: huge)
            #expect(tooLarge.status == 413)
            // Still serving after all that.
            #expect(try await service.predict(TestService.sampleRows(1)).status == 200)
        }
    }

    @Test("output policies: label only, top-k and rounded answers reveal only what the key may see")
    func outputPolicies() async throws {
        try await TestService().use { service in
            var keys: [OutputPolicy: APIKey] = [:]
            try KeyFile.modify(service.directory + "/keys.json") { file in
                for policy in [OutputPolicy.label, .topK(2), .rounded(2)] {
                    let key = APIKey.generate()
                    keys[policy] = key
                    file.keys.append(KeyEntry(id: key.id, name: "p-\(policy)", role: .predictor, sha256: key.secretDigest, rate: 100,
                                              burst: 100, output: policy, created: "2026-11-27T00:00:00Z"))
                }
            }
            service.server.state.keys.reload()
            let body = TestService.jsonBody(TestService.sampleRows(2))
            let full = try await service.request(.POST, "/v1/models/m/predict", key: service.keys[.predictor], body: body)
            let fullPredictions = full.json["predictions"] as! [[String: Any]]
            let label = try await service.request(.POST, "/v1/models/m/predict", key: keys[.label], body: body)
            for (a, b) in zip(label.json["predictions"] as! [[String: Any]], fullPredictions) {
                #expect(Set(a.keys) == ["class"])
                #expect(a["class"] as? Int == b["class"] as? Int)
            }
            let top = try await service.request(.POST, "/v1/models/m/predict", key: keys[.topK(2)], body: body)
            for (a, b) in zip(top.json["predictions"] as! [[String: Any]], fullPredictions) {
                let entries = a["top_k"] as! [[String: Any]]
                #expect(entries.count == 2)
                #expect(entries[0]["class"] as? Int == b["class"] as? Int)
                #expect(a["probabilities"] == nil)
            }
            let rounded = try await service.request(.POST, "/v1/models/m/predict", key: keys[.rounded(2)], body: body)
            #expect(rounded.status == 200)
            #expect(rounded.text.contains(#""probabilities":["#))
            for prediction in rounded.json["predictions"] as! [[String: Any]] {
                for p in prediction["probabilities"] as! [Double] { #expect(abs(p * 100 - (p * 100).rounded()) < 1e-9) }
            }
        }
    }

    @Test("rate limit exactness: a burst of B + 1 requests at one instant gets exactly one 429, with Retry-After and RateLimit headers")
    func rateLimitExact() async throws {
        let instant = ContinuousClock.now  // a frozen clock: no refill between requests
        try await TestService(burst: 5, rate: 0.5, now: { instant }).use { service in
            var statuses: [Int] = []
            var last: TestService.Reply?
            for _ in 0..<6 {
                let reply = try await service.request(.GET, "/v1/models", key: service.keys[.predictor])
                statuses.append(reply.status)
                last = reply
            }
            #expect(statuses == [200, 200, 200, 200, 200, 429])
            #expect(last?.headers["Retry-After"].first == "2")
            #expect(last?.headers["RateLimit-Limit"].first == "5")
            #expect(last?.headers["RateLimit-Remaining"].first == "0")
            #expect(last?.headers["RateLimit-Reset"].first == "10")
            // Another key has its own bucket; public probes are not limited.
            #expect(try await service.request(.GET, "/v1/models", key: service.keys[.auditor]).status == 200)
            #expect(try await service.request(.GET, "/healthz").status == 200)
        }
    }

    @Test("the token bucket refills at its rate and never beyond its burst")
    func tokenBucket() {
        let clock = Locked(ContinuousClock.now)
        let limiter = RateLimiter(now: { clock.withLock { $0 } })
        for _ in 0..<3 { #expect(limiter.take(id: "k", rate: 2, burst: 3).allowed) }
        let refused = limiter.take(id: "k", rate: 2, burst: 3)
        #expect(!refused.allowed && refused.retryAfterSeconds == 1)
        clock.withLock { $0 = $0.advanced(by: .milliseconds(500)) }  // one token back
        #expect(limiter.take(id: "k", rate: 2, burst: 3).allowed)
        #expect(!limiter.take(id: "k", rate: 2, burst: 3).allowed)
        clock.withLock { $0 = $0.advanced(by: .seconds(3600)) }  // long quiet: full burst, no more
        for _ in 0..<3 { #expect(limiter.take(id: "k", rate: 2, burst: 3).allowed) }
        #expect(!limiter.take(id: "k", rate: 2, burst: 3).allowed)
    }
}
#endif

#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import Foundation
import NIOHTTP1
import NeuralNet
import BulwarkSecurity
import Serving
import TensorCore
import Testing
import _TestSupport

@Suite("Reloads, metrics, the audit trail and graceful shutdown")
struct OperationsTests {
    @Test("a tampered model file is refused on reload and the old model keeps serving; a re-recorded one is swapped in")
    func reload() async throws {
        try await TestService().use { service in
            let before = try await service.predict(TestService.sampleRows(2))
            let oldSHA = service.server.state.registry.model(named: "m")!.sha256
            // An attacker swaps the file without the manifest vouching for it.
            try ModelFile.save(Sequential(spec: try ModelSpec.parse("784-16-10"), seed: 99), to: service.modelPath)
            let refused = try await service.request(.POST, "/v1/models/m/reload", key: service.keys[.admin])
            #expect(refused.status == 409, "\(refused.text)")
            #expect((refused.json["detail"] as? String)?.contains("SHA-256") == true || (refused.json["detail"] as? String)?.contains("digest") == true, "\(refused.text)")
            let after = try await service.predict(TestService.sampleRows(2))
            #expect(after.body == before.body)
            #expect(service.server.state.registry.model(named: "m")!.sha256 == oldSHA)
            // The owner records the new file in the manifest: the reload is accepted.
            try Manifest.record(service.modelPath)
            let accepted = try await service.request(.POST, "/v1/models/m/reload", key: service.keys[.admin])
            #expect(accepted.status == 200, "\(accepted.text)")
            #expect(accepted.json["previous_sha256"] as? String == oldSHA)
            let newSHA = accepted.json["sha256"] as? String
            #expect(newSHA != oldSHA)
            let swapped = try await service.predict(TestService.sampleRows(2))
            #expect(swapped.json["sha256"] as? String == newSHA)
            // Both reloads are in the audit trail.
            let audit = try await service.request(.GET, "/v1/audit?since=0", key: service.keys[.auditor])
            let events = (audit.json["entries"] as? [[String: Any]] ?? []).compactMap { $0["event"] as? String }
            #expect(events.contains("reload_refused") && events.contains("model_reloaded"), "\(events)")
        }
    }

    @Test("/metrics is valid Prometheus text and counts requests, denials, rejections and predictions")
    func metrics() async throws {
        try await TestService().use { service in
            _ = try await service.predict(TestService.sampleRows(3))
            _ = try await service.request(.GET, "/v1/models")
            _ = try await service.request(.POST, "/v1/models/m/predict", key: service.keys[.predictor], body: Array("{}".utf8))
            let reply = try await service.request(.GET, "/metrics", key: service.keys[.auditor])
            #expect(reply.status == 200)
            #expect(reply.headers["Content-Type"].first?.hasPrefix("text/plain; version=0.0.4") == true)
            let samples = try PrometheusText.parse(reply.text)
            func value(_ name: String, _ labels: [String: String]) -> Double? {
                samples.first { sample in sample.name == name && labels.allSatisfy { key, value in sample.labels[key] == value } }?.value
            }
            #expect(value("bulwark_http_requests_total", ["route": "/v1/models/{name}/predict", "status": "200"]) == 1)
            #expect(value("bulwark_auth_failures_total", ["reason": "missing"]) == 1)
            #expect(value("bulwark_rejected_inputs_total", ["reason": "invalid-input"]) == 1)
            #expect(value("bulwark_predict_batch_rows_count", [:]) == 1)
            #expect(value("bulwark_predict_batch_rows_sum", [:]) == 3)
            let predicted = samples.filter { $0.name == "bulwark_predictions_total" }.map(\.value).reduce(0, +)
            #expect(predicted == 3)
            #expect(value("bulwark_http_request_duration_seconds_count", ["route": "/v1/models/{name}/predict"]) == 2)
        }
    }

    @Test("graceful shutdown: requests in flight when SIGTERM's shutdown starts all complete; /readyz turns 503 first")
    func gracefulShutdown() async throws {
        let service = try await TestService(wrap: { SlowModel(base: $0, delay: 0.4) })
        let requests = 6
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<requests {
                group.addTask { try await service.predict(TestService.sampleRows(1, seed: UInt64(i))).status }
            }
            try await Task.sleep(for: .milliseconds(150))  // all six are in flight, queued behind a slow batch
            await service.server.shutdown()
            var statuses: [Int] = []
            for try await status in group { statuses.append(status) }
            return statuses
        }
        #expect(results == Array(repeating: 200, count: requests))
        #expect(service.server.state.draining)
        try await service.stop()
        // The audit log closed its chain with a stop entry.
        let summary = try AuditVerifier.verify(path: service.directory + "/audit.jsonl")
        let lines = try String(contentsOfFile: service.directory + "/audit.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(summary.count == lines.count && lines.last?.contains("\"event\":\"stop\"") == true)
    }
}

/// A model that takes `delay` seconds per batch (to hold requests in flight).
struct SlowModel: InferenceModel {
    let base: any InferenceModel
    let delay: Double
    var inputWidth: Int { base.inputWidth }
    var classCount: Int { base.classCount }
    func logits(_ input: MatrixRef, into output: MatrixRef) throws {
        Thread.sleep(forTimeInterval: delay)
        try base.logits(input, into: output)
    }
}

/// A checker of the Prometheus text exposition format 0.0.4: every line is a comment (`# HELP`,
/// `# TYPE` with a known type) or a sample `name{label="value",…} number`.
enum PrometheusText {
    struct Sample { let name: String; let labels: [String: String]; let value: Double }
    struct Invalid: Error, CustomStringConvertible { let line: String; var description: String { "not Prometheus text: \(line)" } }

    static func parse(_ text: String) throws -> [Sample] {
        var samples: [Sample] = []
        let name = #"[a-zA-Z_:][a-zA-Z0-9_:]*"#
        let typeLine = try Regex("^# TYPE \(name) (counter|gauge|histogram|summary|untyped)$")
        let helpLine = try Regex("^# HELP \(name) .*$")
        let sampleLine = try Regex(#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$"#)
        let labelPair = try Regex(#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
            if line.hasPrefix("#") {
                guard line.wholeMatch(of: typeLine) != nil || line.wholeMatch(of: helpLine) != nil else { throw Invalid(line: String(line)) }
                continue
            }
            guard let match = line.wholeMatch(of: sampleLine), let metric = match.output[1].substring,
                  let valueText = match.output[4].substring, let value = Double(valueText == "+Inf" ? "inf" : String(valueText)) else {
                throw Invalid(line: String(line))
            }
            var labels: [String: String] = [:]
            if let body = match.output[3].substring {
                var rest = body[...]
                while !rest.isEmpty {
                    guard let pair = rest.prefixMatch(of: labelPair), let key = pair.output[1].substring, let value = pair.output[2].substring else {
                        throw Invalid(line: String(line))
                    }
                    labels[String(key)] = String(value)
                    rest = rest[pair.range.upperBound...]
                    if rest.first == "," { rest = rest.dropFirst() } else if !rest.isEmpty { throw Invalid(line: String(line)) }
                }
            }
            samples.append(Sample(name: String(metric), labels: labels, value: value))
        }
        return samples
    }
}
#endif

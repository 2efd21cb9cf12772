#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import Foundation
import NeuralNet
import ServingCore
import TensorCore
import Testing
import _TestSupport

@Suite("Anomaly detectors in the service")
struct ServedDetectorTests {
    /// A Mahalanobis detector fitted on random inputs' features with a threshold of −1: it flags
    /// every input (a test of the plumbing), and a noise detector that never flags.
    static let flaggingEverything: @Sendable (InferenceNetwork, String) throws -> AnomalyDetectors = { network, sha256 in
        var x = TestSupport.randomValues(300 * 784, seed: 5, in: 0, 1)
        var features = [Float](repeating: 0, count: 300 * network.featureWidth)
        var logits = [Float](repeating: 0, count: 300 * network.classCount)
        try x.withUnsafeMutableBufferPointer { xb in
            try features.withUnsafeMutableBufferPointer { fb in
                try logits.withUnsafeMutableBufferPointer { lb in
                    try network.logits(MatrixRef(xb.baseAddress!, rows: 300, columns: 784), into: MatrixRef(lb.baseAddress!, rows: 300, columns: network.classCount),
                                       features: MatrixRef(fb.baseAddress!, rows: 300, columns: network.featureWidth))
                }
            }
        }
        var mahalanobis = try features.withUnsafeMutableBufferPointer { fb in
            try MahalanobisDetector.fit(features: MatrixRef(fb.baseAddress!, rows: 300, columns: network.featureWidth),
                                        labels: (0..<300).map { $0 % 10 }, classCount: 10)
        }
        mahalanobis.threshold = -1
        return AnomalyDetectors(modelSHA256: sha256, targetFalsePositiveRate: 0.01, mahalanobis: mahalanobis,
                                noise: NoiseInstabilityDetector(sigma: 0.1, draws: 2, threshold: 3))  // never flags
    }

    @Test("flagged inputs are counted by kind in the metrics and audited")
    func anomaliesCounted() async throws {
        try await TestService(detectors: Self.flaggingEverything).use { service in
            let reply = try await service.predict(TestService.sampleRows(3))
            #expect(reply.status == 200)
            let metrics = try PrometheusText.parse(try await service.request(.GET, "/metrics", key: service.keys[.auditor]).text)
            let flagged = metrics.first { $0.name == "bulwark_anomalies_total" && $0.labels["kind"] == "out_of_distribution" }?.value
            #expect(flagged == 3)
            #expect(!metrics.contains { $0.name == "bulwark_anomalies_total" && $0.labels["kind"] == "unstable" })
            let audit = try await service.request(.GET, "/v1/audit?since=0", key: service.keys[.auditor])
            let anomalies = (audit.json["entries"] as? [[String: Any]] ?? []).filter { $0["event"] as? String == "anomaly" }
            #expect(anomalies.first?["count"] as? Int == 1)
            #expect((anomalies.first?["detail"] as? [String: String])?["reason"] == "out_of_distribution")
        }
    }
}
#endif

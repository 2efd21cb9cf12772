#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NeuralNet
import ServingCore
import TensorCore
import _FileSystem

/// `POST /v1/models/{name}/predict`: validates the body, runs it through the model's micro-batcher
/// and answers what the key's output policy allows.
struct PredictEndpoint: Sendable {
    let state: ServingState

    enum BodyKind { case json, float32 }

    func respond(_ request: Request, _ context: ServeContext) async throws -> Response {
        let name = try context.parameters.require("name")
        guard let served = state.registry.model(named: name), let batcher = state.batchers[name] else {
            throw Problem.notFound("no model is named '\(displayable(name, limit: 64))'; GET /v1/models lists them")
        }
        let parser = InputParser(width: served.model.inputWidth, maxRows: state.configuration.limits.maxRows)
        let input: PredictInput
        do {
            let kind = try Self.bodyKind(request.headers[.contentType])
            let limit = kind == .json ? parser.maxJSONBytes : parser.maxBinaryBytes
            if let declared = request.headers[.contentLength], let length = Int(declared), length > limit {
                throw Problem.tooLarge("the body is \(length) bytes; a \(kind == .json ? "JSON" : "float32") body of at most \(parser.maxRows) rows is at most \(limit) bytes")
            }
            let body = try await BodyReader.collect(request, limit: limit, timeout: .seconds(state.configuration.limits.bodyTimeoutSeconds))
            context.report.bodyConsumed = true
            let parsed = body.withUnsafeReadableBytes { bytes in
                Result { () throws(InputProblem) in kind == .json ? try parser.parseJSON(bytes) : try parser.parseFloat32(bytes) }
            }
            switch parsed {
            case .success(let rows): input = rows
            case .failure(let problem): throw Problem(problem)
            }
        } catch let problem as Problem {
            state.metrics.increment("bulwark_rejected_inputs_total", [("reason", problem.slug)])
            throw problem
        }
        var throttled: KeyEntry?
        if let key = context.key, state.configuration.limits.extractionAction == .throttle, state.extraction.isFlagged(key: key.id) {
            try throttle(key, rows: input.rows)
            throttled = key
        }
        let output: MicroBatcher.Output
        do {
            output = try await batcher.run(input, on: served)
        } catch {
            // Rows not served are not charged to a throttled key.
            if let throttled { state.limiter.refund(id: throttled.id + "#extraction", tokens: input.rows, burst: state.configuration.limits.maxRows) }
            if case ServeError.overloaded(let detail) = error { throw Problem.overloaded(detail) }
            throw error
        }
        let logits = output.logits
        context.report.set(rows: input.rows, model: name)
        if let findings = output.findings { record(findings, model: name, context: context) }
        state.metrics.recordValue("bulwark_predict_batch_rows", input.rows)
        let policy = context.key?.output ?? .full
        let (body, predicted) = try PredictionWriter.write(model: served, logits: logits, rows: input.rows, policy: policy)
        var classes = [Int](repeating: 0, count: served.model.classCount)
        for c in predicted { classes[c] += 1 }
        for (k, count) in classes.enumerated() where count > 0 {
            state.metrics.increment("bulwark_predictions_total", [("model", name), ("class", String(k))], by: Int64(count))
        }
        if let key = context.key {
            await watchExtraction(key: key, model: served, input: input, predicted: predicted,
                                  outOfDistribution: output.findings.map { $0.outOfDistribution.filter { $0 }.count }, context: context)
        }
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// A key flagged as extracting a model may send `extraction_throttle_rate` rows per second
    /// (a bucket of its own, holding at most `max_rows` rows); a request whose rows are not there
    /// yet gets 429 `extraction-throttled` with the seconds until they are.
    private func throttle(_ key: KeyEntry, rows: Int) throws {
        let limits = state.configuration.limits
        let decision = state.limiter.take(id: key.id + "#extraction", rate: limits.extractionThrottleRate, burst: limits.maxRows, cost: rows)
        guard !decision.allowed else { return }
        state.metrics.increment("bulwark_extraction_refusals_total", [("key", key.name), ("action", "throttle")])
        throw Problem(.tooManyRequests, "extraction-throttled", "Predictions throttled for this key",
                      detail: "key '\(key.name)' sent a query stream flagged as model extraction and may now send \(limits.extractionThrottleRate) rows per second; retry after \(decision.retryAfterSeconds) s",
                      headers: [.retryAfter: String(decision.retryAfterSeconds)])
    }

    /// Feeds the key's query volume (`extraction_max_rows_per_hour`), its out-of-distribution share
    /// (`extraction_max_ood_fraction`, with a Mahalanobis detector) and, with a detectors file
    /// holding one, its PRADA stream; a first detection is counted, logged and audited (the answer
    /// already computed is sent; the configured action applies from the key's next request).
    private func watchExtraction(key: KeyEntry, model: ServedModel, input: PredictInput, predicted: [Int], outOfDistribution: Int?,
                                 context: ServeContext) async {
        let limits = state.configuration.limits
        var detection = limits.extractionMaxRowsPerHour.flatMap { state.extraction.observeVolume(key: key.id, rows: input.rows, limit: $0) }
        if let fraction = limits.extractionMaxOutOfDistributionFraction, let flagged = outOfDistribution, model.detectors?.mahalanobis != nil {
            detection = detection ?? state.extraction.observeOutOfDistribution(key: key.id, rows: input.rows, flagged: flagged, limit: fraction)
        }
        if let detector = model.detectors?.extraction {
            // A GEMV per row over the key's stored inputs: off the cooperative pool, like inference.
            let (monitor, width, classes) = (state.extraction, model.model.inputWidth, model.model.classCount)
            let prada = await Blocking.run {
                input.values.withUnsafeBufferPointer { values in
                    monitor.observe(key: key.id, model: model.name, detector: detector,
                                    inputs: MatrixRef(UnsafeMutablePointer(mutating: values.baseAddress!), rows: input.rows, columns: width),
                                    predicted: predicted, classes: classes)
                }
            }
            detection = detection ?? prada
        }
        guard let detection else { return }
        var detail = ["model": model.name, "detector": detection.detector, "after_queries": String(detection.afterQueries),
                      "action": limits.extractionAction.rawValue]
        if let w = detection.w, let delta = model.detectors?.extraction?.delta {
            detail["w"] = String(format: "%.4f", w)
            detail["delta"] = String(delta)
        } else if detection.detector == "volume", let rows = limits.extractionMaxRowsPerHour {
            detail["max_rows_per_hour"] = String(rows)
        } else if let fraction = limits.extractionMaxOutOfDistributionFraction {
            detail["max_ood_fraction"] = String(fraction)
        }
        state.metrics.increment("bulwark_extraction_detections_total", [("model", model.name), ("key", key.name), ("detector", detection.detector)])
        state.logger.warning("query stream flagged as model extraction",
                             metadata: ["key": .string(key.name)].merging(detail.mapValues { .string($0) }) { $1 })
        state.audit?.record("extraction_suspected", key: key.name, remote: context.remote, route: Routes.predict, detail: detail)
    }

    /// Counts, logs and audits what the detectors flagged (the answer itself does not change).
    private func record(_ findings: AnomalyDetectors.Findings, model: String, context: ServeContext) {
        for (kind, flags) in [("out_of_distribution", findings.outOfDistribution), ("unstable", findings.unstable)] {
            let count = flags.filter { $0 }.count
            guard count > 0 else { continue }
            state.metrics.increment("bulwark_anomalies_total", [("model", model), ("kind", kind)], by: Int64(count))
            state.audit?.recordDenial("anomaly", reason: kind, key: context.key?.name, remote: context.remote, route: Routes.predict)
        }
        context.report.set(anomalies: findings.count)
    }

    static func bodyKind(_ contentType: String?) throws(Problem) -> BodyKind {
        guard let contentType else { throw .unsupportedMediaType(nil) }
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        switch parts.first {
        case "application/json":
            guard parts.dropFirst().allSatisfy({ $0 == "charset=utf-8" || $0 == "charset=\"utf-8\"" }) else { throw .unsupportedMediaType(contentType) }
            return .json
        case "application/octet-stream":
            guard parts.count == 1 else { throw .unsupportedMediaType(contentType) }
            return .float32
        default:
            throw .unsupportedMediaType(contentType)
        }
    }
}

/// Reads a request body with a size limit. The deadline is the connection's
/// (`RequestDeadlineHandler`): when it expires the connection closes and the read fails here.
enum BodyReader {
    /// - Throws: `Problem` 413 beyond `limit` bytes; 408 when the body did not arrive (the
    ///   connection was closed at the request deadline, or by the client).
    static func collect(_ request: Request, limit: Int, timeout: Duration) async throws -> ByteBuffer {
        do {
            return try await request.body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw Problem.tooLarge("the body is larger than \(limit) bytes, the most \(limit / 1024) KiB this route accepts")
        } catch {
            var problem = Problem(.requestTimeout, "body-timeout", "The request body did not arrive",
                                  detail: "the whole request must arrive within \(timeout.components.seconds) s (\(error))")
            problem.closeConnection = true
            throw problem
        }
    }
}

/// Writes a predict answer as JSON bytes, with what the key's output policy allows.
enum PredictionWriter {
    /// - Returns: the body, and the class predicted for each row.
    static func write(model: ServedModel, logits: [Float], rows: Int, policy: OutputPolicy) throws -> (body: [UInt8], predicted: [Int]) {
        let classes = model.model.classCount
        var out = #"{"model":""#
        out += model.name
        out += #"","sha256":""#
        out += model.sha256
        out += #"","output":""#
        out += policy.description
        out += #"","predictions":["#
        out.reserveCapacity(out.utf8.count + rows * (classes * 14 + 40))
        var predicted = [Int](repeating: 0, count: rows)
        // Fresh noise for the `noise` policy: a seed from the system's CSPRNG per request.
        var generator = RandomGenerator(seed: UInt64.random(in: .min ... .max), stream: .outputPolicyNoise)
        for r in 0..<rows {
            let row = logits[(r * classes)..<((r + 1) * classes)]
            guard row.allSatisfy(\.isFinite) else {
                throw Problem(.internalServerError, "non-finite-output", "The model produced non-finite outputs",
                              detail: "row \(r) has non-finite logits; the model file may be damaged")
            }
            let answer = policy.answer(logits: row, generator: &generator)
            predicted[r] = answer.predicted
            if r > 0 { out += "," }
            out += #"{"class":"#
            out += String(answer.predicted)
            if let probabilities = answer.probabilities {
                switch policy {
                case .rounded(let digits):
                    out += #","probabilities":["#
                    out += probabilities.map { String(format: "%.\(digits)f", $0) }.joined(separator: ",")
                    out += "]"
                case .topK:
                    let top = answer.ranked ?? []
                    out += #","top_k":["#
                    out += top.map { #"{"class":\#($0),"probability":\#(Float(probabilities[$0]))}"# }.joined(separator: ",")
                    out += "]"
                default:
                    out += #","probabilities":["#
                    out += probabilities.map { String(Float($0)) }.joined(separator: ",")
                    out += "]"
                }
            }
            out += "}"
        }
        out += "]}"
        return (Array(out.utf8), predicted)
    }
}
#endif

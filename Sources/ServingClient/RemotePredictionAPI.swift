#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import NeuralNet
import TensorCore
import Threats

/// A running `bulwark serve` as a model thief reaches it: `POST …/predict` over HTTPS with an API
/// key, float32 bodies of at most `rowsPerRequest` rows. It obeys the service: a 429 or 503 is
/// retried after its `Retry-After` (at least 1 s; 1 s without the header; never a wait longer than
/// `maxWait` seconds, nor more than `maxRetries` waits for one request). A 429
/// `extraction-throttled` or a 403 `extraction-blocked` marks the client as detected; a block ends
/// the extraction. Answers larger than the request's rows can need are refused unread.
///
/// Calls block the calling thread (the extraction loop is synchronous); never call them on an
/// event loop or from Swift concurrency's cooperative threads.
public final class RemotePredictionAPI: PredictionAPI, @unchecked Sendable {  // mutable state under `lock`
    public let predictURL: String
    public let inputWidth: Int
    public let classCount: Int
    public let policy: OutputPolicy
    /// The served model's SHA-256, as the service reports it.
    public let modelSHA256: String
    public let rowsPerRequest: Int
    public let maxWait: Int
    /// Waits for one request before giving up.
    public let maxRetries = 100
    private let apiKey: String
    private let client: HTTPClient
    private let sleep: @Sendable (Int) -> Void
    private let lock = NSLock()
    private var answered = 0
    private var detected: Int?
    private var waits = 0
    /// How many times a request waited for the `Retry-After` of a 429 or 503.
    public var retries: Int { lock.withLock { waits } }
    public var detectedAfterQueries: Int? { lock.withLock { detected } }

    /// Connects, and reads the model's shape and the key's output policy from `GET /v1/models`.
    /// - Parameters:
    ///   - url: `https://HOST:PORT/v1/models/NAME/predict`.
    ///   - caCertificatePEM: a certificate to trust besides the system's roots (a dev certificate).
    ///   - sleep: waits the given seconds (tests pass one that advances the service's fake clock).
    /// - Throws: `ThreatError.predictionAPI` naming what failed.
    public init(url: String, apiKey: String, caCertificatePEM: [UInt8]? = nil, rowsPerRequest: Int = 100, maxWait: Int = 120,
                allowPlainHTTP: Bool = false, sleep: @escaping @Sendable (Int) -> Void = { Thread.sleep(forTimeInterval: Double($0)) }) throws {
        guard let components = URLComponents(string: url), let scheme = components.scheme, let host = components.host,
              scheme == "https" || (allowPlainHTTP && scheme == "http") else {
            throw ThreatError.predictionAPI("--target \(url) is not an https:// URL (plain http is refused: the key would travel in clear text)")
        }
        let path = components.path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard path.count == 5, path[1] == "v1", path[2] == "models", !path[3].isEmpty, path[4] == "predict" else {
            throw ThreatError.predictionAPI("--target \(url) is not a predict URL: give https://HOST:PORT/v1/models/NAME/predict")
        }
        guard (1...65536).contains(rowsPerRequest), (1...86_400).contains(maxWait) else {
            throw ThreatError.predictionAPI("rows per request must be 1 to 65536 and the longest wait 1 to 86400 s")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caCertificatePEM {
            do {
                tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMBytes(caCertificatePEM))]
            } catch {
                throw ThreatError.predictionAPI("the CA certificate is not PEM (\(error))")
            }
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton,
                                configuration: .init(tlsConfiguration: tls, timeout: .init(connect: .seconds(10), read: .seconds(60))))
        (self.client, predictURL, self.apiKey, self.rowsPerRequest, self.maxWait, self.sleep) = (client, url, apiKey, rowsPerRequest, maxWait, sleep)
        let port = components.port.map { ":\($0)" } ?? ""
        do {
            let listing = try Self.fetchListing(client: client, url: "\(scheme)://\(host)\(port)/v1/models", apiKey: apiKey, maxWait: maxWait, sleep: sleep)
            guard let model = listing.models.first(where: { $0.name == path[3] }) else {
                throw ThreatError.predictionAPI("the service has no model named '\(path[3])' (it has \(listing.models.map(\.name).joined(separator: ", ")))")
            }
            guard (1...(1 << 20)).contains(model.inputWidth), (1...65536).contains(model.classes) else {
                throw ThreatError.predictionAPI("the service lists model '\(path[3])' with \(model.inputWidth) inputs and \(model.classes) classes, not a model this client can query")
            }
            guard let output = listing.output else {
                throw ThreatError.predictionAPI("the service did not say what this key's predictions release (no 'output' in GET /v1/models: a bulwark serve older than this client?)")
            }
            guard let policy = try? OutputPolicy(parsing: output) else {
                throw ThreatError.predictionAPI("the service says this key's predictions release '\(output.prefix(100))', which is not an output policy this client knows")
            }
            (inputWidth, classCount, self.policy, modelSHA256) = (model.inputWidth, model.classes, policy, model.sha256)
        } catch {
            try? client.syncShutdown()
            throw error
        }
    }

    deinit { try? client.syncShutdown() }

    public func answers(_ inputs: Tensor) throws -> [OutputPolicy.Answer] {
        let rows = inputs.shape[0]
        guard inputs.shape[1] == inputWidth else {
            throw ThreatError.predictionAPI("the inputs have \(inputs.shape[1]) features; the served model takes \(inputWidth)")
        }
        var answers: [OutputPolicy.Answer] = []
        answers.reserveCapacity(rows)
        var start = 0
        while start < rows {
            let end = min(rows, start + rowsPerRequest)
            var body = ByteBuffer()
            body.reserveCapacity((end - start) * inputWidth * 4)
            for value in inputs.scalars[(start * inputWidth)..<(end * inputWidth)] { body.writeInteger(value.bitPattern, endianness: .little) }
            // The largest answer these rows can have: every probability of every row, with room.
            let bytes = try send(body: body, maxAnswerBytes: 4096 + (end - start) * (64 + classCount * 48))
            let decoded: PredictResponse
            do { decoded = try JSONDecoder().decode(PredictResponse.self, from: Data(bytes)) } catch {
                throw ThreatError.predictionAPI("the predict answer is not the service's JSON (\(error))")
            }
            guard decoded.predictions.count == end - start else {
                throw ThreatError.predictionAPI("the service answered \(decoded.predictions.count) of \(end - start) rows")
            }
            for prediction in decoded.predictions { answers.append(try answer(prediction)) }
            lock.withLock { answered += end - start }
            start = end
        }
        return answers
    }

    /// The answer as the key's policy released it (top-k: 0 beyond the k classes).
    private func answer(_ prediction: PredictResponse.Prediction) throws -> OutputPolicy.Answer {
        guard (0..<classCount).contains(prediction.class) else { throw ThreatError.predictionAPI("a predicted class \(prediction.class) is out of range") }
        if let probabilities = prediction.probabilities {
            guard probabilities.count == classCount, probabilities.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
                throw ThreatError.predictionAPI("an answer's probabilities are not \(classCount) non-negative numbers")
            }
            return .init(predicted: prediction.class, probabilities: probabilities)
        }
        if let top = prediction.topK {
            var probabilities = [Double](repeating: 0, count: classCount)
            for entry in top {
                guard (0..<classCount).contains(entry.class), entry.probability.isFinite else { throw ThreatError.predictionAPI("a top-k entry is out of range") }
                probabilities[entry.class] = entry.probability
            }
            return .init(predicted: prediction.class, probabilities: probabilities)
        }
        return .init(predicted: prediction.class, probabilities: nil)
    }

    /// One predict request, repeated while the service asks to wait.
    private func send(body: ByteBuffer, maxAnswerBytes: Int) throws -> [UInt8] {
        let request: HTTPClient.Request
        do {
            request = try HTTPClient.Request(url: predictURL, method: .POST,
                                             headers: ["Authorization": "Bearer " + apiKey, "Content-Type": "application/octet-stream"],
                                             body: .byteBuffer(body))
        } catch {
            throw ThreatError.predictionAPI("--target \(predictURL): \(error)")
        }
        for attempt in 0...maxRetries {
            let reply = try Self.execute(client: client, request, maxBodyBytes: maxAnswerBytes)
            guard reply.status != 200 else { return reply.body }
            let problem = Problem(reply.body)
            switch reply.status {
            case 429, 503:
                if problem.type == "extraction-throttled" { markDetected() }
                let seconds = reply.retryAfter ?? 1
                guard attempt < maxRetries else { break }
                guard seconds <= maxWait else {
                    throw ThreatError.predictionAPI("the service asks to wait \(seconds) s (\(problem.type ?? "HTTP \(reply.status)")), longer than the \(maxWait) s allowed")
                }
                lock.withLock { waits += 1 }
                sleep(max(seconds, 1))
            case 403 where problem.type == "extraction-blocked":
                markDetected()
                throw ThreatError.predictionAPI("the service blocked this key as a suspected model thief after \(lock.withLock { answered }) queries")
            default:
                throw ThreatError.predictionAPI("HTTP \(reply.status): \(problem.text)")
            }
        }
        throw ThreatError.predictionAPI("the service refused the same request \(maxRetries + 1) times in a row (429/503); try later or with a slower client")
    }

    private func markDetected() { lock.withLock { if detected == nil { detected = answered } } }

    struct Reply {
        let status: Int
        let retryAfter: Int?
        let body: [UInt8]
    }

    /// Runs one request to its end on the client's event loop and waits for it here (futures, not
    /// Swift concurrency: the wait must not depend on the cooperative pool, which a busy process
    /// may have no thread left in).
    static func execute(client: HTTPClient, _ request: HTTPClient.Request, maxBodyBytes: Int) throws -> Reply {
        do {
            let response = try client.execute(request: request, delegate: ResponseAccumulator(request: request, maxBodySize: maxBodyBytes),
                                              deadline: .now() + .seconds(120)).futureResult.wait()
            let retryAfter = response.headers.first(name: "Retry-After").flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            return Reply(status: Int(response.status.code), retryAfter: retryAfter, body: response.body.map { Array($0.readableBytesView) } ?? [])
        } catch {
            throw ThreatError.predictionAPI("the request to \(request.url) failed: \(error)")
        }
    }

    static func fetchListing(client: HTTPClient, url: String, apiKey: String, maxWait: Int, sleep: @Sendable (Int) -> Void) throws -> Listing {
        let request: HTTPClient.Request
        do { request = try HTTPClient.Request(url: url, headers: ["Authorization": "Bearer " + apiKey]) } catch {
            throw ThreatError.predictionAPI("\(url): \(error)")
        }
        for _ in 0..<10 {
            let reply = try execute(client: client, request, maxBodyBytes: 16 << 20)
            if reply.status == 429 || reply.status == 503, let seconds = reply.retryAfter, seconds <= maxWait {
                sleep(max(seconds, 1))
                continue
            }
            guard reply.status == 200 else { throw ThreatError.predictionAPI("GET \(url): HTTP \(reply.status): \(Problem(reply.body).text)") }
            do { return try JSONDecoder().decode(Listing.self, from: Data(reply.body)) } catch {
                throw ThreatError.predictionAPI("GET \(url) is not the service's model listing (\(error))")
            }
        }
        throw ThreatError.predictionAPI("GET \(url) was refused 10 times in a row (429/503); try later")
    }

    /// A refusal's problem+json body (RFC 9457), parsed once: its type's last path component and
    /// its title and detail (or the body's start, if it is not JSON).
    struct Problem {
        let type: String?
        let text: String

        init(_ body: [UInt8]) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
                type = nil
                text = String(decoding: body.prefix(200), as: UTF8.self)
                return
            }
            type = (object["type"] as? String)?.split(separator: "/").last.map(String.init)
            text = [object["title"], object["detail"]].compactMap { $0 as? String }.joined(separator: ": ")
        }
    }

    struct Listing: Decodable {
        struct Model: Decodable {
            let name: String, sha256: String, inputWidth: Int, classes: Int
            enum CodingKeys: String, CodingKey { case name, sha256, inputWidth = "input_width", classes }
        }
        let models: [Model]
        let output: String?
    }

    struct PredictResponse: Decodable {
        struct Prediction: Decodable {
            struct TopEntry: Decodable {
                let `class`: Int
                let probability: Double
            }
            let `class`: Int
            let probabilities: [Double]?
            let topK: [TopEntry]?
            enum CodingKeys: String, CodingKey { case `class`, probabilities, topK = "top_k" }
        }
        let predictions: [Prediction]
    }
}
#endif

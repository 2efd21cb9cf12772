#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import AsyncHTTPClient
import BulwarkSecurity
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import NeuralNet
import Serving
import TensorCore
import _TestSupport

/// A real service on an ephemeral loopback port with a generated certificate, a key of every
/// role, and a small model verified through its manifest, talked to with AsyncHTTPClient.
final class TestService: @unchecked Sendable {
    struct Reply {
        let status: Int
        let headers: HTTPHeaders
        let body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }
    }

    let directory: String
    let modelPath: String
    let server: Server
    let port: Int
    let client: HTTPClient
    let certificatePEM: String
    var keys: [Role: APIKey] = [:]
    let revokedKey: APIKey
    let unknownKey = APIKey.generate()
    let logLines = Locked<[String]>([])
    private let runTask: Task<Void, any Error>

    static let width = 784, classes = 10

    /// - Parameters:
    ///   - model: replaces the model file's network at serving time (e.g. a slow one).
    init(limits: ServeConfiguration.Limits = .init(), burst: Int = 1000, rate: Double = 1000, audit: Bool = true,
         now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now },
         wrap: (@Sendable (any InferenceModel) -> any InferenceModel)? = nil,
         detectors: (@Sendable (InferenceNetwork, String) throws -> AnomalyDetectors)? = nil, name: String = #function) async throws {
        directory = TestSupport.temporaryDirectory("serving-" + name)
        modelPath = directory + "/model.safetensors"
        try ModelFile.save(Sequential(spec: try ModelSpec.parse("784-16-10"), seed: 7), to: modelPath)
        try Manifest.record(modelPath)
        let files = try DevCertificate.make()
        certificatePEM = files.certificatePEM
        let (certificate, key) = try DevCertificate.write(files, to: directory)
        var file = KeyFile()
        for role in Role.allCases {
            let apiKey = APIKey.generate()
            keys[role] = apiKey
            file.keys.append(KeyEntry(id: apiKey.id, name: role.rawValue + "-key", role: role, sha256: apiKey.secretDigest,
                                      rate: rate, burst: burst, output: .full, created: "2026-11-27T00:00:00Z"))
        }
        revokedKey = APIKey.generate()
        file.keys.append(KeyEntry(id: revokedKey.id, name: "revoked-key", role: .admin, sha256: revokedKey.secretDigest, rate: rate,
                                  burst: burst, output: .full, created: "2026-11-27T00:00:00Z", revoked: true))
        try KeyFile.modify(directory + "/keys.json") { $0 = file }
        let loader: ModelLoader = { name, path in
            let fileLoader = VerifyingFileLoader()
            let loaded = try ModelFile.load(contentsOf: path, loader: fileLoader)
            let network = loaded.network.inferenceModel(pool: nil)
            let sha256 = fileLoader.digests[path]!
            return ServedModel(name: name, path: path, model: wrap?(network) ?? network, sha256: sha256,
                               architecture: loaded.network.spec.shorthand, card: nil, detectors: try detectors?(network, sha256))
        }
        let lines = logLines
        let logger = Logger(label: "test") { JSONLogHandler(label: $0) { line in lines.withLock { $0.append(line) } } }
        let configuration = ServeConfiguration(
            host: "127.0.0.1", port: 0, tls: .init(certificatePath: certificate, keyPath: key), keysPath: directory + "/keys.json",
            auditLogPath: audit ? directory + "/audit.jsonl" : nil, limits: limits)
        let server = try Server(configuration: configuration, models: [try loader("m", modelPath)], loader: loader, logger: logger, now: now)
        self.server = server
        let bound = Locked<Int?>(nil)
        runTask = Task { try await server.run(signals: []) { port in bound.withLock { $0 = port } } }
        var waited = 0
        while bound.withLock({ $0 }) == nil {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
            if waited > 1000 { throw CancellationError() }
        }
        port = bound.withLock { $0 }!
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8)))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
    }

    var baseURL: String { "https://localhost:\(port)" }

    func request(_ method: HTTPMethod, _ path: String, key: APIKey? = nil, body: [UInt8]? = nil,
                 contentType: String? = "application/json", headers extra: [(String, String)] = [],
                 timeout: TimeAmount = .seconds(20)) async throws -> Reply {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        if let key { request.headers.add(name: "Authorization", value: "Bearer " + key.text) }
        if let body {
            request.body = .bytes(ByteBuffer(bytes: body))
            if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        }
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        let response = try await client.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: Array(bytes.readableBytesView))
    }

    /// A JSON predict body of `rows` rows of pixels from the sample (values in [0, 1]).
    static func jsonBody(_ rows: [[Float]]) -> [UInt8] {
        Array(("{\"inputs\": [" + rows.map { "[" + $0.map { String($0) }.joined(separator: ",") + "]" }.joined(separator: ",") + "]}").utf8)
    }

    static func sampleRows(_ count: Int, seed: UInt64 = 3) -> [[Float]] {
        (0..<count).map { TestSupport.randomValues(width, seed: seed + UInt64($0), in: 0, 1) }
    }

    func predict(_ rows: [[Float]], key role: Role = .predictor) async throws -> Reply {
        try await request(.POST, "/v1/models/m/predict", key: keys[role], body: Self.jsonBody(rows))
    }

    /// Runs `body`, then stops the service whether or not `body` threw.
    func use(_ body: (TestService) async throws -> Void) async throws {
        do {
            try await body(self)
        } catch {
            try? await stop()
            throw error
        }
        try await stop()
    }

    /// Graceful shutdown, then waits for the server to stop.
    func stop() async throws {
        await server.shutdown()
        let outcome = await runTask.result
        try await client.shutdown()  // always, or the client traps in its deinit
        try outcome.get()
    }
}
#endif

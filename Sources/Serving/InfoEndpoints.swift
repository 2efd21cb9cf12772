#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import _FileSystem

/// `GET /v1/models`: names, architectures, digests and cards, and what the calling key's predictions
/// release (`output`, its own policy: nothing about other keys).
struct ModelsEndpoint: Sendable {
    let state: ServingState

    struct Listing: Encodable {
        struct Model: Encodable {
            let name: String, architecture: String, sha256: String
            let inputWidth: Int, classes: Int
            let card: JSONValue?
            enum CodingKeys: String, CodingKey { case name, architecture, sha256, inputWidth = "input_width", classes, card }
        }
        let models: [Model]
        let output: String?
    }

    func respond(_ request: Request, _ context: ServeContext) async throws -> Response {
        let listing = Listing(models: state.registry.all.map {
            .init(name: $0.name, architecture: $0.architecture, sha256: $0.sha256, inputWidth: $0.model.inputWidth,
                  classes: $0.model.classCount, card: $0.card)
        }, output: context.key?.output.description)
        return JSONResponse.make(listing)
    }
}

/// `GET /metrics`: the Prometheus text format.
struct MetricsEndpoint: Sendable {
    let state: ServingState

    func respond(_ request: Request, _ context: ServeContext) async throws -> Response {
        for model in state.registry.all {
            state.metrics.setGauge("bulwark_queue_rows", [("model", model.name)], Double(state.batchers[model.name]?.queueRows ?? 0))
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: state.metrics.exposition())))
    }
}

/// `GET /healthz` (the process answers) and `GET /readyz` (models loaded, not draining).
struct HealthEndpoint: Sendable {
    let state: ServingState

    func live(_ request: Request, _ context: ServeContext) async throws -> Response {
        JSONResponse.make(["status": "ok"])
    }

    func ready(_ request: Request, _ context: ServeContext) async throws -> Response {
        guard !state.draining else {
            throw Problem(.serviceUnavailable, "draining", "Shutting down", detail: "the service is finishing its requests and will stop")
        }
        if let audit = state.audit, !audit.isHealthy {
            throw Problem(.serviceUnavailable, "audit-failing", "The audit log cannot be written",
                          detail: "writes to the audit log fail (see the service's log); requests are not recorded")
        }
        return JSONResponse.make(["status": "ready"])
    }
}

/// `POST /v1/models/{name}/reload`: verifies the file again and swaps it in; a file that fails
/// verification is refused and the old model keeps serving.
struct ReloadEndpoint: Sendable {
    let state: ServingState

    struct Reloaded: Encodable {
        let model: String, sha256: String, previousSHA256: String
        enum CodingKeys: String, CodingKey { case model, sha256, previousSHA256 = "previous_sha256" }
    }

    func respond(_ request: Request, _ context: ServeContext) async throws -> Response {
        let name = try context.parameters.require("name")
        guard state.registry.model(named: name) != nil else {
            throw Problem.notFound("no model is named '\(displayable(name, limit: 64))'; GET /v1/models lists them")
        }
        let registry = state.registry
        let outcome: Result<(old: ServedModel, new: ServedModel)?, any Error> = await Blocking.run { Result { try registry.reload(name) } }
        switch outcome {
        case .success(let swapped?):
            state.metrics.increment("bulwark_model_reloads_total", [("model", name), ("result", "reloaded")])
            state.audit?.record("model_reloaded", key: context.key?.name, remote: context.remote, route: Routes.reload,
                                detail: ["model": name, "sha256": swapped.new.sha256, "previous_sha256": swapped.old.sha256])
            state.logger.notice("model reloaded", metadata: ["model": .string(name), "sha256": .string(swapped.new.sha256)])
            return JSONResponse.make(Reloaded(model: name, sha256: swapped.new.sha256, previousSHA256: swapped.old.sha256))
        case .success(nil):
            throw Problem.notFound("no model is named '\(displayable(name, limit: 64))'")
        case .failure(let error):
            state.metrics.increment("bulwark_model_reloads_total", [("model", name), ("result", "refused")])
            state.audit?.record("reload_refused", key: context.key?.name, remote: context.remote, route: Routes.reload,
                                detail: ["model": name, "reason": "\(error)"])
            state.logger.warning("model reload refused", metadata: ["model": .string(name), "reason": .string("\(error)")])
            throw Problem(.conflict, "reload-refused", "The model file was refused; the old model keeps serving",
                          detail: "\(error)")
        }
    }
}

/// `GET /v1/audit?since=SEQ&limit=N`: audit entries after sequence number SEQ, oldest first.
struct AuditEndpoint: Sendable {
    let state: ServingState

    struct Page: Encodable {
        let entries: [AuditEntry]
        let head: Head
        /// Pass as `since` for the next page; nil when this page reaches the head.
        let nextSince: Int?
        struct Head: Encodable { let seq: Int; let sha256: String }
        enum CodingKeys: String, CodingKey { case entries, head, nextSince = "next_since" }
    }

    func respond(_ request: Request, _ context: ServeContext) async throws -> Response {
        guard let audit = state.audit else {
            throw Problem.notFound("this service keeps no audit log; start it with --audit-log PATH")
        }
        for (name, _) in request.uri.queryParameters where name != "since" && name != "limit" {
            throw Problem.invalidInput("unknown query parameter '\(displayable(name, limit: 40))': use since and limit", field: String(name))
        }
        func integer(_ name: String, default value: Int, range: ClosedRange<Int>) throws -> Int {
            guard let text = request.uri.queryParameters[name[...]] else { return value }
            guard let parsed = Int(text), range.contains(parsed) else {
                throw Problem.invalidInput("\(name) must be an integer from \(range.lowerBound) to \(range.upperBound)", field: name)
            }
            return parsed
        }
        let since = try integer("since", default: 0, range: 0...Int.max)
        let limit = try integer("limit", default: 1000, range: 1...10_000)
        await Blocking.run { audit.flush() }
        let path = audit.path
        let (entries, more) = try await Blocking.run { try Self.read(path, after: since, limit: limit) }
        let head = audit.head
        return JSONResponse.make(Page(entries: entries, head: .init(seq: head.seq, sha256: head.sha256),
                                      nextSince: more ? entries.last?.seq : nil))
    }

    static func read(_ path: String, after since: Int, limit: Int) throws -> ([AuditEntry], Bool) {
        var entries: [AuditEntry] = []
        var more = false
        var line: [UInt8] = []
        var seq = 0
        let decoder = JSONDecoder()
        struct PageFull: Error {}
        do {
            try FileReader.forEachChunk(of: path) { chunk in
                for byte in chunk {
                    guard byte == 0x0A else {
                        if seq >= since { line.append(byte) }  // lines before `since` are only counted
                        continue
                    }
                    seq += 1
                    if seq > since {
                        if entries.count == limit { more = true; throw PageFull() }  // stop reading the file
                        entries.append(try decoder.decode(AuditEntry.self, from: Data(line)))
                    }
                    line.removeAll(keepingCapacity: true)
                }
            }
        } catch is PageFull {}
        return (entries, more)
    }
}

enum JSONResponse {
    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let bytes = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// Runs blocking work (file reads, model loading) on a thread of its own, never on an event loop
/// or the cooperative pool.
enum Blocking {
    static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }

    static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: work()) }
        }
    }
}
#endif

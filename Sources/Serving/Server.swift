#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import Foundation
import Glibc
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import TensorCore
import UnixSignals

/// The HTTPS inference service: the router, TLS, the optional loopback metrics port, the key
/// watcher, and graceful shutdown (SIGTERM: `/readyz` turns 503, the listener closes, in-flight
/// requests finish within `shutdownTimeoutSeconds`, then the batchers and the audit log flush).
public final class Server: Sendable {
    public let state: ServingState
    private let group = Locked<ServiceGroup?>(nil)
    private let tlsConfiguration: TLSConfiguration?

    /// Loads nothing itself: `models` are verified and loaded by the caller (`loader` reloads them).
    /// - Throws: `ServeError` for a bad configuration, key file, certificate or audit log.
    public init(configuration: ServeConfiguration, models: [ServedModel], loader: @escaping ModelLoader, logger: Logger,
                now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) throws {
        try configuration.validate()
        guard !models.isEmpty else { throw ServeError.invalidConfiguration("give at least one --model NAME=PATH") }
        tlsConfiguration = try configuration.tls.map(Self.tlsConfiguration)
        let metrics = ServeMetrics()
        let audit = try configuration.auditLogPath.map { path in
            try AuditLog(path: path, chainKey: configuration.auditChainKey, onFailure: { failure in
                logger.critical("audit log write failed; retrying every second, /readyz answers 503", metadata: ["reason": .string(failure)])
                metrics.increment("bulwark_audit_write_failures_total")
            })
        }
        let limiter = RateLimiter(now: now)
        let extraction = ExtractionMonitor(now: now)
        let keys: KeyRing
        do {
            keys = try KeyRing(path: configuration.keysPath, onChange: { old, new in
                Self.recordKeyChanges(old: old, new: new, audit: audit, logger: logger)
                limiter.retain(ids: Set(new.keys.filter { !$0.revoked }.map(\.id)))
                extraction.retain(keys: Set(new.keys.filter { !$0.revoked }.map(\.id)))
                metrics.increment("bulwark_key_reloads_total", [("result", "reloaded")])
            }, onRefused: { error in
                logger.error("the API-key file was refused; the keys in force stay", metadata: ["reason": .string("\(error)")])
                audit?.record("keys_reload_refused", detail: ["reason": "\(error)"])
                metrics.increment("bulwark_key_reloads_total", [("result", "refused")])
            })
        } catch {
            audit?.finish()
            throw error
        }
        let registry = ModelRegistry(models: models, loader: loader)
        state = ServingState(configuration: configuration, registry: registry, keys: keys, limiter: limiter, extraction: extraction,
                             metrics: metrics, audit: audit, logger: logger)
    }

    /// TLS 1.2 or later only (swift-nio-ssl's server default would accept 1.0), HTTP/1.1.
    static func tlsConfiguration(_ files: ServeConfiguration.TLSFiles) throws -> TLSConfiguration {
        var info = stat()
        if stat(files.keyPath, &info) == 0, info.st_mode & 0o007 != 0 {
            throw ServeError.invalidConfiguration("\(files.keyPath) (the TLS private key) is readable or writable by every user; run chmod 600 \(files.keyPath)")
        }
        do {
            var tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(files.certificatePath).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: files.keyPath, format: .pem)))
            tls.minimumTLSVersion = .tlsv12
            tls.applicationProtocols = ["http/1.1"]
            return tls
        } catch {
            throw ServeError.invalidConfiguration("cannot use the TLS certificate \(files.certificatePath) and key \(files.keyPath): \(error) (PEM files; bulwark serve dev-cert makes a pair for local use)")
        }
    }

    private static func recordKeyChanges(old: KeyFile, new: KeyFile, audit: AuditLog?, logger: Logger) {
        let before = Dictionary(uniqueKeysWithValues: old.keys.map { ($0.id, $0) })
        for key in new.keys {
            if let previous = before[key.id] {
                if key.revoked && !previous.revoked { audit?.record("key_revoked", key: key.name, detail: ["role": key.role.rawValue]) }
                else if key != previous { audit?.record("key_changed", key: key.name, detail: ["role": key.role.rawValue]) }
            } else {
                audit?.record("key_added", key: key.name, detail: ["role": key.role.rawValue, "rate": String(key.rate), "burst": String(key.burst), "output": key.output.description])
            }
        }
        let remaining = Set(new.keys.map(\.id))
        for key in old.keys where !remaining.contains(key.id) { audit?.record("key_removed", key: key.name) }
        audit?.record("keys_reloaded", detail: ["keys": String(new.keys.filter { !$0.revoked }.count)])
        logger.notice("API keys reloaded", metadata: ["keys": .stringConvertible(new.keys.filter { !$0.revoked }.count)])
    }

    func makeRouter() -> Router<ServeContext> {
        let router = Router(context: ServeContext.self, options: .autoGenerateHeadEndpoints)
        let predict = PredictEndpoint(state: state), models = ModelsEndpoint(state: state), reload = ReloadEndpoint(state: state)
        let metrics = MetricsEndpoint(state: state), audit = AuditEndpoint(state: state), health = HealthEndpoint(state: state)
        router.post(RouterPath(Routes.predict), use: predict.respond)
        router.get(RouterPath(Routes.models), use: models.respond)
        router.post(RouterPath(Routes.reload), use: reload.respond)
        router.get(RouterPath(Routes.metrics), use: metrics.respond)
        router.get(RouterPath(Routes.audit), use: audit.respond)
        router.get(RouterPath(Routes.health), use: health.live)
        router.get(RouterPath(Routes.ready), use: health.ready)
        return router
    }

    /// Serves until SIGTERM/SIGINT (or `shutdown()`), then drains.
    /// - Parameters:
    ///   - onRunning: called with the bound port (the real one when the configuration says 0).
    ///   - signals: the signals that start a graceful shutdown (tests pass none).
    public func run(signals: [UnixSignal] = [.sigterm, .sigint], onRunning: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let limits = state.configuration.limits
        let metrics = state.metrics
        var http1 = HTTP1Channel.Configuration(  // a new deadline handler per connection (an autoclosure)
            additionalChannelHandlers: [RequestDeadlineHandler(deadline: .seconds(Int64(limits.bodyTimeoutSeconds))) {
                metrics.increment("bulwark_request_deadline_closes_total")
            }],
            idleTimeout: .seconds(Int64(limits.idleTimeoutSeconds)))
        http1.httpDecoder = .init(maxHeaderFieldSize: 8 << 10, maxHeaderListSize: 32 << 10, maxHeaderFieldCount: 100)
        let responder = ServiceResponder(inner: makeRouter().buildResponder(), state: state, tls: tlsConfiguration != nil)
        let serverBuilder: HTTPServerBuilder = try tlsConfiguration.map { try .tls(.http1(configuration: http1), tlsConfiguration: $0) }
            ?? .http1(configuration: http1)
        let configuration = state.configuration
        let app = Application(
            responder: responder, server: serverBuilder,
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port), serverName: nil,
                availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections, logger: state.logger)),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? configuration.port) },
            logger: state.logger)
        var services: [any Service] = [app, KeyWatcher(keys: state.keys, watchSignal: !signals.isEmpty)]
        if let metricsPort = limits.metricsPort {
            let metricsRouter = Router(context: BasicRequestContext.self)
            metricsRouter.get("/metrics") { _, _ in
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                         body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
            }
            services.append(Application(router: metricsRouter, server: .http1(configuration: http1),
                                        configuration: .init(address: .hostname("127.0.0.1", port: metricsPort)), logger: state.logger))
        }
        if let audit = state.audit { services.append(AuditHeadReporter(audit: audit, logger: state.logger)) }
        services.append(DrainMarker(state: state))  // shut down first: /readyz turns 503 before the listener closes
        var groupConfiguration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: signals, logger: state.logger)
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(limits.shutdownTimeoutSeconds)
        groupConfiguration.maximumCancellationDuration = nil  // after the drain time, cancel and wait (never a fatalError)
        let serviceGroup = ServiceGroup(configuration: groupConfiguration)
        group.withLock { $0 = serviceGroup }
        state.audit?.record("start", detail: Dictionary(uniqueKeysWithValues: state.registry.all.map { ("model:" + $0.name, $0.sha256) })
            .merging(["keys": String(state.keys.table.count), "tls": tlsConfiguration != nil ? "1.2+" : "none (loopback)"]) { a, _ in a })
        defer {
            for batcher in state.batchers.values { batcher.stop() }
            if let audit = state.audit {
                audit.record("stop")
                audit.flush()
                state.logger.notice("audit log head", metadata: ["seq": .stringConvertible(audit.head.seq), "sha256": .string(audit.head.sha256)])
                audit.finish()
            }
        }
        try await serviceGroup.run()
    }

    /// Starts a graceful shutdown, as SIGTERM does.
    public func shutdown() async {
        await group.withLock { $0 }?.triggerGracefulShutdown()
    }
}

/// Logs the audit chain's head every minute: an anchor outside the file (`audit verify --expect-head`).
struct AuditHeadReporter: Service {
    let audit: AuditLog
    let logger: Logger
    func run() async throws {
        var last = -1
        while !Task.isCancelled {
            let slept: Void?? = try? await cancelOnGracefulShutdown { try await Task.sleep(for: .seconds(60)) }
            guard case .some(.some) = slept else { return }  // shutdown or cancellation
            let head = audit.head
            guard head.seq != last else { continue }
            last = head.seq
            logger.notice("audit log head", metadata: ["seq": .stringConvertible(head.seq), "sha256": .string(head.sha256)])
        }
    }
}

/// Marks the service as draining when shutdown starts (placed last, so it is told first).
struct DrainMarker: Service {
    let state: ServingState
    func run() async throws {
        try? await gracefulShutdown()
        state.draining = true
        // Give load balancers polling /readyz a moment before the listener closes.
        try? await Task.sleep(for: .milliseconds(state.configuration.limits.shutdownTimeoutSeconds > 0 ? 200 : 0))
    }
}
#endif

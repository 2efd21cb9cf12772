#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import Hummingbird
import NIOCore
import TensorCore

/// The per-request context: the key that authenticated it, and what the handler reports back
/// to the access log.
public struct ServeContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel
    /// The authenticated key (nil on public routes).
    public var key: KeyEntry?
    public var requestID = ""
    /// Filled in by handlers for the access log and metrics.
    public let report = RequestReport()

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The client's address, as the audit log and access log record it.
    public var remote: String? { channel.remoteAddress?.ipAddress }
}

/// What a handler learned that the access log and metrics want (rows predicted, the model).
public final class RequestReport: Sendable {
    private let state = Locked<(rows: Int?, model: String?, anomalies: Int?)>((nil, nil, nil))
    private let consumed = Locked(false)
    public init() {}
    /// Set once the handler has read the whole request body.
    public var bodyConsumed: Bool {
        get { consumed.withLock { $0 } }
        set { consumed.withLock { $0 = newValue } }
    }
    public func set(rows: Int, model: String) { state.withLock { ($0.rows, $0.model) = (rows, model) } }
    public func set(anomalies: Int) { state.withLock { $0.anomalies = anomalies } }
    public var rows: Int? { state.withLock { $0.rows } }
    public var model: String? { state.withLock { $0.model } }
    public var anomalies: Int? { state.withLock { $0.anomalies } }
}
#endif

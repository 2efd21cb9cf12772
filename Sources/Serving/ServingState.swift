import Logging
import TensorCore

/// Everything the handlers share: the models and their batchers, keys, limits, metrics, audit.
public final class ServingState: Sendable {
    public let configuration: ServeConfiguration
    public let registry: ModelRegistry
    public let batchers: [String: MicroBatcher]
    public let keys: KeyRing
    public let limiter: RateLimiter
    public let metrics: ServeMetrics
    public let audit: AuditLog?
    public let logger: Logger
    private let inFlight = Locked<Int>(0)
    private let drainingFlag = Locked<Bool>(false)

    public init(configuration: ServeConfiguration, registry: ModelRegistry, keys: KeyRing, limiter: RateLimiter,
                metrics: ServeMetrics, audit: AuditLog?, logger: Logger) {
        self.configuration = configuration
        self.registry = registry
        self.keys = keys
        self.limiter = limiter
        self.metrics = metrics
        self.audit = audit
        self.logger = logger
        let limits = MicroBatcher.Limits(maxBatchRows: configuration.limits.maxBatchRows, maxQueueRows: configuration.limits.maxQueueRows,
                                         window: .microseconds(configuration.limits.batchWindowMicroseconds))
        batchers = Dictionary(uniqueKeysWithValues: registry.all.map { model in
            (model.name, MicroBatcher(name: model.name, limits: limits) { rows in metrics.recordValue("bulwark_microbatch_rows", rows) })
        })
    }

    /// Counts a request in; nil if `maxConcurrentRequests` are already in flight.
    func admit() -> Int? {
        inFlight.withLock { count -> Int? in
            guard count < configuration.limits.maxConcurrentRequests else { return nil }
            count += 1
            return count
        }
    }

    func release() {
        let now = inFlight.withLock { count -> Int in
            count -= 1
            return count
        }
        metrics.setGauge("bulwark_inflight_requests", [], Double(now))
    }

    /// Set when shutdown begins: `/readyz` answers 503 so a load balancer stops sending.
    public var draining: Bool {
        get { drainingFlag.withLock { $0 } }
        set { drainingFlag.withLock { $0 = newValue } }
    }
}

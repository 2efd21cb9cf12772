#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import Logging
import TensorCore

/// Everything the handlers share: the models and their batchers, keys, limits, metrics, audit.
public final class ServingState: Sendable {
    public let configuration: ServeConfiguration
    public let registry: ModelRegistry
    public let batchers: [String: MicroBatcher]
    public let keys: KeyRing
    public let limiter: RateLimiter
    /// PRADA streams per key and the keys flagged as extracting a model.
    public let extraction: ExtractionMonitor
    public let metrics: ServeMetrics
    public let audit: AuditLog?
    public let logger: Logger
    private let inFlight = Locked<(total: Int, byKey: [String: Int])>((0, [:]))
    private let drainingFlag = Locked<Bool>(false)

    public init(configuration: ServeConfiguration, registry: ModelRegistry, keys: KeyRing, limiter: RateLimiter,
                extraction: ExtractionMonitor = ExtractionMonitor(), metrics: ServeMetrics, audit: AuditLog?, logger: Logger) {
        self.configuration = configuration
        self.registry = registry
        self.keys = keys
        self.limiter = limiter
        self.extraction = extraction
        self.metrics = metrics
        self.audit = audit
        self.logger = logger
        let limits = MicroBatcher.Limits(maxBatchRows: configuration.limits.maxBatchRows, maxQueueRows: configuration.limits.maxQueueRows,
                                         window: .microseconds(configuration.limits.batchWindowMicroseconds))
        batchers = Dictionary(uniqueKeysWithValues: registry.all.map { model in
            (model.name, MicroBatcher(name: model.name, limits: limits) { rows, duration in
                metrics.recordValue("bulwark_microbatch_rows", rows)
                metrics.recordDuration("bulwark_inference_duration_seconds", [("model", model.name)], duration)
            })
        })
    }

    /// Why a request was not admitted.
    enum Refusal { case service, key }

    /// Counts a request in (for its key, if any); a refusal if the service or the key already has
    /// its most requests in flight.
    func admit(key: String?) -> Refusal? {
        let limits = configuration.limits
        let (refusal, total) = inFlight.withLock { state -> (Refusal?, Int) in
            guard state.total < limits.maxConcurrentRequests else { return (.service, state.total) }
            if let key {
                guard state.byKey[key, default: 0] < limits.maxConcurrentRequestsPerKey else { return (.key, state.total) }
                state.byKey[key, default: 0] += 1
            }
            state.total += 1
            return (nil, state.total)
        }
        if refusal == nil { metrics.setGauge("bulwark_inflight_requests", [], Double(total)) }
        return refusal
    }

    func release(key: String?) {
        let total = inFlight.withLock { state -> Int in
            state.total -= 1
            if let key {
                state.byKey[key, default: 1] -= 1
                if state.byKey[key] == 0 { state.byKey[key] = nil }
            }
            return state.total
        }
        metrics.setGauge("bulwark_inflight_requests", [], Double(total))
    }

    /// Set when shutdown begins: `/readyz` answers 503 so a load balancer stops sending.
    public var draining: Bool {
        get { drainingFlag.withLock { $0 } }
        set { drainingFlag.withLock { $0 = newValue } }
    }
}
#endif

#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import CoreMetrics
import Metrics
import Prometheus
import TensorCore

/// The service's metrics, through swift-metrics with a Prometheus registry of its own (not the
/// process-wide factory, which can be bootstrapped only once: tests start many servers).
///
/// Label values come only from closed sets (route patterns, methods, status codes, model and key
/// names, class indices, reasons), so a client cannot grow the label space.
public final class ServeMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let counters = Locked<[String: CoreMetrics.Counter]>([:])
    private let timers = Locked<[String: CoreMetrics.Timer]>([:])
    private let recorders = Locked<[String: CoreMetrics.Recorder]>([:])
    private let gauges = Locked<[String: CoreMetrics.Gauge]>([:])

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["bulwark_http_request_duration_seconds"] =
            [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5].map { .nanoseconds(Int64($0 * 1e9)) }
        factory.durationHistogramBuckets["bulwark_inference_duration_seconds"] = factory.durationHistogramBuckets["bulwark_http_request_duration_seconds"]
        factory.valueHistogramBuckets["bulwark_predict_batch_rows"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        factory.valueHistogramBuckets["bulwark_microbatch_rows"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        self.factory = factory
    }

    private static func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.reduce(label) { $0 + "\u{1F}" + $1.0 + "=" + $1.1 }
    }

    /// The metric for `label` and `dimensions`, made once (swift-metrics objects are registered in
    /// the Prometheus registry when made; making one per request would cost a registry lookup).
    private func cached<Metric>(_ cache: Locked<[String: Metric]>, _ label: String, _ dimensions: [(String, String)],
                                make: () -> Metric) -> Metric {
        cache.withLock { cache in
            let key = Self.key(label, dimensions)
            if let found = cache[key] { return found }
            let made = make()
            cache[key] = made
            return made
        }
    }

    public func increment(_ label: String, _ dimensions: [(String, String)] = [], by amount: Int64 = 1) {
        cached(counters, label, dimensions) { CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory) }
            .increment(by: amount)
    }

    public func recordDuration(_ label: String, _ dimensions: [(String, String)] = [], _ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        cached(timers, label, dimensions) { CoreMetrics.Timer(label: label, dimensions: dimensions, factory: factory) }
            .recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    public func recordValue(_ label: String, _ value: Int) {
        cached(recorders, label, []) { CoreMetrics.Recorder(label: label, dimensions: [], aggregate: true, factory: factory) }
            .record(value)
    }

    public func setGauge(_ label: String, _ dimensions: [(String, String)] = [], _ value: Double) {
        cached(gauges, label, dimensions) { CoreMetrics.Gauge(label: label, dimensions: dimensions, factory: factory) }
            .record(value)
    }

    /// The Prometheus text exposition (format 0.0.4).
    public func exposition() -> [UInt8] { registry.emitToBuffer() }
}
#endif

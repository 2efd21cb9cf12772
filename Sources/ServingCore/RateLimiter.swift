import TensorCore

/// A token bucket per key: a key may send `burst` requests at once, then `rate` per second.
/// Buckets are kept by key id, so a key keeps its bucket across key-file reloads.
public final class RateLimiter: Sendable {
    /// The outcome of one request's check, with what the `RateLimit-*` headers say.
    public struct Decision: Sendable, Equatable {
        public let allowed: Bool
        /// The bucket's size (`RateLimit-Limit`).
        public let limit: Int
        /// Whole tokens left after this request (`RateLimit-Remaining`).
        public let remaining: Int
        /// Seconds until the bucket is full again (`RateLimit-Reset`).
        public let resetSeconds: Int
        /// Seconds until one request is allowed (`Retry-After`), when refused.
        public let retryAfterSeconds: Int
    }

    private struct Bucket {
        var tokens: Double
        var last: ContinuousClock.Instant
    }

    private let buckets = Locked<[String: Bucket]>([:])
    private let now: @Sendable () -> ContinuousClock.Instant

    /// - Parameter now: the clock (tests pass a fake one to check limits exactly).
    public init(now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.now = now
    }

    /// Takes `cost` tokens (1: a request; rows, for a per-row limit) from the bucket of key `id`
    /// if it has them. A cost above `burst` is never allowed.
    public func take(id: String, rate: Double, burst: Int, cost: Int = 1) -> Decision {
        precondition((1...burst).contains(cost), "a cost must be between 1 and the burst")  // callers cap rows at the burst
        let instant = now()
        return buckets.withLock { buckets in
            var bucket = buckets[id] ?? Bucket(tokens: Double(burst), last: instant)
            let elapsed = instant - bucket.last
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            bucket.tokens = min(Double(burst), bucket.tokens + rate * max(0, seconds))
            bucket.last = instant
            let allowed = bucket.tokens >= Double(cost)
            if allowed { bucket.tokens -= Double(cost) }
            buckets[id] = bucket
            // Header values clamped into Int (a hand-edited key file cannot make them trap).
            func wholeSeconds(_ value: Double) -> Int { Int(min(max(value.rounded(.up), 0), 1e9)) }
            return Decision(
                allowed: allowed, limit: burst, remaining: Int(min(bucket.tokens.rounded(.down), 1e9)),
                resetSeconds: wholeSeconds((Double(burst) - bucket.tokens) / rate),
                retryAfterSeconds: allowed ? 0 : max(1, wholeSeconds((Double(cost) - bucket.tokens) / rate)))
        }
    }

    /// Gives back `tokens` taken for a request that was then not served (at most up to `burst`).
    public func refund(id: String, tokens: Int, burst: Int) {
        buckets.withLock { buckets in
            guard var bucket = buckets[id] else { return }
            bucket.tokens = min(Double(burst), bucket.tokens + Double(tokens))
            buckets[id] = bucket
        }
    }

    /// Forgets the buckets of keys no longer in the file (a revoked key's bucket is not kept).
    public func retain(ids: Set<String>) {
        buckets.withLock { buckets in buckets = buckets.filter { ids.contains(String($0.key.prefix { $0 != "#" })) } }  // with "id#…" side buckets
    }
}

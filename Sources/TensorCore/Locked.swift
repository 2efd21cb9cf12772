import Glibc

/// A value guarded by a pthread mutex.
///
/// Bulwark uses this rather than `Synchronization.Mutex`: on Linux that mutex's slow path lives in
/// the uninstrumented standard library, so ThreadSanitizer cannot see the ordering it provides and
/// reports false races; ThreadSanitizer intercepts `pthread_mutex_lock` and understands this one.
///
/// `@unchecked Sendable`: `value` is only touched inside `withLock`, under the mutex.
public final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with exclusive access to the value.
    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}

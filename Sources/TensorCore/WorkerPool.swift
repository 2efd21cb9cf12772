import Glibc
import Synchronization

/// A fixed set of threads that run the shards of one job in parallel, allocation-free per job.
///
/// `run(shards:_:)` calls `body(s)` for every shard `s` in `0..<shards` and returns when all are done.
/// Shard `s` runs on thread `s % threadCount` (thread 0 is the caller). Work split into a fixed number
/// of shards therefore gives the same numbers whatever the thread count.
///
/// Bulwark splits batches across cores with this pool and keeps OpenBLAS single-threaded: on the
/// 784-256-256-10 training step at batch 128 two shards on two threads beat OpenBLAS's own
/// two-thread GEMMs, and OpenBLAS's threaded GEMM allocates on every call (see Benchmarks/).
///
/// Who may call `run`, and what a body may do:
/// - Any thread may call `run`, including threads the pool does not own (a Swift concurrency task,
///   a server's event loop). Such a caller runs its own shards, then *blocks* on a condition
///   variable until the workers are done; it never spins.
/// - A thread handed to the pool with `WorkerPool.dedicating(_:)` (a command-line batch job's main
///   thread) instead polls for the workers, as the pool's own threads do: a wake-up from a blocked
///   wait costs tens of microseconds on a virtual machine, which measurably slowed the training step
///   (see Benchmarks/: "MLP training step, sharded" and its "blocking caller" twin).
/// - The pool's own worker threads spin briefly for the next job, then sleep.
/// - The pool runs one job at a time. A `run` that finds the pool busy (another caller's job, or a
///   nested call from inside a body) runs all its shards on the calling thread instead, with the
///   same results. So concurrent callers are correct, merely serial.
/// - Bodies are `@Sendable`: the compiler checks what they capture. A body must not wait for work
///   that another job of the same pool would do.
/// - Values a hot loop changes between calls (a batch offset, a row count) live in a `ShardLoopState`
///   that the caller writes only between `run` calls.
public final class WorkerPool: @unchecked Sendable {
    public let threadCount: Int
    private let shared: SharedState
    private var threads: [pthread_t] = []
    private let busy: UnsafeMutablePointer<pthread_mutex_t>

    /// The process-wide pool that networks use unless told otherwise: two threads (one on a
    /// single-core machine) until `configureShared(threadCount:)` says otherwise. Creating it switches
    /// OpenBLAS to one thread, since Bulwark parallelises by sharding batches instead.
    public static var shared: WorkerPool {
        sharedPool.withLock { pool in
            if let pool { return pool }
            let created = makeSharedPool(threadCount: sysconf(Int32(_SC_NPROCESSORS_ONLN)) > 1 ? 2 : 1)
            pool = created
            return created
        }
    }

    /// Replaces the shared pool by one with `threadCount` threads (networks created afterwards use it).
    public static func configureShared(threadCount: Int) {
        sharedPool.withLock { $0 = makeSharedPool(threadCount: threadCount) }
    }

    private static let sharedPool = Locked<WorkerPool?>(nil)

    private static func makeSharedPool(threadCount: Int) -> WorkerPool {
        BLAS.threadCount = 1
        return WorkerPool(threadCount: threadCount)
    }

    /// Number of shards a batch is split into. Fixed, so that results do not depend on how many
    /// threads run the shards.
    public static let defaultShardCount = 2

    /// Runs `body` with the calling thread handed to the pools: while it runs, `run` calls from this
    /// thread poll for the workers instead of blocking (for batch jobs that own their thread, such as
    /// the command line's). Nests; the previous state is restored afterwards.
    public static func dedicating<Result>(_ body: () throws -> Result) rethrows -> Result {
        let previous = pthread_getspecific(dedicatedKey)
        pthread_setspecific(dedicatedKey, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(dedicatedKey, previous) }
        return try body()
    }

    /// Whether the calling thread is inside `dedicating(_:)`.
    public static var callerIsDedicated: Bool { pthread_getspecific(dedicatedKey) != nil }

    /// Thread-local flag of `dedicating(_:)` (pthread-specific data: one key for the process).
    private static let dedicatedKey: pthread_key_t = {
        var key = pthread_key_t()
        let status = pthread_key_create(&key, nil)
        precondition(status == 0, "pthread_key_create failed with status \(status)")
        return key
    }()

    /// A pool of `threadCount` threads including the caller (so `threadCount - 1` are started).
    public init(threadCount: Int) {
        precondition(threadCount >= 1, "a worker pool needs at least one thread, got \(threadCount)")
        self.threadCount = threadCount
        shared = SharedState(threadCount: threadCount)
        busy = .allocate(capacity: 1)
        pthread_mutex_init(busy, nil)
        for index in 1..<threadCount {
            let context = Unmanaged.passRetained(WorkerContext(shared: shared, index: index)).toOpaque()
            var thread = pthread_t()
            let status = pthread_create(&thread, nil, { raw in
                let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                context.shared.workerLoop(index: context.index)
                return nil
            }, context)
            precondition(status == 0, "pthread_create failed with status \(status)")
            threads.append(thread)
        }
    }

    deinit {
        shared.shutDown()
        for thread in threads { pthread_join(thread, nil) }
        pthread_mutex_destroy(busy)
        busy.deallocate()
    }

    /// Runs `body(s)` for `s` in `0..<shards` across the pool's threads and waits for all of them.
    ///
    /// `body` is escaping only so the pool can hand it to its threads without a per-call wrapper
    /// allocation: hot loops create the closure once, outside the loop, and pass it every
    /// iteration (with the values that change per call in a `ShardLoopState`); then a call
    /// allocates nothing.
    public func run(shards: Int, _ body: @escaping @Sendable (Int) -> Void) {
        guard threadCount > 1, shards > 1, pthread_mutex_trylock(busy) == 0 else {
            for s in 0..<shards { body(s) }
            return
        }
        defer { pthread_mutex_unlock(busy) }
        shared.run(shards: shards, poll: Self.callerIsDedicated, body)
    }

    /// The contiguous part `part` of `parts` of `0..<count`, with inner bounds on multiples of
    /// `alignment`; the parts tile `0..<count` in order.
    @inlinable
    public static func shardRange(_ count: Int, part: Int, parts: Int, alignment: Int = 1) -> Range<Int> {
        let units = (count + alignment - 1) / alignment
        let begin = min(count, units * part / parts * alignment)
        let end = part == parts - 1 ? count : min(count, units * (part + 1) / parts * alignment)
        return begin..<end
    }
}

/// State shared by the caller and the worker threads (the workers do not keep the pool alive).
///
/// `@unchecked Sendable`: `job` and `jobShards` are written by the one caller that holds the pool's
/// `busy` lock, before `generation` is incremented with release ordering; workers read them only
/// after observing the new generation with acquire ordering, and the caller clears them only after
/// every worker has decremented `pending` (release) and the caller has seen it reach zero (acquire,
/// or under `mutex`). Checked with ThreadSanitizer (`.ci/run`).
private final class SharedState: @unchecked Sendable {
    let threadCount: Int
    let generation = Atomic<Int>(0)
    let pending = Atomic<Int>(0)
    let shuttingDown = Atomic<Bool>(false)
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// Workers sleep on `condition` for a new job; the caller sleeps on `finished` for the end of one.
    let condition: UnsafeMutablePointer<pthread_cond_t>
    let finished: UnsafeMutablePointer<pthread_cond_t>
    /// The current job: written before `generation` is bumped (release), read after (acquire).
    var job: (@Sendable (Int) -> Void)?
    var jobShards = 0

    init(threadCount: Int) {
        self.threadCount = threadCount
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        finished = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        pthread_cond_init(finished, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_cond_destroy(finished)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
        finished.deallocate()
    }

    func wakeWorkers() {
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    /// - Parameter poll: the caller is dedicated to the pool: poll for the workers (yielding the CPU
    ///   after a while) instead of blocking.
    func run(shards: Int, poll: Bool, _ body: @escaping @Sendable (Int) -> Void) {
        job = body
        jobShards = shards
        pending.store(threadCount - 1, ordering: .relaxed)
        generation.add(1, ordering: .releasing)
        wakeWorkers()
        runShards(of: 0)
        if poll {
            var spins = 0
            while pending.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins > 1 << 14 { sched_yield() }
            }
        } else if pending.load(ordering: .acquiring) > 0 {
            // Block until the last worker to finish signals under `mutex`.
            pthread_mutex_lock(mutex)
            while pending.load(ordering: .acquiring) > 0 {
                pthread_cond_wait(finished, mutex)
            }
            pthread_mutex_unlock(mutex)
        }
        job = nil
    }

    func runShards(of thread: Int) {
        guard let job else { return }
        var s = thread
        while s < jobShards {
            job(s)
            s += threadCount
        }
    }

    func workerLoop(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins > 1 << 16 {
                    pthread_mutex_lock(mutex)
                    while generation.load(ordering: .acquiring) == seen {
                        pthread_cond_wait(condition, mutex)
                    }
                    pthread_mutex_unlock(mutex)
                }
            }
            seen = generation.load(ordering: .acquiring)
            if shuttingDown.load(ordering: .acquiring) { return }
            runShards(of: index)
            if pending.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                // The caller may be waiting: wake it under the mutex, so the wake-up cannot fall
                // between its check of `pending` and its wait.
                pthread_mutex_lock(mutex)
                pthread_cond_signal(finished)
                pthread_mutex_unlock(mutex)
            }
        }
    }

    func shutDown() {
        shuttingDown.store(true, ordering: .releasing)
        generation.add(1, ordering: .releasing)
        wakeWorkers()
    }
}

private final class WorkerContext: @unchecked Sendable {  // handed to one new thread, then only read
    let shared: SharedState
    let index: Int
    init(shared: SharedState, index: Int) {
        self.shared = shared
        self.index = index
    }
}

/// Values that a hot loop's shard body reads and the calling thread changes between
/// `WorkerPool.run` calls (a batch offset, a row count, pointers to this call's data).
///
/// `@unchecked Sendable`: the calling thread writes `value` only while no job of the pool runs;
/// `run` publishes the job with a release store that workers acquire before calling the body, and
/// returns only after acquiring their completion, so every shard reads the values written before
/// its job started and none are written while it runs. Checked with ThreadSanitizer.
public final class ShardLoopState<Value>: @unchecked Sendable {
    public var value: Value
    public init(_ value: Value) { self.value = value }
}

/// A pointer that shard bodies may capture: memory the calling thread keeps alive for the whole
/// `WorkerPool.run` call, of which each shard writes only its own disjoint rows.
///
/// `@unchecked Sendable`: that discipline (disjoint writes, lifetime covering the job) is the
/// caller's obligation, stated where each one is created; ThreadSanitizer checks it in CI.
public struct SendablePointer<Pointee>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Pointee>
    @inlinable public init(_ pointer: UnsafeMutablePointer<Pointee>) { self.pointer = pointer }
}

/// The first error thrown by a shard body, kept for the calling thread to rethrow after
/// `WorkerPool.run` returns (shard bodies cannot throw).
public final class ShardFailure: Sendable {
    private let error = Locked<(any Error)?>(nil)

    public init() {}

    /// Keeps `error` unless an earlier one is kept.
    public func record(_ error: any Error) {
        self.error.withLock { if $0 == nil { $0 = error } }
    }

    /// Throws the kept error (and forgets it).
    public func rethrow() throws {
        if let error = error.withLock({ kept -> (any Error)? in defer { kept = nil }; return kept }) { throw error }
    }
}

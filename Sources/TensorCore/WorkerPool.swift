import Glibc
import Synchronization

/// A fixed set of threads that run the shards of one job in parallel, allocation-free per job.
///
/// `run(shards:_:)` calls `body(s)` for every shard `s` in `0..<shards` and returns when all are done.
/// Shard `s` runs on thread `s % threadCount` (thread 0 is the caller). Work split into a fixed number
/// of shards therefore gives the same numbers whatever the thread count. Idle workers spin briefly,
/// then sleep on a condition variable.
///
/// Bulwark splits batches across cores with this pool and keeps OpenBLAS single-threaded: on the
/// 784-256-256-10 training step at batch 128 two shards on two threads beat OpenBLAS's own
/// two-thread GEMMs, and OpenBLAS's threaded GEMM allocates on every call (see Benchmarks/).
///
/// The pool runs one job at a time: a `run` that finds the pool busy (another thread's job, or a
/// nested call) runs its shards on the calling thread instead, with the same results.
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

    private static let sharedPool = Mutex<WorkerPool?>(nil)

    private static func makeSharedPool(threadCount: Int) -> WorkerPool {
        BLAS.threadCount = 1
        return WorkerPool(threadCount: threadCount)
    }

    /// Number of shards a batch is split into. Fixed, so that results do not depend on how many
    /// threads run the shards.
    public static let defaultShardCount = 2

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
    /// iteration (variables it captures may change between calls); then a call allocates nothing.
    public func run(shards: Int, _ body: @escaping (Int) -> Void) {
        guard threadCount > 1, shards > 1, pthread_mutex_trylock(busy) == 0 else {
            for s in 0..<shards { body(s) }
            return
        }
        defer { pthread_mutex_unlock(busy) }
        shared.run(shards: shards, body)
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
private final class SharedState: @unchecked Sendable {
    let threadCount: Int
    let generation = Atomic<Int>(0)
    let pending = Atomic<Int>(0)
    let shuttingDown = Atomic<Bool>(false)
    let mutex: UnsafeMutablePointer<pthread_mutex_t>
    let condition: UnsafeMutablePointer<pthread_cond_t>
    /// The current job: written before `generation` is bumped (release), read after (acquire).
    var job: ((Int) -> Void)?
    var jobShards = 0

    init(threadCount: Int) {
        self.threadCount = threadCount
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    func wakeWorkers() {
        pthread_mutex_lock(mutex)
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
    }

    func run(shards: Int, _ body: @escaping (Int) -> Void) {
        job = body
        jobShards = shards
        pending.store(threadCount - 1, ordering: .relaxed)
        generation.add(1, ordering: .releasing)
        wakeWorkers()
        runShards(of: 0)
        var spins = 0
        while pending.load(ordering: .acquiring) > 0 {
            spins += 1
            if spins > 1 << 14 { sched_yield() }
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
            pending.subtract(1, ordering: .releasing)
        }
    }

    func shutDown() {
        shuttingDown.store(true, ordering: .releasing)
        generation.add(1, ordering: .releasing)
        wakeWorkers()
    }
}

private final class WorkerContext {
    let shared: SharedState
    let index: Int
    init(shared: SharedState, index: Int) {
        self.shared = shared
        self.index = index
    }
}

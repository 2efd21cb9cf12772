import Foundation
import Synchronization
import Testing
import TensorCore

@Suite("Worker pool")
struct WorkerPoolTests {
    @Test("every shard runs exactly once", arguments: [1, 2, 3], [1, 2, 5, 16])
    func everyShardOnce(threads: Int, shards: Int) {
        let pool = WorkerPool(threadCount: threads)
        let counts = SendablePointer<Int>(.allocate(capacity: shards))
        counts.pointer.initialize(repeating: 0, count: shards)
        defer { counts.pointer.deallocate() }
        for _ in 0..<50 {
            pool.run(shards: shards) { s in counts.pointer[s] += 1 }
        }
        #expect((0..<shards).allSatisfy { counts.pointer[$0] == 50 })
    }

    @Test("a nested run on the same pool runs on the calling thread")
    func nested() {
        let pool = WorkerPool(threadCount: 2)
        let total = Atomic<Int>(0)
        pool.run(shards: 2) { _ in
            pool.run(shards: 3) { _ in total.add(1, ordering: .relaxed) }
        }
        #expect(total.load(ordering: .relaxed) == 6)
    }

    @Test("many concurrent callers on threads the pool does not own all get every shard run once")
    func concurrentCallers() async {
        let pool = WorkerPool(threadCount: 2)
        let totals = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    let count = Atomic<Int>(0)
                    for _ in 0..<200 {
                        pool.run(shards: 4) { _ in count.add(1, ordering: .relaxed) }
                    }
                    return count.load(ordering: .relaxed)
                }
            }
            return await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(totals == [Int](repeating: 800, count: 8))
    }

    @Test("a dedicated caller polls, others block; both get every shard, and the flag nests and restores")
    func dedicatedCaller() {
        #expect(!WorkerPool.callerIsDedicated)
        let pool = WorkerPool(threadCount: 2)
        let count = Atomic<Int>(0)
        WorkerPool.dedicating {
            #expect(WorkerPool.callerIsDedicated)
            WorkerPool.dedicating { #expect(WorkerPool.callerIsDedicated) }
            #expect(WorkerPool.callerIsDedicated)
            for _ in 0..<100 { pool.run(shards: 2) { _ in count.add(1, ordering: .relaxed) } }
        }
        #expect(!WorkerPool.callerIsDedicated)
        for _ in 0..<100 { pool.run(shards: 2) { _ in count.add(1, ordering: .relaxed) } }
        #expect(count.load(ordering: .relaxed) == 400)
    }

    @Test("values set between jobs in a ShardLoopState are seen by every shard")
    func loopState() {
        let pool = WorkerPool(threadCount: 2)
        let state = ShardLoopState(0)
        let seen = SendablePointer<Int>(.allocate(capacity: 2))
        seen.pointer.initialize(repeating: -1, count: 2)
        defer { seen.pointer.deallocate() }
        let body: @Sendable (Int) -> Void = { s in seen.pointer[s] = state.value }
        for value in 0..<100 {
            state.value = value
            pool.run(shards: 2, body)
            #expect(seen.pointer[0] == value && seen.pointer[1] == value)
        }
    }

    @Test("a shard's error is kept for the caller")
    func failure() {
        struct Boom: Error {}
        let failure = ShardFailure()
        WorkerPool(threadCount: 2).run(shards: 4) { s in if s == 3 { failure.record(Boom()) } }
        #expect(throws: Boom.self) { try failure.rethrow() }
        #expect(throws: Never.self) { try failure.rethrow() }
    }

    @Test("shard ranges tile the whole range in order", arguments: [0, 1, 7, 128, 269_322])
    func shardRanges(count: Int) {
        for parts in 1...4 {
            for alignment in [1, 16] {
                let ranges = (0..<parts).map { WorkerPool.shardRange(count, part: $0, parts: parts, alignment: alignment) }
                #expect(ranges.first?.lowerBound == 0)
                #expect(ranges.last?.upperBound == count)
                for (a, b) in zip(ranges, ranges.dropFirst()) { #expect(a.upperBound == b.lowerBound) }
                for range in ranges.dropLast() { #expect(range.upperBound % alignment == 0 || range.upperBound == count) }
            }
        }
    }
}

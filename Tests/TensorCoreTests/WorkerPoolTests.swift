import Synchronization
import Testing
import TensorCore

@Suite("Worker pool")
struct WorkerPoolTests {
    @Test("every shard runs exactly once", arguments: [1, 2, 3], [1, 2, 5, 16])
    func everyShardOnce(threads: Int, shards: Int) {
        let pool = WorkerPool(threadCount: threads)
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: shards)
        counts.initialize(repeating: 0, count: shards)
        defer { counts.deallocate() }
        for _ in 0..<50 {
            pool.run(shards: shards) { s in counts[s] += 1 }
        }
        #expect((0..<shards).allSatisfy { counts[$0] == 50 })
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

import Foundation
import NeuralNet
import ServingCore
import TensorCore
import Testing
import _TestSupport

@Suite("Micro-batching")
struct MicroBatcherTests {
    func served(_ network: Sequential) -> ServedModel {
        ServedModel(name: "m", path: "m", model: network.inferenceModel(), sha256: String(repeating: "0", count: 64), architecture: "", card: nil)
    }

    @Test("concurrent requests get exactly their own rows' logits, batched together")
    func concurrentRequests() async throws {
        let network = Sequential(spec: try ModelSpec.parse("20-16-5"), seed: 3)
        let model = served(network)
        let batches = Locked<[Int]>([])
        let batcher = MicroBatcher(name: "m", limits: .init(maxBatchRows: 64, maxQueueRows: 4096, window: .microseconds(500))) { rows, _ in
            batches.withLock { $0.append(rows) }
        }
        let results = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for i in 0..<40 {
                group.addTask {
                    let rows = 1 + i % 3
                    let input = PredictInput(rows: rows, values: TestSupport.randomValues(rows * 20, seed: UInt64(i), in: 0, 1))
                    return (i, try await batcher.run(input, on: model).logits)
                }
            }
            var all: [Int: [Float]] = [:]
            for try await (i, logits) in group { all[i] = logits }
            return all
        }
        batcher.stop()
        for i in 0..<40 {
            let rows = 1 + i % 3
            let expected = try model.model.logits(Tensor(shape: [rows, 20], scalars: TestSupport.randomValues(rows * 20, seed: UInt64(i), in: 0, 1)))
            #expect(TestSupport.close(results[i]!, expected.scalars, relative: 1e-5, absolute: 1e-6), "request \(i)")
        }
        let sizes = batches.withLock { $0 }
        let totalRows = (0..<40).map { 1 + $0 % 3 }.reduce(0, +)
        #expect(sizes.reduce(0, +) == totalRows)
        #expect(sizes.count < 40)  // some requests shared a batch
    }

    @Test("a full queue and a stopped batcher refuse at once (503), never wait without bound")
    func boundedQueue() async throws {
        let network = Sequential(spec: try ModelSpec.parse("4-3"), seed: 1)
        let batcher = MicroBatcher(name: "m", limits: .init(maxBatchRows: 4, maxQueueRows: 4, window: .zero))
        let tooMany = PredictInput(rows: 5, values: Array(repeating: 0.5, count: 20))
        await #expect(throws: ServeError.self) { _ = try await batcher.run(tooMany, on: served(network)) }
        batcher.stop()
        let one = PredictInput(rows: 1, values: Array(repeating: 0.5, count: 4))
        await #expect(throws: ServeError.self) { _ = try await batcher.run(one, on: served(network)) }
    }
}

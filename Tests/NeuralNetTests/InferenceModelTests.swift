import Foundation
import Testing
import NeuralNet
import TensorCore
import _TestSupport

@Suite("Inference model: Sendable, concurrent, gradient-free")
struct InferenceModelTests {
    func network() throws -> Sequential {
        Sequential(spec: try ModelSpec.parse("784-64-32-10", dropout: 0.3), seed: 7)
    }

    /// A model loaded from a file, as `eval` and a server load it.
    func loaded(pool: WorkerPool?) throws -> any InferenceModel {
        let path = TestSupport.temporaryDirectory() + "/model.safetensors"
        try ModelFile.save(try network(), to: path)
        return try ModelFile.load(contentsOf: path).network.inferenceModel(pool: pool)
    }

    @Test("8 concurrent tasks predicting with one loaded model get exactly the single-threaded predictions",
          arguments: [false, true])
    func concurrentTasks(sharedPool: Bool) async throws {
        // With the shared pool, concurrent calls contend for it: one runs its shards on it, the
        // others run theirs inline; every call must still give the same logits.
        let inference = try loaded(pool: sharedPool ? .shared : nil)
        let batches = (0..<8).map { TestSupport.randomTensor(rows: 37 + 50 * $0, columns: 784, seed: UInt64($0), in: 0, 1) }
        let expected = try batches.map { try inference.logits($0).scalars }
        let results = try await withThrowingTaskGroup(of: (Int, [[Float]]).self) { group in
            for (index, batch) in batches.enumerated() {
                group.addTask {
                    // Each task calls several times, so calls overlap and reuse leased scratch.
                    (index, try (0..<5).map { _ in try inference.logits(batch).scalars })
                }
            }
            var collected = [[[Float]]](repeating: [], count: batches.count)
            for try await (index, logits) in group { collected[index] = logits }
            return collected
        }
        for (index, runs) in results.enumerated() {
            #expect(runs.count == 5 && runs.allSatisfy { $0 == expected[index] }, "task \(index)")
        }
    }

    @Test("inference logits equal the training network's evaluation-mode logits, on the pool and off it")
    func matchesSequential() throws {
        let sequential = try network()
        var inputs = TestSupport.randomTensor(rows: 2345, columns: 784, seed: 3, in: 0, 1)
        let predictions = sequential.predictions(on: inputs)
        for model in [sequential.inferenceModel(), sequential.inferenceModel(pool: WorkerPool(threadCount: 2))] {
            #expect(try model.predictions(inputs) == predictions)
            let logits = try model.logits(inputs)
            let row = 1999
            let reference = inputs.withMatrix { x in sequential.forward(x.rows(row..<(row + 1)), mode: .evaluation).array }
            #expect(TestSupport.close(Array(logits.scalars[(row * 10)..<((row + 1) * 10)]), reference, relative: 1e-5, absolute: 1e-5))
        }
        let probabilities = try sequential.inferenceModel().probabilities(inputs.rows(0..<5))
        for i in 0..<5 {
            let sum = (0..<10).reduce(Float(0)) { $0 + probabilities[i, $1] }
            #expect(abs(sum - 1) < 1e-5)
        }
    }

    @Test("the inference snapshot does not change when the network trains on")
    func snapshot() throws {
        let sequential = try network()
        let inference = sequential.inferenceModel()
        let inputs = TestSupport.randomTensor(rows: 4, columns: 784, seed: 9, in: 0, 1)
        let before = try inference.logits(inputs)
        sequential.parameters.pointer.update(repeating: 0, count: sequential.parameterCount)
        #expect(try inference.logits(inputs) == before)
    }

    @Test("wrong input shapes are refused with an error, not a trap")
    func shapes() throws {
        let inference = try network().inferenceModel()
        #expect(throws: InferenceError.self) { try inference.logits(Tensor(zeros: [3, 783])) }
        #expect(throws: InferenceError.self) { try inference.logits(Tensor(zeros: [2, 2, 784])) }
        #expect(try inference.logits(Tensor(zeros: [0, 784])).shape == [0, 10])
    }

    @Test("attacks and inference never allocate parameter gradients")
    func noGradientsForInference() throws {
        let sequential = try network()
        var inputs = TestSupport.randomTensor(rows: 8, columns: 784, seed: 1, in: 0, 1)
        _ = sequential.predictions(on: inputs)
        inputs.withMatrix { x in
            _ = sequential.forward(x, mode: .evaluation)
            sequential.logitsGradient().buffer.update(repeating: 1)
            _ = sequential.backward(parameterGradients: .skip, computeInputGradient: true)
        }
        #expect(sequential.hasParameterGradients == false)
        _ = sequential.gradients
        #expect(sequential.hasParameterGradients == true)
    }
}

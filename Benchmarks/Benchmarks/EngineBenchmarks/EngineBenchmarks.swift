import Benchmark
import NeuralNet
import TensorCore

// The default model at the default batch size: 784-256-256-10, batch 128, Adam.
//
// Two execution strategies are measured side by side, which is how Bulwark chose the first:
// - "sharded": the batch is split in two shards run on the worker pool, OpenBLAS single-threaded
//   (what `bulwark train` does, from a thread handed to the pool: `WorkerPool.dedicating`);
// - "OpenBLAS 2 threads": the whole batch on one thread, OpenBLAS parallelising each GEMM.
// Each training step has a "GEMMs alone" twin performing exactly its GEMM calls, so the overhead
// beyond pure GEMM is the ratio of the two. The "empty" benchmark shows the harness's own malloc
// count per sample (subtract it from the others).

private let widths = [784, 256, 256, 10]
private let batch = 128
private let shards = WorkerPool.defaultShardCount

private func spec() -> ModelSpec { try! ModelSpec.parse("784-256-256-10") }

/// `rows` inputs in [0, 1] and labels, fixed by a seed.
private func makeBatch(rows: Int = batch) -> (FloatBuffer, SendablePointer<Int>) {
    var generator = RandomGenerator(seed: 42)
    let x = FloatBuffer(count: rows * widths[0])
    for i in 0..<x.count { x.pointer[i] = generator.nextUnitFloat() }
    let labels = SendablePointer<Int>(.allocate(capacity: rows))
    for i in 0..<rows { labels.pointer[i] = generator.nextInt(below: widths.last!) }
    return (x, labels)
}

private func configuration() -> Benchmark.Configuration {
    Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .instructions],
        warmupIterations: 20,
        scalingFactor: .one,
        maxDuration: .seconds(3),
        maxIterations: 3000,
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )
}

/// Buffers for the GEMMs of one training step on `rows` examples.
private final class GEMMStep: @unchecked Sendable {  // each shard runs only its own step
    let rows: Int
    let weights = (0..<3).map { FloatBuffer(count: widths[$0 + 1] * widths[$0]) }
    let weightGradients = (0..<3).map { FloatBuffer(count: widths[$0 + 1] * widths[$0]) }
    let activations: [FloatBuffer]
    let activationGradients: [FloatBuffer]

    init(rows: Int) {
        self.rows = rows
        activations = widths.map { FloatBuffer(count: rows * $0) }
        activationGradients = widths.map { FloatBuffer(count: rows * $0) }
    }

    /// Forward Y = X·Wᵀ (+ b, β = 1) per layer; backward dW = dYᵀ·X (β = 0, as `.overwrite` does) and
    /// dX = dY·W (not for the input layer).
    func run() {
        for l in 0..<3 {
            BLAS.gemm(activations[l].matrix(rows: rows, columns: widths[l]), .none,
                      times: weights[l].matrix(rows: widths[l + 1], columns: widths[l]), .transposed,
                      into: activations[l + 1].matrix(rows: rows, columns: widths[l + 1]), beta: 1)
        }
        for l in (0..<3).reversed() {
            let dY = activationGradients[l + 1].matrix(rows: rows, columns: widths[l + 1])
            BLAS.gemm(dY, .transposed, times: activations[l].matrix(rows: rows, columns: widths[l]), .none,
                      into: weightGradients[l].matrix(rows: widths[l + 1], columns: widths[l]))
            if l > 0 {
                BLAS.gemm(dY, .none, times: weights[l].matrix(rows: widths[l + 1], columns: widths[l]), .none,
                          into: activationGradients[l].matrix(rows: rows, columns: widths[l]))
            }
        }
    }
}

/// Forward pass, cross-entropy and input gradient of `rows` examples, sharded; inside
/// `withPackedWeights` if `packed`.
private func inputGradients(_ benchmark: Benchmark, rows: Int, packed: Bool) {
    let pool = WorkerPool.shared
    BLAS.threadCount = 1
    let network = Sequential(spec: spec(), seed: 0)
    let (x, labels) = makeBatch(rows: rows)
    network.reserve(rows: (rows + shards - 1) / shards, shards: shards)
    let body: @Sendable (Int) -> Void = { s in
        let part = WorkerPool.shardRange(rows, part: s, parts: shards)
        let input = x.matrix(rows: part.count, columns: widths[0], offset: part.lowerBound * widths[0])
        let logits = network.forward(input, mode: .evaluation, shard: s)
        SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: labels.pointer + part.lowerBound,
                                            gradient: network.logitsGradient(shard: s))
        blackHole(network.backward(parameterGradients: .skip, computeInputGradient: true, shard: s)?.base)
    }
    func measure() {
        benchmark.startMeasurement()
        WorkerPool.dedicating {
            for _ in benchmark.scaledIterations { pool.run(shards: shards, body) }
        }
    }
    if packed { network.withPackedWeights { measure() } } else { measure() }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = configuration()
    stepPartBenchmarks()
    attackBenchmarks()
    certificationBenchmarks()

    // The real training path (`Trainer`, `TrainingStep`, `CrossEntropyObjective`), as `bulwark train`
    // runs it: one epoch of 100 steps per measurement. Setup (the step's buffers) is inside it, so the
    // malloc count is a small constant; a step that allocated would add 100.
    Benchmark("Training epoch, 100 steps of 128, Trainer",
              configuration: .init(metrics: [.wallClock, .mallocCountTotal], warmupIterations: 1, scalingFactor: .one,
                                   maxDuration: .seconds(10), maxIterations: 20, thresholds: [:])) { benchmark in
        let data = syntheticTrainingSet(count: 100 * batch)
        let configuration = TrainerConfiguration(architecture: spec(), seed: 0, epochs: 1, batchSize: batch,
                                                 optimizer: .adam(learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8,
                                                                  weightDecay: 0, decoupled: false))
        for _ in benchmark.scaledIterations {
            let trainer = try Trainer(configuration: configuration, objective: CrossEntropyObjective())
            benchmark.startMeasurement()
            try WorkerPool.dedicating { _ = try trainer.train(on: data, validation: nil) }
            benchmark.stopMeasurement()
        }
    }

    Benchmark("empty") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(1) }
    }

    // MARK: Sharded (Bulwark's strategy)

    // What `bulwark train` does: the command line hands its thread to the pool, which polls.
    Benchmark("MLP training step, sharded") { benchmark in
        try WorkerPool.dedicating { try shardedTrainingStep(benchmark) }
    }

    // The same step from a thread the pool does not own (a server task): the caller blocks.
    Benchmark("MLP training step, sharded, blocking caller") { benchmark in
        try shardedTrainingStep(benchmark)
    }

    Benchmark("MLP training-step GEMMs alone, sharded") { benchmark in
        let pool = WorkerPool.shared
        BLAS.threadCount = 1
        let steps = (0..<shards).map { GEMMStep(rows: WorkerPool.shardRange(batch, part: $0, parts: shards).count) }
        let body: @Sendable (Int) -> Void = { s in steps[s].run() }
        benchmark.startMeasurement()
        WorkerPool.dedicating {
            for _ in benchmark.scaledIterations { pool.run(shards: shards, body) }
        }
    }

    Benchmark("MLP forward, sharded") { benchmark in
        let pool = WorkerPool.shared
        BLAS.threadCount = 1
        let network = Sequential(spec: spec(), seed: 0)
        let (x, _) = makeBatch()
        network.reserve(rows: batch / shards, shards: shards)
        let body: @Sendable (Int) -> Void = { s in
            let part = WorkerPool.shardRange(batch, part: s, parts: shards)
            let input = x.matrix(rows: part.count, columns: widths[0], offset: part.lowerBound * widths[0])
            blackHole(network.forward(input, mode: .evaluation, shard: s).base)
        }
        benchmark.startMeasurement()
        WorkerPool.dedicating {
            for _ in benchmark.scaledIterations { pool.run(shards: shards, body) }
        }
    }

    // An attack step's products: at the training batch, and at an attack batch (500 rows, what
    // `AttackRunner` runs) with OpenBLAS and with the weights packed once as an attack packs them
    // (`Sequential.withPackedWeights`).
    for (rows, packed) in [(batch, false), (500, false), (500, true)] {
        let name = rows == batch ? "MLP input gradient, sharded" : "MLP input gradient, attack batch of \(rows), sharded, \(packed ? "packed weights" : "OpenBLAS")"
        Benchmark(name) { benchmark in inputGradients(benchmark, rows: rows, packed: packed) }
    }

    // MARK: Unsharded, OpenBLAS threading (the alternative)

    Benchmark("MLP training step, OpenBLAS 2 threads") { benchmark in
        BLAS.threadCount = 2
        defer { BLAS.threadCount = 1 }
        let network = Sequential(spec: spec(), seed: 0)
        let optimizer = try Adam(parameterCount: network.parameterCount, learningRate: 1e-3)
        let (x, labels) = makeBatch()
        network.reserve(rows: batch, shards: 1, parameterGradients: true)
        let input = x.matrix(rows: batch, columns: widths[0])
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let logits = network.forward(input, mode: .training)
            SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: labels.pointer, gradientScale: 1 / Float(batch),
                                                gradient: network.logitsGradient())
            network.backward(parameterGradients: .overwrite, computeInputGradient: false)
            optimizer.step(parameters: network.parameters, gradients: network.gradients)
        }
    }

    Benchmark("MLP training-step GEMMs alone, OpenBLAS 2 threads") { benchmark in
        BLAS.threadCount = 2
        defer { BLAS.threadCount = 1 }
        let step = GEMMStep(rows: batch)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { step.run() }
    }

    Benchmark("MLP inference, InferenceModel, batch 128, one thread") { benchmark in
        let inference = Sequential(spec: spec(), seed: 0).inferenceModel()
        let (x, _) = makeBatch()
        let logits = FloatBuffer(count: batch * widths.last!)
        let input = x.matrix(rows: batch, columns: widths[0]), output = logits.matrix(rows: batch, columns: widths.last!)
        try inference.logits(input, into: output)  // leases its scratch once, outside the measurement
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { try inference.logits(input, into: output) }
        benchmark.stopMeasurement()
        blackHole(logits.pointer[0])
    }

    Benchmark("Adam update 269k parameters, one thread") { benchmark in
        let network = Sequential(spec: spec(), seed: 0)
        network.reserve(rows: 1, shards: 1, parameterGradients: true)  // gradients exist before the measurement
        let optimizer = try Adam(parameterCount: network.parameterCount, learningRate: 1e-3)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            optimizer.step(parameters: network.parameters, gradients: network.gradients)
        }
    }
}

/// The two halves of the sharded training step, to see where its time beyond GEMM goes.
let stepPartBenchmarks: @Sendable () -> Void = {
    Benchmark("MLP forward+backward (no update), sharded") { benchmark in
        let pool = WorkerPool.shared
        BLAS.threadCount = 1
        let network = Sequential(spec: spec(), seed: 0)
        let (x, labels) = makeBatch()
        network.reserve(rows: batch / shards, shards: shards, parameterGradients: true)
        let forwardBackward: @Sendable (Int) -> Void = { s in
            let part = WorkerPool.shardRange(batch, part: s, parts: shards)
            let input = x.matrix(rows: part.count, columns: widths[0], offset: part.lowerBound * widths[0])
            let logits = network.forward(input, mode: .training, shard: s)
            SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: labels.pointer + part.lowerBound,
                                                gradientScale: 1 / Float(batch), gradient: network.logitsGradient(shard: s))
            network.backward(parameterGradients: .overwrite, computeInputGradient: false, shard: s)
        }
        benchmark.startMeasurement()
        WorkerPool.dedicating {
            for _ in benchmark.scaledIterations { pool.run(shards: shards, forwardBackward) }
        }
    }
    Benchmark("Gradient reduction + Adam update, sharded") { benchmark in
        let pool = WorkerPool.shared
        let network = Sequential(spec: spec(), seed: 0)
        network.reserve(rows: 1, shards: shards, parameterGradients: true)
        let optimizer = try Adam(parameterCount: network.parameterCount, learningRate: 1e-3)
        let count = network.parameterCount
        let reduceAndUpdate: @Sendable (Int) -> Void = { s in
            let range = WorkerPool.shardRange(count, part: s, parts: shards, alignment: 16)
            network.reduceShardGradients(count: shards, range: range)
            optimizer.update(parameters: network.parameters, gradients: network.gradients, range: range, step: optimizer.stepCount)
        }
        benchmark.startMeasurement()
        WorkerPool.dedicating {
            for _ in benchmark.scaledIterations { optimizer.stepCount += 1; pool.run(shards: shards, reduceAndUpdate) }
        }
    }
}

/// One sharded training step of the default model (forward, backward, reduction, Adam), measured.
private func shardedTrainingStep(_ benchmark: Benchmark) throws {
    let pool = WorkerPool.shared
    BLAS.threadCount = 1
    let network = Sequential(spec: spec(), seed: 0)
    let optimizer = try Adam(parameterCount: network.parameterCount, learningRate: 1e-3)
    let (x, labels) = makeBatch()
    network.reserve(rows: batch / shards, shards: shards, parameterGradients: true)
    let count = network.parameterCount
    let forwardBackward: @Sendable (Int) -> Void = { s in
        let part = WorkerPool.shardRange(batch, part: s, parts: shards)
        let input = x.matrix(rows: part.count, columns: widths[0], offset: part.lowerBound * widths[0])
        let logits = network.forward(input, mode: .training, shard: s)
        SoftmaxCrossEntropy.lossAndGradient(logits: logits, labels: labels.pointer + part.lowerBound,
                                            gradientScale: 1 / Float(batch), gradient: network.logitsGradient(shard: s))
        network.backward(parameterGradients: .overwrite, computeInputGradient: false, shard: s)
    }
    let reduceAndUpdate: @Sendable (Int) -> Void = { s in
        let range = WorkerPool.shardRange(count, part: s, parts: shards, alignment: 16)
        network.reduceShardGradients(count: shards, range: range)
        optimizer.update(parameters: network.parameters, gradients: network.gradients, range: range, step: optimizer.stepCount)
    }
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        pool.run(shards: shards, forwardBackward)
        optimizer.stepCount += 1
        pool.run(shards: shards, reduceAndUpdate)
    }
}

/// `count` examples of 784 features in [0, 1] with labels in 0..<10, fixed by a seed.
private func syntheticTrainingSet(count: Int) -> LabeledData {
    var generator = RandomGenerator(seed: 7)
    let features = (0..<(count * widths[0])).map { _ in generator.nextUnitFloat() }
    let labels = (0..<count).map { _ in generator.nextInt(below: widths.last!) }
    return LabeledData(features: Tensor(shape: [count, widths[0]], scalars: features), labels: labels, classCount: widths.last!)
}

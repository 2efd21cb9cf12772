import TensorCore

/// One sharded training step, with every buffer and shard body allocated once so that a step
/// allocates nothing:
/// ```
/// gather the batch's rows → per shard: objective loss and ∂/∂θ (overwritten) → sum the shards'
/// gradients → objective.finishGradients → clip → optimizer update (disjoint parameter ranges)
/// ```
/// The batch is split into `WorkerPool.defaultShardCount` shards whatever the thread count, so the
/// weights do not depend on it.
final class TrainingStep {
    let network: Sequential
    let optimizer: any Optimizer
    let objective: any TrainingObjective
    let clipNorm: Float?
    let batchSize: Int
    let features: Int
    let shards = WorkerPool.defaultShardCount

    /// What the shard bodies read for the current step; written only between pool jobs.
    struct Inputs {
        var order: UnsafePointer<Int>?        // shuffled example indices of the epoch
        var source: MatrixRef?                // all training features (n, features)
        var sourceLabels: UnsafePointer<Int>? // all training labels
        var first = 0                         // position in `order` of the batch's first example
        var rows = 0                          // examples in this batch
    }
    private let state = ShardLoopState(Inputs())
    private let failure = ShardFailure()
    private let batch: FloatBuffer                       // (batchSize, features)
    private let labels: SendablePointer<Int>             // (batchSize)
    private let predictions: SendablePointer<Int>        // (batchSize)
    private let shardLoss: SendablePointer<Double>       // (shards)
    /// The objective's generator of each shard (reseeded every epoch).
    let generators: SendablePointer<RandomGenerator>     // (shards)
    private var forwardBackward: (@Sendable (Int) -> Void)!
    private var reduce: (@Sendable (Int) -> Void)!
    private var update: (@Sendable (Int) -> Void)!
    private var reduceAndUpdate: (@Sendable (Int) -> Void)!

    init(network: Sequential, optimizer: any Optimizer, objective: any TrainingObjective, clipNorm: Float?,
         batchSize: Int, features: Int) {
        self.network = network
        self.optimizer = optimizer
        self.objective = objective
        self.clipNorm = clipNorm
        self.batchSize = batchSize
        self.features = features
        batch = FloatBuffer(count: batchSize * features)
        labels = SendablePointer(.allocate(capacity: batchSize))
        labels.pointer.initialize(repeating: 0, count: batchSize)
        predictions = SendablePointer(.allocate(capacity: batchSize))
        predictions.pointer.initialize(repeating: 0, count: batchSize)
        shardLoss = SendablePointer(.allocate(capacity: shards))
        shardLoss.pointer.initialize(repeating: 0, count: shards)
        generators = SendablePointer(.allocate(capacity: shards))
        generators.pointer.initialize(repeating: RandomGenerator(seed: 0), count: shards)

        let shardRows = (batchSize + shards - 1) / shards
        network.reserve(rows: shardRows, shards: shards, parameterGradients: true)
        objective.prepare(network: network, shards: shards, rows: shardRows, features: features)
        makeBodies()
    }

    deinit {
        labels.pointer.deallocate()
        predictions.pointer.deallocate()
        shardLoss.pointer.deallocate()
        generators.pointer.deinitialize(count: shards)
        generators.pointer.deallocate()
    }

    /// The shard bodies, created once; each shard touches only its rows, its network shard, its
    /// generator and its loss slot.
    private func makeBodies() {
        let (state, failure, batch, labels, predictions, shardLoss, generators) =
            (state, failure, batch, labels, predictions, shardLoss, generators)
        let (network, objective, optimizer, shards, features) = (network, objective, optimizer, shards, features)
        forwardBackward = { s in
            let inputs = state.value
            guard let order = inputs.order, let source = inputs.source, let sourceLabels = inputs.sourceLabels else { return }
            let part = WorkerPool.shardRange(inputs.rows, part: s, parts: shards)
            let x = batch.matrix(rows: part.count, columns: features, offset: part.lowerBound * features)
            let y = labels.pointer + part.lowerBound
            for r in 0..<part.count {
                let index = order[inputs.first + part.lowerBound + r]
                x.row(r).update(from: source.row(index), count: features)
                y[r] = sourceLabels[index]
            }
            do {
                shardLoss.pointer[s] = try objective.lossAndGradients(
                    x, labels: y, network: network, shard: s, gradientScale: 1 / Float(inputs.rows),
                    predictions: predictions.pointer + part.lowerBound, generator: &generators.pointer[s])
            } catch {
                failure.record(error)
            }
        }
        let parameterCount = network.parameterCount
        reduce = { s in
            network.reduceShardGradients(count: shards, range: WorkerPool.shardRange(parameterCount, part: s, parts: shards, alignment: 16))
        }
        update = { s in
            optimizer.update(parameters: network.parameters, gradients: network.gradients,
                             range: WorkerPool.shardRange(parameterCount, part: s, parts: shards, alignment: 16),
                             step: optimizer.stepCount)
        }
        let (reduce, update) = (reduce!, update!)
        reduceAndUpdate = { s in
            reduce(s)
            update(s)
        }
    }

    /// Sets the data the next steps gather from (valid until the next call).
    func setSource(order: UnsafePointer<Int>, features source: MatrixRef, labels sourceLabels: UnsafePointer<Int>) {
        state.value.order = order
        state.value.source = source
        state.value.sourceLabels = sourceLabels
    }

    /// Runs one step on the examples `order[first..<first + rows]` at `learningRate`.
    /// - Returns: the batch's summed loss (not finite if training diverged; the update is then
    ///   skipped) and how many examples the network classified correctly before the update.
    func run(first: Int, rows: Int, learningRate: Float, noise: inout RandomGenerator) throws -> (loss: Double, correct: Int) {
        precondition(!network.hasPackedWeights, "a training step inside Sequential.withPackedWeights would leave the packed weights stale")
        state.value.first = first
        state.value.rows = rows
        let pool = network.pool
        pool.run(shards: shards, forwardBackward)
        try failure.rethrow()
        var loss = 0.0
        for s in 0..<shards { loss += shardLoss.pointer[s] }
        guard loss.isFinite else { return (loss, 0) }
        var correct = 0
        for r in 0..<rows where predictions.pointer[r] == labels.pointer[r] { correct += 1 }

        optimizer.learningRate = learningRate
        optimizer.stepCount += 1
        if clipNorm != nil || objective.modifiesReducedGradients {
            pool.run(shards: shards, reduce)
            objective.finishGradients(network.gradients, batchRows: rows, generator: &noise)
            if let clipNorm { clipGradientNorm(network.gradients, maxNorm: clipNorm) }
            pool.run(shards: shards, update)
        } else {
            pool.run(shards: shards, reduceAndUpdate)
        }
        return (loss, correct)
    }
}

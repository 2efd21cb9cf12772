import Dispatch
import NeuralNet
import TensorCore
import Training

/// Training inside threat experiments: a recipe run on an exact set of examples (no validation
/// split, so membership is exactly the set given), and many such runs at once.
public enum ModelTraining {
    /// A network trained with `recipe` (its seed replaced by `seed`; its validation fraction and
    /// robustness monitor unused: every example of `data` trains) on `pool`'s threads.
    /// - Returns: the network and, for DP-SGD recipes, the privacy guarantee it reached.
    /// - Parameter objective: replaces the recipe's objective (soft targets: `SoftTargetObjective`).
    public static func train(_ recipe: TrainingRecipe, seed: UInt64, on data: LabeledData, objective: (any TrainingObjective)? = nil,
                             pool: WorkerPool = .shared) throws -> (network: Sequential, privacy: RDPAccountant.Guarantee?) {
        var configuration = recipe.trainerConfiguration
        configuration.seed = seed
        let trainer = try Trainer(configuration: configuration, objective: try objective ?? recipe.objective.makeObjective())
        trainer.network.pool = pool
        try trainer.train(on: data, validation: nil)
        var privacy: RDPAccountant.Guarantee?
        if objective == nil, case .dpSGD(let spec) = recipe.objective {
            privacy = PrivacyMonitor(spec: spec, batchSize: recipe.batchSize, trainingExamples: data.count, objective: trainer.objective)
                .guarantee(epochs: trainer.completedEpochs)
        }
        return (trainer.network, privacy)
    }

    /// Checks that `recipe`'s architecture fits the data's features and classes.
    /// - Parameter what: the model, for the message ("the model", "target standard's model").
    public static func checkFit(_ recipe: TrainingRecipe, train: LabeledData, test: LabeledData, what: String = "the model") throws {
        let width = recipe.architecture.inputWidth
        guard train.featureCount == width, test.featureCount == width else {
            throw ThreatError.dataMismatch("\(what) expects \(width) features, the training data has \(train.featureCount) and the test data "
                                           + "\(test.featureCount); change the recipe's architecture or the data")
        }
        let classes = max(train.classCount, test.classCount)
        guard classes <= recipe.architecture.classCount else {
            throw ThreatError.dataMismatch("\(what) has \(recipe.architecture.classCount) classes, the data \(classes); change the recipe's architecture")
        }
    }

    /// Runs `body(i, pool)` for every i in `0..<count` on `threads` threads, each with its own
    /// one-thread worker pool (independent small models train faster side by side than one at a
    /// time on both cores). Results come back in index order; each body's numbers depend only on
    /// its index, never on which thread ran it.
    /// `progress(done, count)` is called with 0 before the first body and after each one (from the
    /// worker threads, one call at a time, in increasing order).
    /// - Throws: the first error a body threw (no new runs start after it).
    public static func parallel<Result: Sendable>(count: Int, threads: Int, progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in },
                                                  _ body: @escaping @Sendable (Int, WorkerPool) throws -> Result) throws -> [Result] {
        _ = WorkerPool.shared  // keeps OpenBLAS single-threaded
        let threads = max(1, min(threads, count))
        progress(0, count)
        let next = Locked(0)
        let results = Locked([Int: Result]())
        let failure = Locked<(any Error)?>(nil)
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            let pool = WorkerPool(threadCount: 1)
            while failure.withLock({ $0 == nil }) {
                let index = next.withLock { value -> Int in
                    defer { value += 1 }
                    return value
                }
                guard index < count else { return }
                do {
                    let result = try body(index, pool)
                    // Reported under the lock, so the counts arrive in order.
                    results.withLock { all in
                        all[index] = result
                        progress(all.count, count)
                    }
                } catch {
                    failure.withLock { if $0 == nil { $0 = error } }
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        return results.withLock { all in (0..<count).map { all[$0]! } }
    }
}

extension TrainingRecipe {
    /// The recipe as threat experiments run it: every model's seed derives from the experiment's,
    /// and it trains on exactly the set it is given (no validation split, no robustness monitor).
    /// Reports record this form, so recipes that differ only in those unused fields compare.
    public var asRunByThreatExperiments: TrainingRecipe {
        var recipe = self
        recipe.seed = 0
        recipe.validationFraction = 0
        recipe.robustEvaluationExamples = 0
        return recipe
    }
}

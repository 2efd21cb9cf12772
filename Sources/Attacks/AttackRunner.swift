import Foundation
import NeuralNet
import TensorCore

/// The result of attacking a dataset: adversarial inputs, predictions and perturbation sizes.
public struct AttackOutcome: Sendable {
    public let attack: String
    public let norm: Norm
    public let epsilon: Float
    /// What the attack aimed at (targets, label source).
    public let goal: AttackGoal
    /// (n, features)
    public let adversarial: Tensor
    public let labels: [Int]
    public let cleanPredictions: [Int]
    /// The model's predictions for the returned adversarial inputs (a fresh forward pass on them,
    /// not the attack's own bookkeeping).
    public let adversarialPredictions: [Int]
    /// Targets of a targeted attack (−1 where an input was not attacked).
    public let targets: [Int]?
    /// ‖x_adv − x‖ in the attack's norm, per input.
    public let perturbationNorms: [Float]
    /// Model evaluations spent per input by a query-based attack (all 0 for gradient attacks).
    public let queries: [Int]
    /// Iterative attacks in evaluation: the iteration (or query) at which each input was first
    /// fooled, 0 at its start, −1 never (see `AttackRowResults.fooledAt`); nil for single-step attacks.
    public let fooledAt: [Int]?

    /// For the AutoAttack suite: the stage (1…) that fooled each input, 0 misclassified clean, −1 robust.
    public var suiteStages: [Int]?
    /// For minimum-norm attacks: the smallest perturbation norm found per input (∞ none, 0 misclassified clean).
    public var minimalNorms: [Float]?

    /// Minimum-norm attacks: the median minimal norm over the inputs classified correctly clean (∞
    /// if fewer than half were fooled at all), and robust accuracy at each `epsilon`, which the
    /// minimal norms determine: an input is robust at ε if it is correct clean and its minimal
    /// norm exceeds ε.
    public func minimalNormSummary(epsilons: [Float]) -> (median: Float, curve: [(epsilon: Float, accuracy: Proportion)])? {
        guard let minimalNorms else { return nil }
        let correct = (0..<n).filter { cleanPredictions[$0] == labels[$0] }.map { minimalNorms[$0] }.sorted()
        let median = correct.isEmpty ? Float.infinity : correct[(correct.count - 1) / 2]
        let curve = epsilons.map { e in (e, Proportion(successes: correct.filter { $0 > e }.count, trials: n)) }
        return (median, curve)
    }

    /// Robust accuracy had the attack stopped after `iterations` iterations (queries for Square): an
    /// input counts as fooled if the attack fooled it by then.
    public func robustAccuracy(afterIterations iterations: Int) -> Proportion? {
        guard let fooledAt else { return nil }
        let robust = (0..<n).filter { i in cleanPredictions[i] == labels[i] && !(fooledAt[i] >= 0 && fooledAt[i] <= iterations) }
        return Proportion(successes: robust.count, trials: n)
    }
    /// Seconds spent crafting (and classifying) the adversarial inputs.
    public let seconds: Double

    public var n: Int { labels.count }
    public var cleanCorrect: Int { zip(cleanPredictions, labels).filter { $0 == $1 }.count }
    public var adversarialCorrect: Int { zip(adversarialPredictions, labels).filter { $0 == $1 }.count }
    public var cleanAccuracy: Proportion { Proportion(successes: cleanCorrect, trials: n) }
    /// Adversarial inputs classified correctly, whatever the clean prediction was.
    public var adversarialAccuracy: Proportion { Proportion(successes: adversarialCorrect, trials: n) }

    /// Per input: correct on the clean input AND on the adversarial one. This is robust accuracy
    /// as RobustBench and AutoAttack count it: an input the model gets wrong is not robust, even if
    /// the attack happens to move it to the right class.
    public var robust: [Bool] {
        (0..<n).map { cleanPredictions[$0] == labels[$0] && adversarialPredictions[$0] == labels[$0] }
    }
    public var robustCorrect: Int { robust.filter { $0 }.count }
    /// Robust accuracy: the fraction of inputs classified correctly both clean and attacked.
    public var robustAccuracy: Proportion { Proportion(successes: robustCorrect, trials: n) }

    /// Whether the attack fooled the model on each input: untargeted, a correctly classified input
    /// is now misclassified; targeted, an attacked input is now classified as its target.
    public var fooled: [Bool] {
        (0..<n).map { i in
            if let targets { return targets[i] >= 0 && adversarialPredictions[i] == targets[i] }
            return cleanPredictions[i] == labels[i] && adversarialPredictions[i] != labels[i]
        }
    }

    /// Untargeted: fooled / correctly classified clean inputs. Targeted: fooled / attacked inputs.
    public var successRate: Proportion {
        let eligible = targets.map { t in t.filter { $0 >= 0 }.count } ?? cleanCorrect
        return Proportion(successes: fooled.filter { $0 }.count, trials: eligible)
    }

    /// Mean queries over the inputs the attack worked on (correctly classified clean, or attacked
    /// when targeted), and the median over the inputs it fooled; nil for gradient attacks.
    public var queryStatistics: (mean: Double, medianFooled: Double?)? {
        guard queries.contains(where: { $0 > 0 }) else { return nil }
        let attacked = (0..<n).filter { i in targets.map { $0[i] >= 0 } ?? (cleanPredictions[i] == labels[i]) }
        let fooledQueries = (0..<n).filter { fooled[$0] }.map { queries[$0] }.sorted()
        let mean = attacked.isEmpty ? 0 : Double(attacked.map { queries[$0] }.reduce(0, +)) / Double(attacked.count)
        let median: Double? = fooledQueries.isEmpty ? nil
            : (fooledQueries.count % 2 == 1 ? Double(fooledQueries[fooledQueries.count / 2])
               : Double(fooledQueries[fooledQueries.count / 2 - 1] + fooledQueries[fooledQueries.count / 2]) / 2)
        return (mean, median)
    }

    public var meanPerturbation: Double {
        perturbationNorms.isEmpty ? 0 : perturbationNorms.reduce(0) { $0 + Double($1) } / Double(perturbationNorms.count)
    }
    public var maxPerturbation: Float { perturbationNorms.max() ?? 0 }
    public var imagesPerSecond: Double { Double(n) / max(seconds, 1e-9) }
}

/// Runs an attack over a dataset in batches, each split into shards that run on the classifier's
/// worker pool. Random numbers come from (seed, batch, shard), so results do not depend on the
/// thread count.
public final class AttackRunner {
    public let classifier: any DifferentiableClassifier
    public let batchSize: Int
    private let shards = WorkerPool.defaultShardCount
    /// Workspaces of the last attack type run, reused while the type and size fit.
    private var workspaces: [any AttackWorkspace] = []

    public init(classifier: any DifferentiableClassifier, batchSize: Int = 500) {
        precondition(batchSize >= 1, "batch size must be positive")
        self.classifier = classifier
        self.batchSize = batchSize
    }

    /// Predicted classes of every row of `features` (evaluation mode), in batches of `batchSize`.
    public func predictions(_ features: Tensor) -> [Int] {
        // With the products `run` uses, so that clean and adversarial predictions agree on
        // unchanged inputs (packed and OpenBLAS products round differently).
        guard let network = classifier as? Sequential else { return classifier.predictions(on: features, batchSize: batchSize) }
        return network.withPackedWeights { classifier.predictions(on: features, batchSize: batchSize) }
    }

    /// Attacks every example of `data`.
    /// - Parameters:
    ///   - goal: untargeted (away from the true labels or the model's predictions) or targeted.
    ///   - seed: seeds random starts and random targets.
    ///   - cleanPredictions: the model's predictions on `data`, if the caller already has them
    ///     (a harness running many attacks on one model computes them once).
    /// - Throws: `AttackError` for an attack that cannot run on this model, or a broken invariant.
    public func run(_ attack: any Attack, on data: LabeledData, goal: AttackGoal = .untargeted, seed: UInt64,
                    cleanPredictions known: [Int]? = nil) throws -> AttackOutcome {
        guard let network = classifier as? Sequential else { return try runOpened(attack, on: data, goal: goal, seed: seed, cleanPredictions: known) }
        // The weights stay constant during an attack: pack them once for its products.
        return try network.withPackedWeights { try runOpened(attack, on: data, goal: goal, seed: seed, cleanPredictions: known) }
    }

    /// `run` with the attack's concrete type (so its workspace type is known).
    private func runOpened<A: Attack>(_ attack: A, on data: LabeledData, goal: AttackGoal, seed: UInt64,
                                      cleanPredictions known: [Int]?) throws -> AttackOutcome {
        let (n, d) = (data.count, data.featureCount)
        let classes = classifier.classCount
        try require(d == classifier.inputWidth, "data width", d, "must equal the model's \(classifier.inputWidth) input features")
        if let label = data.labelOutside(classes: classes) {
            throw AttackError.invalidParameter(name: "label", value: "\(label)", requirement: "the model has only \(classes) classes; use data labelled 0…\(classes - 1)")
        }
        try attack.validate(goal: goal, classes: classes)
        let queryOnly = classifier as? QueryOnlyClassifier
        if queryOnly != nil && !(attack is Square) {
            throw AttackError.invalidParameter(name: "attack", value: attack.description,
                                               requirement: "runs on the model's gradients; a query-only model takes score-based attacks (square) only")
        }
        try Self.checkInputRange(data.features)
        if let spec = (classifier as? Sequential)?.spec {
            do { try spec.checkWorkspace(rows: (batchSize + shards - 1) / shards, what: "an attack batch of \(batchSize)") } catch {
                throw AttackError.invalidParameter(name: "batch size", value: "\(batchSize)", requirement: "\(error)")
            }
        }
        try require(known == nil || known!.count == n, "clean predictions", known?.count ?? 0, "must have one entry per example (\(n))")
        let started = DispatchTime.now().uptimeNanoseconds
        let cleanPredictions = known ?? predictions(data.features)
        try queryOnly?.rethrow()
        let attackLabels = goal.labels == .trueLabels ? data.labels : cleanPredictions
        let targets = selectTargets(goal.targets, labels: data.labels, classes: classes, seed: seed)
        let workspaces = reserveWorkspaces(for: attack, features: d)

        // Outputs are written by the shards through raw buffers (disjoint rows per shard).
        let output = FloatBuffer(count: n * d)
        let predicted = SendablePointer<Int>(allocateFilled(n, with: 0))
        let normOut = SendablePointer<Float>(allocateFilled(n, with: 0))
        let queryOut = SendablePointer<Int>(allocateFilled(n, with: 0))
        let fooledOut = SendablePointer<Int>(allocateFilled(n, with: -1))
        let minimalOut = SendablePointer<Float>(allocateFilled(n, with: Float.infinity))
        defer { predicted.pointer.deallocate(); normOut.pointer.deallocate(); queryOut.pointer.deallocate(); fooledOut.pointer.deallocate(); minimalOut.pointer.deallocate() }
        let failure = ShardFailure()
        // For a fixed target, inputs already of that class are not attacked: their "target" is a
        // placeholder (their own label) and they are restored to the clean input afterwards.
        let attackTargets = targets.map { t in zip(t, data.labels).map { $0 >= 0 ? $0 : $1 } } ?? []
        try data.features.withReadOnlyMatrix { clean in
            try attackLabels.withUnsafeBufferPointer { labelBuffer in
                try attackTargets.withUnsafeBufferPointer { targetBuffer in
                    let labels = SendablePointer(UnsafeMutablePointer(mutating: labelBuffer.baseAddress!))
                    let targetBase = targets == nil ? nil : targetBuffer.baseAddress.map { SendablePointer(UnsafeMutablePointer(mutating: $0)) }
                    let outputs = output.matrix(rows: n, columns: d)
                    let state = ShardLoopState((start: 0, chunk: 0, batch: UInt64(0)))
                    let (classifier, shards) = (self.classifier, self.shards)
                    // Created once; reads the batch from `state`, so the loop allocates nothing.
                    let body: @Sendable (Int) -> Void = { s in
                        let (start, chunk, batch) = state.value
                        let part = WorkerPool.shardRange(chunk, part: s, parts: shards)
                        guard !part.isEmpty else { return }
                        let rows = (start + part.lowerBound)..<(start + part.upperBound)
                        var generator = RandomGenerator(seed: seed, stream: .attack, index: batch << 8 | UInt64(s))
                        do {
                            try attack.perturb(clean.rows(rows), labels: labels.pointer + rows.lowerBound,
                                               targets: targetBase.map { UnsafePointer($0.pointer + rows.lowerBound) },
                                               into: outputs.rows(rows), classifier: classifier, shard: s,
                                               workspace: workspaces[s].value, generator: &generator)
                        } catch {
                            failure.record(error)
                            return
                        }
                        let results = workspaces[s].value.results
                        (normOut.pointer + rows.lowerBound).update(from: results.distances(attack.norm), count: rows.count)
                        (queryOut.pointer + rows.lowerBound).update(from: results.queries, count: rows.count)
                        (fooledOut.pointer + rows.lowerBound).update(from: results.fooledAt, count: rows.count)
                        (minimalOut.pointer + rows.lowerBound).update(from: results.minimalNorm, count: rows.count)
                        // Accuracy is decided by a fresh forward pass on the returned examples.
                        Kernels.argmaxRows(classifier.logits(outputs.rows(rows), shard: s), into: predicted.pointer + rows.lowerBound)
                    }
                    while state.value.start < n {
                        state.value.chunk = min(batchSize, n - state.value.start)
                        classifier.pool.run(shards: shards, body)
                        try failure.rethrow()
                        try queryOnly?.rethrow()
                        state.value.start += state.value.chunk
                        state.value.batch += 1
                    }
                }
            }
        }
        var adversarial = Tensor(shape: [n, d], scalars: output.array)
        var adversarialPredictions = Array(UnsafeBufferPointer(start: predicted.pointer, count: n))
        var norms = Array(UnsafeBufferPointer(start: normOut.pointer, count: n))
        if let targets {
            for i in 0..<n where targets[i] < 0 {
                adversarial.scalars.replaceSubrange((i * d)..<((i + 1) * d), with: data.features.scalars[(i * d)..<((i + 1) * d)])
                adversarialPredictions[i] = cleanPredictions[i]
                norms[i] = 0
                fooledOut.pointer[i] = -1
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let stages = attack is AutoAttackSuite ? Array(UnsafeBufferPointer(start: fooledOut.pointer, count: n)) : nil
        var outcome = AttackOutcome(attack: attack.description, norm: attack.norm, epsilon: attack.epsilon, goal: goal,
                             adversarial: adversarial, labels: data.labels, cleanPredictions: cleanPredictions,
                             adversarialPredictions: adversarialPredictions, targets: targets,
                             perturbationNorms: norms, queries: Array(UnsafeBufferPointer(start: queryOut.pointer, count: n)),
                             fooledAt: attack is FGSM || attack is AutoAttackSuite ? nil : Array(UnsafeBufferPointer(start: fooledOut.pointer, count: n)), seconds: seconds)
        outcome.suiteStages = stages
        if attack is any MinimumNormAttack { outcome.minimalNorms = Array(UnsafeBufferPointer(start: minimalOut.pointer, count: n)) }
        return outcome
    }

    /// Attacks perturb inputs in [0, 1] (every step clamps to it): data outside it cannot be attacked
    /// within ε, so it is refused up front rather than failing the ε-ball check later.
    /// - Throws: `AttackError.inputsOutOfRange` with the range found.
    public static func checkInputRange(_ features: Tensor) throws {
        var lowest = Float.infinity, highest = -Float.infinity
        for value in features.scalars {
            lowest = min(lowest, value)
            highest = max(highest, value)
        }
        if !features.scalars.isEmpty && (lowest < 0 || highest > 1 || !lowest.isFinite || !highest.isFinite) {
            throw AttackError.inputsOutOfRange(lowest: lowest, highest: highest)
        }
    }

    /// The target of each input (−1 for inputs already of a fixed target class), or nil untargeted.
    private func selectTargets(_ selection: TargetSelection?, labels: [Int], classes: Int, seed: UInt64) -> [Int]? {
        switch selection {
        case .none:
            return nil
        case .fixed(let target)?:
            return labels.map { $0 == target ? -1 : target }
        case .random?:
            var generator = RandomGenerator(seed: seed, stream: .targetSelection)
            return labels.map { label in
                let draw = generator.nextInt(below: classes - 1)
                return draw >= label ? draw + 1 : draw
            }
        }
    }

    /// One workspace per shard for `attack`, reusing the previous run's when they fit.
    private func reserveWorkspaces<A: Attack>(for attack: A, features: Int) -> [WorkspaceBox<A.Workspace>] {
        let shardRows = (batchSize + shards - 1) / shards
        classifier.reserve(rows: shardRows, shards: shards)
        let reusable = workspaces.compactMap { $0 as? A.Workspace }
            .filter { $0.capacity >= shardRows && $0.features == features }
        let fresh = reusable.count == shards ? reusable : (0..<shards).map { _ in attack.makeWorkspace(rows: shardRows, features: features) }
        workspaces = fresh
        return fresh.map(WorkspaceBox.init)
    }
}

/// A workspace handed to one shard body. `@unchecked Sendable`: shard s's body is the only code that
/// touches workspace s while a job runs (the pool runs each shard once, on one thread).
private struct WorkspaceBox<W: AttackWorkspace>: @unchecked Sendable {
    let value: W
}

extension RandomStream {
    /// Attack random starts, per batch and shard.
    public static let attack = RandomStream(id: 5, name: "attack")
    /// Random target classes of targeted attacks.
    public static let targetSelection = RandomStream(id: 7, name: "target selection")
}

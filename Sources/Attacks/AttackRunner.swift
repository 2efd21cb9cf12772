import Foundation
import Synchronization
import NeuralNet
import TensorCore

/// Which labels an untargeted attack pushes away from.
public enum LabelSource: String, Sendable, Codable {
    /// The true labels.
    case trueLabels = "true"
    /// The model's clean predictions, which avoids label leaking (Kurakin et al., 2017).
    case predictions
}

/// The class each input is pushed toward in a targeted attack.
public enum TargetSelection: Sendable, Equatable, Codable {
    /// The same class for every input (inputs of that class are left unchanged and not counted).
    case fixed(Int)
    /// A class drawn uniformly from the classes other than the true label (seeded).
    case random
}

/// The result of attacking a dataset: adversarial inputs, predictions and perturbation sizes.
public struct AttackOutcome: Sendable {
    public let attack: String
    public let norm: Norm
    public let epsilon: Float
    /// (n, features)
    public let adversarial: Tensor
    public let labels: [Int]
    public let cleanPredictions: [Int]
    public let adversarialPredictions: [Int]
    /// Targets of a targeted attack (−1 where an input was not attacked).
    public let targets: [Int]?
    /// ‖x_adv − x‖ in the attack's norm, per input.
    public let perturbationNorms: [Float]
    /// Seconds spent crafting (and classifying) the adversarial inputs.
    public let seconds: Double

    public var n: Int { labels.count }
    public var cleanCorrect: Int { zip(cleanPredictions, labels).filter { $0 == $1 }.count }
    public var adversarialCorrect: Int { zip(adversarialPredictions, labels).filter { $0 == $1 }.count }
    public var cleanAccuracy: Proportion { Proportion(successes: cleanCorrect, trials: n) }
    public var adversarialAccuracy: Proportion { Proportion(successes: adversarialCorrect, trials: n) }

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
    public let classifier: any Classifier
    public let batchSize: Int
    private let shards = WorkerPool.defaultShardCount
    private var workspaces: [AttackWorkspace] = []

    public init(classifier: any Classifier, batchSize: Int = 500) {
        precondition(batchSize >= 1, "batch size must be positive")
        self.classifier = classifier
        self.batchSize = batchSize
    }

    /// Predicted classes of every row of `features` (evaluation mode), in batches of `batchSize`.
    public func predictions(_ features: Tensor) -> [Int] {
        classifier.predictions(on: features, batchSize: batchSize)
    }

    /// Attacks every example of `data`.
    /// - Parameters:
    ///   - labelSource: push away from the true labels or from the model's predictions (untargeted).
    ///   - targets: make the attack targeted.
    ///   - seed: seeds random starts and random targets.
    ///   - cleanPredictions: the model's predictions on `data`, if the caller already has them
    ///     (a harness running many attacks on one model computes them once).
    /// - Throws: `AttackError` for an attack that cannot run on this model, or a broken invariant.
    public func run(_ attack: any Attack, on data: LabeledData, labelSource: LabelSource = .trueLabels,
                    targets selection: TargetSelection? = nil, seed: UInt64, cleanPredictions known: [Int]? = nil) throws -> AttackOutcome {
        let (n, d) = (data.count, data.featureCount)
        let classes = classifier.classCount
        try require(d == classifier.inputWidth, "data width", d, "must equal the model's \(classifier.inputWidth) input features")
        if let label = data.labels.first(where: { $0 >= classes }) {
            throw AttackError.invalidParameter(name: "label", value: "\(label)", requirement: "the model has only \(classes) classes; use data labelled 0…\(classes - 1)")
        }
        try require(classes >= attack.loss.minimumClasses(targeted: selection != nil), "loss", attack.loss.rawValue,
                    "needs at least \(attack.loss.minimumClasses(targeted: selection != nil)) classes, the model has \(classes)")
        if case .fixed(let target) = selection {
            try require(target >= 0 && target < classes, "target class", target, "must be between 0 and \(classes - 1)")
        }
        let started = DispatchTime.now().uptimeNanoseconds
        precondition(known == nil || known!.count == n, "clean predictions for \(known!.count) examples, data has \(n)")
        let cleanPredictions = known ?? predictions(data.features)
        let attackLabels = labelSource == .trueLabels ? data.labels : cleanPredictions
        var targets: [Int]? = nil
        switch selection {
        case .none: break
        case .fixed(let target)?:
            targets = data.labels.map { $0 == target ? -1 : target }
        case .random?:
            var generator = RandomGenerator(seed: seed, stream: .sampling)
            targets = data.labels.map { label in
                let draw = generator.nextInt(below: classes - 1)
                return draw >= label ? draw + 1 : draw
            }
        }

        let shardRows = (batchSize + shards - 1) / shards
        classifier.reserve(rows: shardRows, shards: shards)
        while workspaces.count < shards { workspaces.append(AttackWorkspace(rows: shardRows, features: d)) }
        for s in 0..<shards where workspaces[s].capacity < shardRows || workspaces[s].features != d {
            workspaces[s] = AttackWorkspace(rows: shardRows, features: d)
        }

        // Outputs are written by the shards through raw buffers (disjoint rows per shard).
        let output = FloatBuffer(count: n * d)
        let predicted = UnsafeMutablePointer<Int>.allocate(capacity: max(n, 1))
        let normOut = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
        defer { predicted.deallocate(); normOut.deallocate() }
        let failures = Mutex<(any Error)?>(nil)
        // For a fixed target, inputs already of that class are not attacked: their "target" is a
        // placeholder (their own label) and they are restored to the clean input afterwards.
        let attackTargets = targets.map { t in zip(t, data.labels).map { $0 >= 0 ? $0 : $1 } } ?? []
        try data.features.withReadOnlyMatrix { clean in
            try attackLabels.withUnsafeBufferPointer { labelBuffer in
                try attackTargets.withUnsafeBufferPointer { targetBuffer in
                    let labels = labelBuffer.baseAddress!
                    let targetBase = targets == nil ? nil : targetBuffer.baseAddress
                    let outputs = output.matrix(rows: n, columns: d)
                    var start = 0, chunk = 0, batchIndex: UInt64 = 0
                    let (workspaces, classifier, shards) = (self.workspaces, self.classifier, self.shards)
                    let body: (Int) -> Void = { s in
                        let part = WorkerPool.shardRange(chunk, part: s, parts: shards)
                        guard !part.isEmpty else { return }
                        let rows = (start + part.lowerBound)..<(start + part.upperBound)
                        var generator = RandomGenerator(seed: seed, stream: .attack, index: batchIndex << 8 | UInt64(s))
                        do {
                            try attack.perturb(clean.rows(rows), labels: labels + rows.lowerBound,
                                               targets: targetBase.map { $0 + rows.lowerBound },
                                               into: outputs.rows(rows), classifier: classifier, shard: s,
                                               workspace: workspaces[s], generator: &generator)
                        } catch {
                            failures.withLock { $0 = error }
                            return
                        }
                        let distances = attack.norm == .linf ? workspaces[s].linf.pointer : workspaces[s].l2.pointer
                        (normOut + rows.lowerBound).update(from: distances, count: rows.count)
                        (predicted + rows.lowerBound).update(from: workspaces[s].resultPredictions, count: rows.count)
                    }
                    while start < n {
                        chunk = min(batchSize, n - start)
                        classifier.pool.run(shards: shards, body)
                        if let failure = failures.withLock({ $0 }) { throw failure }
                        start += chunk
                        batchIndex += 1
                    }
                }
            }
        }
        var adversarial = Tensor(shape: [n, d], scalars: output.array)
        var adversarialPredictions = Array(UnsafeBufferPointer(start: predicted, count: n))
        var norms = Array(UnsafeBufferPointer(start: normOut, count: n))
        if let targets {
            for i in 0..<n where targets[i] < 0 {
                adversarial.scalars.replaceSubrange((i * d)..<((i + 1) * d), with: data.features.scalars[(i * d)..<((i + 1) * d)])
                adversarialPredictions[i] = cleanPredictions[i]
                norms[i] = 0
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return AttackOutcome(attack: attack.description, norm: attack.norm, epsilon: attack.epsilon, adversarial: adversarial,
                             labels: data.labels, cleanPredictions: cleanPredictions,
                             adversarialPredictions: adversarialPredictions, targets: targets,
                             perturbationNorms: norms, seconds: seconds)
    }
}

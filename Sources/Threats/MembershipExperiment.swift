import Foundation
import NeuralNet
import TensorCore
import Training

/// A membership-inference experiment as a library job (`bulwark threat membership`): for each
/// target of the configuration, train the target model on a random half of its pool and (for
/// LiRA) the shadow models, score every pool record with every attack, and measure how well the
/// scores separate members from non-members (ROC AUC, TPR at 0.1% and 1% FPR).
///
/// Every model's seed and training set derive from the configuration's seed, the target's index
/// and the model's index, so runs repeat exactly, whatever the thread count.
public struct MembershipExperiment: Sendable {
    public var configuration: MembershipConfiguration
    /// Called as models finish training: (models done, models to train), from worker threads.
    public var progress: @Sendable (Int, Int) -> Void = { _, _ in }

    public init(configuration: MembershipConfiguration) {
        self.configuration = configuration
    }

    /// The FPRs the results report TPR at.
    public static let reportedFPRs = [0.001, 0.01]

    public struct Result: Sendable {
        public var targets: [TargetResult]
        public var seconds: Double
    }

    public struct TargetResult: Sendable {
        public var name: String
        public var recipe: TrainingRecipe
        public var members: Int
        public var nonMembers: Int
        /// Accuracy of the target model on the test set (with per-example outcomes) and on its members.
        public var testAccuracy: ThreatProportion
        public var memberAccuracy: Proportion
        public var privacy: RDPAccountant.Guarantee?
        public var attacks: [AttackResult]
        /// Seconds spent training the target and shadow models (summed over the models, which may
        /// have trained side by side or on other machines).
        public var trainingSeconds: Double
        public var modelsTrained: Int
    }

    public struct AttackResult: Sendable {
        public var attack: MembershipAttack
        public var roc: ROCCurve
        /// Per pool record: the attack's score and whether the record was a member.
        public var scores: [Double]
        public var isMember: [Bool]

        public func tpr(atFPR fpr: Double) -> Double { roc.tpr(atFPR: fpr) }
    }

    public func run(train: LabeledData, test: LabeledData, log: (String) -> Void = { _ in }) throws -> Result {
        let started = Date()
        try check(train: train, test: test)
        let trained = try self.train(units(), train: train, test: test, log: log)
        var result = try score(trained, train: train, test: test)
        result.seconds = Date().timeIntervalSince(started)
        return result
    }

    /// Checks that the data fits every target, before any training.
    public func check(train: LabeledData, test: LabeledData) throws {
        try configuration.validate()
        for target in configuration.targets {
            guard target.pool <= train.count else {
                throw ThreatError.dataMismatch("target \(target.name) needs a pool of \(target.pool) training examples, the data has \(train.count); "
                                               + "lower \"pool\" or use more data")
            }
            try ModelTraining.checkFit(target.recipe, train: train, test: test, what: "target \(target.name)'s model")
        }
    }

    /// One model the experiment trains: target `target`'s model (`model` 0) or one of its shadow
    /// models (1…).
    public struct ModelUnit: Hashable, Codable, Sendable, CustomStringConvertible {
        public let target: Int
        public let model: Int

        public init(target: Int, model: Int) {
            self.target = target
            self.model = model
        }

        public var description: String { model == 0 ? "target \(target)'s model" : "target \(target)'s shadow \(model)" }
    }

    /// Shadow models per target (0 when no attack needs them).
    var shadowCount: Int { configuration.attacks.contains(where: \.needsShadowModels) ? configuration.shadows : 0 }

    /// Every model the experiment trains, target by target: the order shards deal them out in.
    public func units() -> [ModelUnit] {
        configuration.targets.indices.flatMap { t in (0...shadowCount).map { ModelUnit(target: t, model: $0) } }
    }

    /// What scoring needs from one trained model: its logits on the target's pool and, for the
    /// target model, its test outcomes and privacy guarantee. In a part file the logits are
    /// little-endian Float32 in base64 (bit-exact).
    public struct TrainedModel: Codable, Equatable, Sendable {
        public var unit: ModelUnit
        /// pool × classes.
        public var logits: Tensor
        public var testOutcomes: [Bool]?
        public var privacy: RDPAccountant.Guarantee?
        public var seconds: Double

        init(unit: ModelUnit, logits: Tensor, testOutcomes: [Bool]?, privacy: RDPAccountant.Guarantee?, seconds: Double) {
            self.unit = unit
            self.logits = logits
            self.testOutcomes = testOutcomes
            self.privacy = privacy
            self.seconds = seconds
        }

        enum CodingKeys: String, CodingKey {
            case unit, logits, rows, classes, seconds, privacy
            case testOutcomes = "test_outcomes"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(unit, forKey: .unit)
            var bytes = [UInt8]()
            bytes.reserveCapacity(logits.scalars.count * 4)
            for value in logits.scalars { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
            try c.encode(Data(bytes).base64EncodedString(), forKey: .logits)
            try c.encode(logits.shape[0], forKey: .rows)
            try c.encode(logits.shape[1], forKey: .classes)
            try c.encodeIfPresent(testOutcomes, forKey: .testOutcomes)
            try c.encodeIfPresent(privacy, forKey: .privacy)
            try c.encode(seconds, forKey: .seconds)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            unit = try c.decode(ModelUnit.self, forKey: .unit)
            let (rows, classes) = (try c.decode(Int.self, forKey: .rows), try c.decode(Int.self, forKey: .classes))
            guard rows > 0, classes > 0, rows <= 100_000_000 / classes, let data = Data(base64Encoded: try c.decode(String.self, forKey: .logits)),
                  data.count == rows * classes * 4 else {
                throw DecodingError.dataCorruptedError(forKey: .logits, in: c, debugDescription: "the logits are not \(rows) × \(classes) Float32 values")
            }
            let values = data.withUnsafeBytes { raw in
                (0..<(rows * classes)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
            }
            logits = Tensor(shape: [rows, classes], scalars: values)
            testOutcomes = try c.decodeIfPresent([Bool].self, forKey: .testOutcomes)
            privacy = try c.decodeIfPresent(RDPAccountant.Guarantee.self, forKey: .privacy)
            seconds = try c.decode(Double.self, forKey: .seconds)
        }
    }

    /// Trains `units` (some or all of `units()`), several at once on one-thread pools. Each model's
    /// seed and training set derive from the configuration's seed and its unit, so a model trained
    /// in any shard is the same.
    public func train(_ units: [ModelUnit], train: LabeledData, test: LabeledData, log: (String) -> Void = { _ in }) throws -> [TrainedModel] {
        try check(train: train, test: test)
        let seed = configuration.seed, targets = configuration.targets, shadows = shadowCount
        for (t, target) in targets.enumerated() where units.contains(where: { $0.target == t }) {
            let count = units.filter { $0.target == t }.count
            log("\(target.name): training \(count) of its \(shadows + 1) models (target and shadows) on halves of \(target.pool) records "
                + "(\(target.recipe.objective.summary))")
        }
        return try ModelTraining.parallel(count: units.count, threads: configuration.threads, progress: progress) { i, workerPool in
            let started = Date()
            let unit = units[i]
            let target = targets[unit.target]
            let pool = train.prefix(target.pool)
            let membership = unit.model == 0 ? Self.targetMembership(records: pool.count, seed: seed, target: unit.target)
                : Self.shadowMembership(records: pool.count, shadows: shadows, seed: seed, target: unit.target)[unit.model - 1]
            let set = pool.subset(membership.indices.filter { membership[$0] })
            let (network, privacy) = try ModelTraining.train(target.recipe, seed: Self.modelSeed(seed, target: unit.target, model: unit.model),
                                                             on: set, pool: workerPool)
            let logits = try network.inferenceModel(pool: workerPool).logits(pool.features)
            let testOutcomes = unit.model == 0 ? zip(network.predictions(on: test.features), test.labels).map { $0 == $1 } : nil
            return TrainedModel(unit: unit, logits: logits, testOutcomes: testOutcomes, privacy: privacy, seconds: Date().timeIntervalSince(started))
        }
    }

    /// Scores every target's pool with every attack from its trained models (all of `units()`,
    /// in any order), and measures the attacks.
    /// - Throws: `ThreatError.dataMismatch` when a model is missing, repeated or does not fit its
    ///   pool, or its logits are not finite.
    public func score(_ trained: [TrainedModel], train: LabeledData, test: LabeledData) throws -> Result {
        var byUnit: [ModelUnit: TrainedModel] = [:]
        for model in trained {
            guard byUnit.updateValue(model, forKey: model.unit) == nil else { throw ThreatError.dataMismatch("\(model.unit) is given twice") }
        }
        let missing = units().filter { byUnit[$0] == nil }
        guard missing.isEmpty else {
            throw ThreatError.dataMismatch("missing trained models: " + missing.prefix(5).map(\.description).joined(separator: ", ")
                                           + (missing.count > 5 ? " and \(missing.count - 5) more" : ""))
        }
        guard byUnit.count == units().count else { throw ThreatError.dataMismatch("a trained model is not one this configuration trains") }
        let results = try configuration.targets.enumerated().map { t, target in
            try score(target, index: t, models: (0...shadowCount).map { byUnit[ModelUnit(target: t, model: $0)]! },
                      pool: train.prefix(target.pool), test: test)
        }
        return Result(targets: results, seconds: trained.map(\.seconds).reduce(0, +))
    }

    private func score(_ target: MembershipConfiguration.Target, index t: Int, models: [TrainedModel], pool: LabeledData,
                       test: LabeledData) throws -> TargetResult {
        let seed = configuration.seed
        let targetMembers = Self.targetMembership(records: pool.count, seed: seed, target: t)
        let shadowMembers = Self.shadowMembership(records: pool.count, shadows: shadowCount, seed: seed, target: t)
        let logits = try models.map { model -> Tensor in
            guard model.logits.shape == [pool.count, target.recipe.architecture.classCount] else {
                throw ThreatError.dataMismatch("\(model.unit): its logits are not \(pool.count) × \(target.recipe.architecture.classCount) values")
            }
            return model.logits
        }
        guard let testOutcomes = models[0].testOutcomes, testOutcomes.count == test.count else {
            throw ThreatError.dataMismatch("target \(target.name)'s model has no outcome for each of the \(test.count) test examples")
        }
        let targetLogits = logits[0]
        var predicted = [Int](repeating: 0, count: pool.count)
        targetLogits.withReadOnlyMatrix { logits in predicted.withUnsafeMutableBufferPointer { Kernels.argmaxRows(logits, into: $0.baseAddress!) } }
        let memberAccuracy = Proportion(
            successes: pool.labels.indices.filter { targetMembers[$0] && predicted[$0] == pool.labels[$0] }.count,
            trials: targetMembers.filter { $0 }.count)
        let targetPhi = MembershipAttack.scaledConfidence(logits: targetLogits, labels: pool.labels)
        let shadowPhi = logits.dropFirst().map { MembershipAttack.scaledConfidence(logits: $0, labels: pool.labels) }
        guard (targetPhi + shadowPhi.joined()).allSatisfy({ !$0.isNaN }) else {
            throw ThreatError.dataMismatch("target \(target.name): a model's logits are not finite (training diverged?); lower the learning rate or check the data")
        }
        let attacks = try configuration.attacks.map { attack -> AttackResult in
            let scores: [Double] = switch attack {
            case .liraOnline: LiRA.scores(target: targetPhi, shadows: shadowPhi, inShadow: shadowMembers, online: true)
            case .liraOffline: LiRA.scores(target: targetPhi, shadows: shadowPhi, inShadow: shadowMembers, online: false)
            default: MembershipAttack.scores(attack, logits: targetLogits, labels: pool.labels)
            }
            guard !scores.contains(where: \.isNaN) else {
                throw ThreatError.dataMismatch("target \(target.name): \(attack.rawValue) scores are not numbers (the model's logits overflow)")
            }
            return AttackResult(attack: attack, roc: ROCCurve(scores: scores, isMember: targetMembers), scores: scores, isMember: targetMembers)
        }
        let members = targetMembers.filter { $0 }.count
        return TargetResult(name: target.name, recipe: target.recipe, members: members, nonMembers: pool.count - members,
                            testAccuracy: ThreatProportion(outcomes: testOutcomes), memberAccuracy: memberAccuracy,
                            privacy: models[0].privacy, attacks: attacks, trainingSeconds: models.map(\.seconds).reduce(0, +),
                            modelsTrained: models.count)
    }

    /// The target's members: a seeded random half (⌊records/2⌋) of the pool.
    static func targetMembership(records: Int, seed: UInt64, target: Int) -> [Bool] {
        var order = Array(0..<records)
        var generator = RandomGenerator(seed: seed, stream: .membershipTarget, index: UInt64(target))
        generator.shuffle(&order)
        var members = [Bool](repeating: false, count: records)
        for r in order.prefix(records / 2) { members[r] = true }
        return members
    }

    /// Shadow training sets (shadows × records): each record is in exactly half of the shadow
    /// models, a seeded choice per record.
    static func shadowMembership(records: Int, shadows: Int, seed: UInt64, target: Int) -> [[Bool]] {
        guard shadows > 0 else { return [] }
        var result = [[Bool]](repeating: [Bool](repeating: false, count: records), count: shadows)
        var generator = RandomGenerator(seed: seed, stream: .membershipShadows, index: UInt64(target))
        var order = Array(0..<shadows)
        for r in 0..<records {
            generator.shuffle(&order)
            for s in order.prefix(shadows / 2) { result[s][r] = true }
        }
        return result
    }

    static func modelSeed(_ seed: UInt64, target: Int, model: Int) -> UInt64 {
        var generator = RandomGenerator(seed: seed, stream: .membershipModels, index: UInt64(target) << 32 | UInt64(model))
        return generator.next()
    }
}

extension RandomStream {
    /// Which pool records the target model of a membership experiment trains on.
    public static let membershipTarget = RandomStream("threats.membership.target")
    /// Which shadow models each pool record is in.
    public static let membershipShadows = RandomStream("threats.membership.shadows")
    /// Each target and shadow model's training seed.
    public static let membershipModels = RandomStream("threats.membership.models")
}

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
        /// Seconds spent training the target and shadow models.
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
        try configuration.validate()
        var results: [TargetResult] = []
        try check(train: train, test: test)
        for (t, target) in configuration.targets.enumerated() {
            results.append(try run(target, index: t, pool: train.prefix(target.pool), test: test, log: log))
        }
        return Result(targets: results, seconds: Date().timeIntervalSince(started))
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

    private func run(_ target: MembershipConfiguration.Target, index t: Int, pool: LabeledData, test: LabeledData,
                     log: (String) -> Void) throws -> TargetResult {
        let seed = configuration.seed
        let shadowCount = configuration.attacks.contains(where: \.needsShadowModels) ? configuration.shadows : 0
        let targetMembers = Self.targetMembership(records: pool.count, seed: seed, target: t)
        let shadowMembers = Self.shadowMembership(records: pool.count, shadows: shadowCount, seed: seed, target: t)
        let memberships = [targetMembers] + shadowMembers
        let recipe = target.recipe

        log("\(target.name): training the target and \(shadowCount) shadow models on halves of \(pool.count) records (\(recipe.objective.summary))")
        let trainingStarted = Date()
        let trained = try ModelTraining.parallel(count: memberships.count, threads: configuration.threads) { m, workerPool in
            let set = pool.subset(memberships[m].indices.filter { memberships[m][$0] })
            let (network, privacy) = try ModelTraining.train(recipe, seed: Self.modelSeed(seed, target: t, model: m), on: set, pool: workerPool)
            let logits = try network.inferenceModel(pool: workerPool).logits(pool.features)
            let testOutcomes = m == 0 ? zip(network.predictions(on: test.features), test.labels).map { $0 == $1 } : []
            return (logits, privacy, testOutcomes)
        }
        let trainingSeconds = Date().timeIntervalSince(trainingStarted)

        let (targetLogits, privacy, testOutcomes) = trained[0]
        var predicted = [Int](repeating: 0, count: pool.count)
        targetLogits.withReadOnlyMatrix { logits in predicted.withUnsafeMutableBufferPointer { Kernels.argmaxRows(logits, into: $0.baseAddress!) } }
        let memberAccuracy = Proportion(
            successes: pool.labels.indices.filter { targetMembers[$0] && predicted[$0] == pool.labels[$0] }.count,
            trials: targetMembers.filter { $0 }.count)
        let targetPhi = MembershipAttack.scaledConfidence(logits: targetLogits, labels: pool.labels)
        let shadowPhi = trained.dropFirst().map { MembershipAttack.scaledConfidence(logits: $0.0, labels: pool.labels) }
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
        return TargetResult(name: target.name, recipe: recipe, members: members, nonMembers: pool.count - members,
                            testAccuracy: ThreatProportion(outcomes: testOutcomes), memberAccuracy: memberAccuracy,
                            privacy: privacy, attacks: attacks, trainingSeconds: trainingSeconds, modelsTrained: memberships.count)
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

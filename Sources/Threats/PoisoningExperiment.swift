import Foundation
import NeuralNet
import TensorCore
import Training

/// A poisoning experiment as a library job (`bulwark threat poison`): train a clean baseline, then
/// for each poison rate train on the poisoned set, measure clean test accuracy and the attack's
/// success, and for each defence flag examples, score the flags against the truth (precision,
/// recall), retrain without them and measure again.
///
/// Attack success rate (ASR): the fraction of triggered test inputs whose true class is not the
/// target that the model assigns to the target (backdoor), or of the source class's test inputs
/// assigned to the target (targeted flipping). Every model is trained with the same recipe and
/// seed-derived streams, so the same seed gives the same table.
public struct PoisoningExperiment: Sendable {
    public var attack: PoisonAttack
    public var rates: [Double]
    public var defences: [PoisonDefenceSpec]
    /// The defender's bound on the poisoned fraction (spectral signatures and loss filtering).
    public var expectedRate: Double
    public var recipe: TrainingRecipe
    public var seed: UInt64
    /// Models trained side by side.
    public var threads: Int
    /// Called as models finish training in each stage: (models done, models in the stage), from worker threads.
    public var progress: @Sendable (Int, Int) -> Void = { _, _ in }

    public init(attack: PoisonAttack, rates: [Double], defences: [PoisonDefenceSpec] = [], expectedRate: Double = 0.1,
                recipe: TrainingRecipe = PoisoningExperiment.defaultRecipe, seed: UInt64 = 0, threads: Int = 2) {
        self.attack = attack
        self.rates = rates
        self.defences = defences
        self.expectedRate = expectedRate
        self.recipe = recipe
        self.seed = seed
        self.threads = threads
    }

    /// The standard model's recipe: 784-256-256-10, Adam 1e-3, batch 128, 5 epochs.
    public static let defaultRecipe = TrainingRecipe.standardMLP

    public struct Result: Sendable, Encodable {
        public var attack: String
        public var description: String
        public var seed: UInt64
        public var recipe: TrainingRecipe
        public var trainingExamples: Int
        public var baselineCleanAccuracy: ThreatProportion
        /// The baseline's ASR (how often the model does the attacker's bidding unpoisoned).
        public var baselineAttackSuccessRate: ThreatProportion?
        public var rates: [RateResult]
        public var seconds: Double
        /// The model trained on the first rate's poisoned set, when the run was asked to keep it.
        public var firstPoisonedModel: Sequential?

        enum CodingKeys: String, CodingKey {
            case attack, description, seed, recipe, rates, seconds
            case trainingExamples = "training_examples", baselineCleanAccuracy = "baseline_clean_accuracy"
            case baselineAttackSuccessRate = "baseline_attack_success_rate"
        }
    }

    public struct RateResult: Sendable, Encodable {
        public var poisonRate: Double
        public var poisoned: Int
        public var cleanAccuracy: ThreatProportion
        public var attackSuccessRate: ThreatProportion?
        public var defences: [DefenceResult]

        enum CodingKeys: String, CodingKey {
            case poisoned, defences
            case poisonRate = "poison_rate", cleanAccuracy = "clean_accuracy", attackSuccessRate = "attack_success_rate"
        }
    }

    public struct DefenceResult: Sendable, Encodable {
        public var defence: String
        public var description: String
        public var flagged: Int
        public var truePositives: Int
        /// Flagged examples that were poisoned, among the flagged (nil if none was flagged).
        public var precision: Double?
        /// Poisoned examples flagged, among the poisoned (nil if none was poisoned).
        public var recall: Double?
        public var cleanAccuracy: ThreatProportion
        public var attackSuccessRate: ThreatProportion?

        enum CodingKeys: String, CodingKey {
            case defence, description, flagged, precision, recall
            case truePositives = "true_positives", cleanAccuracy = "clean_accuracy", attackSuccessRate = "attack_success_rate"
        }

        /// Every field, null where undefined (precision with nothing flagged, ASR of random flipping).
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(defence, forKey: .defence)
            try c.encode(description, forKey: .description)
            try c.encode(flagged, forKey: .flagged)
            try c.encode(truePositives, forKey: .truePositives)
            try c.encode(precision, forKey: .precision)
            try c.encode(recall, forKey: .recall)
            try c.encode(cleanAccuracy, forKey: .cleanAccuracy)
            try c.encode(attackSuccessRate, forKey: .attackSuccessRate)
        }
    }

    public func validate() throws {
        try recipe.validate()
        try require(!rates.isEmpty, "poison rates", rates, "give at least one (--rate)")
        for rate in rates { try require(rate >= 0 && rate <= 1, "poison rate", rate, "must be in [0, 1]") }
        try require(Set(rates).count == rates.count, "poison rates", rates, "each rate may appear once")
        try attack.validate()
        for defence in defences { _ = try defence.makeDefence(expectedRate: expectedRate) }
        try require(threads >= 1, "threads", threads, "must be ≥ 1")
    }

    /// Checks that the data fits the experiment, before any training.
    public func check(train: LabeledData, test: LabeledData) throws {
        try validate()
        try ModelTraining.checkFit(recipe, train: train, test: test)
        try attack.check(train: train, test: test, rates: rates)
    }

    /// Runs the experiment on `train` (every example is used; no validation split) and `test`.
    public func run(train: LabeledData, test: LabeledData, log: (String) -> Void = { _ in },
                    keepFirstPoisonedModel: Bool = false) throws -> Result {
        let started = Date()
        try check(train: train, test: test)
        let successTest = try attack.successTest(test)
        // One seed for every rate: the poisoned sets are nested (see `PoisonAttack`).
        let poisoned = try rates.map { try attack.poison(train, rate: $0, seed: seed) }
        let defenceValues = try defences.map { try $0.makeDefence(expectedRate: expectedRate) }

        // Stage 1: the baseline and one poisoned model per rate, side by side.
        log("training the baseline and \(rates.count) poisoned model\(rates.count == 1 ? "" : "s") (\(attack))")
        let trainingSets = [train] + poisoned.map(\.data)
        let models = try ModelTraining.parallel(count: trainingSets.count, threads: threads, progress: progress) { i, pool in
            try ModelTraining.train(recipe, seed: seed, on: trainingSets[i], pool: pool).network
        }
        func measure(_ model: Sequential) -> (ThreatProportion, ThreatProportion?) {
            let clean = ThreatProportion(outcomes: zip(model.predictions(on: test.features), test.labels).map { $0 == $1 })
            let success = successTest.map { set in ThreatProportion(outcomes: model.predictions(on: set.features).map { $0 == attack.target! }) }
            return (clean, success)
        }
        let baseline = measure(models[0])

        // Stage 2: every defence flags on every poisoned model; the retrains run side by side.
        var flags: [[Bool]] = []
        for (r, set) in poisoned.enumerated() {
            for defence in defenceValues {
                log("\(defence.name) on poison rate \(rates[r])")
                flags.append(try defence.flag(set.data, model: models[r + 1], seed: seed))
            }
        }
        let defenceCount = defenceValues.count
        if !flags.isEmpty { log("retraining \(flags.count) model\(flags.count == 1 ? "" : "s") without the flagged examples") }
        let sets = poisoned.map(\.data)
        let allFlags = flags
        let retrained = try ModelTraining.parallel(count: flags.count, threads: threads, progress: progress) { j, pool in
            // Each kept set is built inside its job, so only the running ones are in memory.
            let kept = sets[j / defenceCount].subset(allFlags[j].indices.filter { !allFlags[j][$0] })
            return try ModelTraining.train(recipe, seed: seed, on: kept, pool: pool).network
        }

        var rows: [RateResult] = []
        for (r, set) in poisoned.enumerated() {
            let (clean, success) = measure(models[r + 1])
            let truth = set.isPoisoned
            let defenceResults = defenceValues.enumerated().map { d, defence -> DefenceResult in
                let j = r * defenceCount + d
                let flag = flags[j]
                let flagged = flag.filter { $0 }.count
                let truePositives = zip(flag, truth).filter { $0 && $1 }.count
                let (clean, success) = measure(retrained[j])
                return DefenceResult(defence: defence.name, description: defence.description, flagged: flagged, truePositives: truePositives,
                                     precision: flagged == 0 ? nil : Double(truePositives) / Double(flagged),
                                     recall: set.poisoned.isEmpty ? nil : Double(truePositives) / Double(set.poisoned.count),
                                     cleanAccuracy: clean, attackSuccessRate: success)
            }
            rows.append(RateResult(poisonRate: rates[r], poisoned: set.poisoned.count, cleanAccuracy: clean,
                                   attackSuccessRate: success, defences: defenceResults))
        }
        return Result(attack: attack.name, description: attack.description, seed: seed, recipe: recipe, trainingExamples: train.count,
                      baselineCleanAccuracy: baseline.0, baselineAttackSuccessRate: baseline.1, rates: rows,
                      seconds: Date().timeIntervalSince(started), firstPoisonedModel: keepFirstPoisonedModel ? models[1] : nil)
    }
}

/// A measured proportion with its sample size, 95% Wilson interval and per-example outcomes (for
/// the gate's paired tests); encoded as its value.
public struct ThreatProportion: Sendable, Encodable, Equatable {
    public var value: Double
    public var successes: Int
    public var n: Int
    public var ci95: [Double]
    public var outcomes: [Bool]?

    public init(_ proportion: Proportion, outcomes: [Bool]? = nil) {
        value = proportion.value
        successes = proportion.successes
        n = proportion.trials
        let (lower, upper) = proportion.wilsonInterval()
        ci95 = [lower, upper]
        self.outcomes = outcomes
    }

    public init(outcomes: [Bool]) {
        self.init(Proportion(successes: outcomes.filter { $0 }.count, trials: outcomes.count), outcomes: outcomes)
    }

    /// As a report metric.
    public func metric(_ name: String, better: Metric.Direction) -> Metric {
        var metric = Metric.accuracy(name, proportion, outcomes: outcomes)
        metric.better = better
        return metric
    }

    public var proportion: Proportion { Proportion(successes: successes, trials: n) }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
}

import Attacks
import Foundation
import NeuralNet
import TensorCore
import Training

/// Knockoff Nets (Orekondy et al., 2019, "Knockoff Nets: Stealing Functionality of Black-Box
/// Models"), random sampling strategy: the thief queries inputs from its own pool (unlabelled
/// in-distribution data, or noise), labels them with the victim's answers and trains a surrogate
/// on them: on the answers' labels (hard labels), or, when the API releases probabilities and
/// `softLabels` is set, on the released probability vectors themselves (`SoftTargetObjective`;
/// top-k vectors renormalised over their k classes), as the paper does.
public enum KnockoffExtraction {
    /// One point of the curve over the query budget.
    public struct Point: Sendable, Equatable {
        public var queries: Int
        /// Agreement with the victim on the test set.
        public var fidelity: Proportion
        /// The surrogate's test accuracy.
        public var accuracy: Proportion

        /// A surrogate after `queries` queries, measured on `test` against the victim's predictions.
        public static func measuring(_ surrogate: Sequential, queries: Int, victimPredictions: [Int], test: LabeledData) -> Point {
            let predictions = surrogate.predictions(on: test.features)
            return Point(queries: queries,
                         fidelity: Proportion(successes: zip(predictions, victimPredictions).filter { $0 == $1 }.count, trials: test.count),
                         accuracy: Proportion(successes: zip(predictions, test.labels).filter { $0 == $1 }.count, trials: test.count))
        }
    }

    public struct Result {
        public var surrogate: Sequential
        /// Per budget checkpoint (the last is the whole budget), a surrogate trained on the
        /// queries up to it, measured.
        public var curve: [Point]
    }

    /// Queries the first `oracle.queriesLeft` inputs of `pool` (in a seeded order) in batches and
    /// trains a surrogate with `recipe` at each checkpoint (budgets in increasing order, ≤ the
    /// oracle's budget), on all answers so far.
    /// - Throws: `ThreatError.invalidParameter` for a pool smaller than the budget or bad
    ///   checkpoints; the oracle's and training's errors.
    /// - Throws: `ThreatError.invalidParameter` for `softLabels` against a label-only API.
    public static func extract(from oracle: ExtractionOracle, pool: Tensor, recipe: TrainingRecipe, checkpoints: [Int],
                               softLabels: Bool = false, victimPredictions: [Int], test: LabeledData, seed: UInt64,
                               log: (String) -> Void = { _ in }) throws -> Result {
        let budget = oracle.queriesLeft
        guard !softLabels || oracle.policy.releasesProbabilities else {
            throw ThreatError.invalidParameter(name: "soft labels", value: "against \(oracle.policy)",
                                               requirement: "need an API that releases probabilities; train on the labels instead")
        }
        guard pool.shape[0] >= budget else {
            throw ThreatError.invalidParameter(name: "pool", value: "\(pool.shape[0]) inputs",
                                               requirement: "must hold at least the budget of \(budget) queries")
        }
        let stops = (checkpoints.filter { $0 < budget } + [budget]).sorted()
        guard stops.first! >= 1, Set(stops).count == stops.count else {
            throw ThreatError.invalidParameter(name: "checkpoints", value: "\(checkpoints)", requirement: "must be distinct budgets ≥ 1")
        }
        var order = Array(0..<pool.shape[0])
        var generator = RandomGenerator(seed: seed, stream: .extractionQueries)
        generator.shuffle(&order)
        let d = pool.shape[1]
        var inputs: [Float] = [], labels: [Int] = [], probabilities: [Float] = []
        var curve: [Point] = []
        var surrogate: Sequential?
        for stop in stops {
            let batch = Array(order[labels.count..<stop])
            let x = pool.gatherRows(batch)
            let answers = try oracle.query(x)
            labels += answers.labels
            if let released = answers.probabilities {
                // A row with nothing released (rounded to 0 everywhere) teaches its label.
                for (r, label) in answers.labels.enumerated() {
                    let row = released.scalars[(r * oracle.classCount)..<((r + 1) * oracle.classCount)]
                    probabilities += row.reduce(0, +) > 0 ? Array(row) : (0..<oracle.classCount).map { $0 == label ? 1 : 0 }
                }
            }
            inputs += x.scalars
            let features = Tensor(shape: [labels.count, d], scalars: inputs)
            let network = softLabels
                ? try ModelTraining.train(recipe, seed: seed, on: SoftTargetObjective.data(features: features),
                                          objective: SoftTargetObjective(targets: Tensor(shape: [labels.count, oracle.classCount], scalars: probabilities))).network
                : try ModelTraining.train(recipe, seed: seed, on: LabeledData(features: features, labels: labels, classCount: oracle.classCount)).network
            let point = Point.measuring(network, queries: labels.count, victimPredictions: victimPredictions, test: test)
            log("\(point.queries) queries: fidelity \(point.fidelity.value), surrogate accuracy \(point.accuracy.value)")
            curve.append(point)
            surrogate = network
        }
        return Result(surrogate: surrogate!, curve: curve)
    }

    /// Transfer, the practical harm: of the test inputs the victim classifies correctly, the
    /// fraction that PGD examples crafted on the surrogate (white-box there) make the victim
    /// misclassify.
    public static func transferSuccess(surrogate: Sequential, victim: any InferenceModel, test: LabeledData, epsilon: Float,
                                       seed: UInt64) throws -> Proportion {
        let victimClean = try victim.predictions(test.features)
        let correct = (0..<test.count).filter { victimClean[$0] == test.labels[$0] }
        guard !correct.isEmpty else { return Proportion(successes: 0, trials: 0) }
        let subset = test.subset(correct)
        let outcome = try AttackRunner(classifier: surrogate).run(try PGD(epsilon: epsilon), on: subset, seed: seed)
        let victimAdversarial = try victim.predictions(outcome.adversarial)
        let fooled = (0..<subset.count).filter { victimAdversarial[$0] != subset.labels[$0] }.count
        return Proportion(successes: fooled, trials: subset.count)
    }
}

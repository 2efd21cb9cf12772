import Foundation
import NeuralNet
import TensorCore

/// AutoAttack's standard suite (Croce & Hein, 2020, "Reliable evaluation of adversarial robustness
/// with an ensemble of diverse parameter-free attacks"): APGD-CE (100 steps), APGD-T (100 steps, 9
/// target classes), FAB-T (100 steps, 9 target classes) and Square (5,000 queries), each run only
/// on the inputs every earlier attack failed on. An input is robust if it is classified correctly
/// and no attack of the suite fools it; the returned example of a fooled input is that of the
/// attack that fooled it, confirmed by a fresh forward pass.
///
/// The cascade runs per shard, which gives the same result as over the whole dataset: each attack
/// treats every input on its own. `AttackRowResults.fooledAt` holds, per input, the stage (1…4)
/// that fooled it, 0 if it was misclassified clean, −1 if it is robust.
public struct AutoAttackSuite: Attack {
    public let norm: Norm
    public let epsilon: Float
    /// The attacks, in the order they run.
    public let stages: [any Attack]
    /// The image shape for Square (inferred for square images).
    public let image: Square.ImageShape?
    public var loss: AttackLoss { .crossEntropy }

    /// The stages' names, in order.
    public static let stageNames = ["APGD-CE", "APGD-T", "FAB-T", "Square"]

    /// - Throws: `AttackError.invalidParameter` naming a bad value.
    public init(norm: Norm = .linf, epsilon: Float, squareQueries: Int = Square.defaultQueries, image: Square.ImageShape? = nil) throws {
        self.norm = norm
        self.epsilon = epsilon
        self.image = image
        stages = [try APGD(norm: norm, epsilon: epsilon, steps: 100, restarts: 1, loss: .crossEntropy),
                  try APGDT(norm: norm, epsilon: epsilon, steps: 100, restarts: 1, targetClasses: 9),
                  try FAB(norm: norm, epsilon: epsilon, steps: 100, targetClasses: 9),
                  try Square(norm: norm, epsilon: epsilon, queries: squareQueries, image: image)]
    }

    public var description: String { "AutoAttack standard(\(norm.rawValue), ε=\(epsilon)): " + stages.map(\.description).joined(separator: " → ") }

    public func validate(goal: AttackGoal, classes: Int) throws {
        if goal.isTargeted {
            throw AttackError.invalidParameter(name: "targeted", value: goal.targets!.description,
                                               requirement: "the AutoAttack suite is untargeted (APGD-T and FAB-T pick their own targets)")
        }
        for stage in stages { try stage.validate(goal: goal, classes: classes) }
    }

    /// The stages' workspaces, and the still-robust rows of a shard gathered for the next stage.
    public final class Workspace: AttackWorkspace {
        public let capacity: Int
        public let features: Int
        public let results: AttackRowResults
        let stages: [any AttackWorkspace]
        let subsetClean: FloatBuffer, subsetAdversarial: FloatBuffer
        let subsetLabels: UnsafeMutablePointer<Int>, subsetRows: UnsafeMutablePointer<Int>, predictions: UnsafeMutablePointer<Int>
        let robust: UnsafeMutablePointer<Bool>

        init(rows: Int, features: Int, stages: [any AttackWorkspace]) {
            capacity = rows
            self.features = features
            results = AttackRowResults(capacity: rows)
            self.stages = stages
            subsetClean = FloatBuffer(count: rows * features)
            subsetAdversarial = FloatBuffer(count: rows * features)
            subsetLabels = allocateFilled(rows, with: 0)
            subsetRows = allocateFilled(rows, with: 0)
            predictions = allocateFilled(rows, with: 0)
            robust = allocateFilled(rows, with: false)
        }

        deinit {
            subsetLabels.deallocate()
            subsetRows.deallocate()
            predictions.deallocate()
            robust.deallocate()
        }
    }

    public func makeWorkspace(rows: Int, features: Int) -> Workspace {
        Workspace(rows: rows, features: features, stages: stages.map { $0.makeAnyWorkspace(rows: rows, features: features) })
    }

    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                        workspace ws: Workspace, generator: inout RandomGenerator) throws {
        try checkShapes(clean, adversarial, workspace: ws, classifier: classifier)
        guard targets == nil else {
            throw AttackError.invalidParameter(name: "targets", value: "given", requirement: "the AutoAttack suite is untargeted")
        }
        let (n, d) = (clean.rows, clean.columns)
        guard n > 0 else { return }
        _ = try Square.imageShape(image, features: d)  // fail before the first stage, not at the last
        adversarial.copy(from: clean)
        Kernels.argmaxRows(classifier.logits(clean, shard: shard), into: ws.predictions)
        for r in 0..<n {
            ws.robust[r] = ws.predictions[r] == labels[r]
            ws.results.fooledAt[r] = ws.robust[r] ? -1 : 0
        }
        for (index, stage) in stages.enumerated() {
            var m = 0
            for r in 0..<n where ws.robust[r] {
                ws.subsetRows[m] = r
                ws.subsetLabels[m] = labels[r]
                (ws.subsetClean.pointer + m * d).update(from: clean.row(r), count: d)
                m += 1
            }
            if m == 0 { break }
            let subsetClean = ws.subsetClean.matrix(rows: m, columns: d), subsetAdversarial = ws.subsetAdversarial.matrix(rows: m, columns: d)
            try stage.perturb(subsetClean, labels: ws.subsetLabels, targets: nil, into: subsetAdversarial, classifier: classifier,
                              shard: shard, anyWorkspace: ws.stages[index], generator: &generator)
            Kernels.argmaxRows(classifier.logits(subsetAdversarial, shard: shard), into: ws.predictions)
            for i in 0..<m where ws.predictions[i] != ws.subsetLabels[i] {
                let r = ws.subsetRows[i]
                ws.robust[r] = false
                ws.results.fooledAt[r] = index + 1
                adversarial.row(r).update(from: subsetAdversarial.row(i), count: d)
            }
        }
        try ball.verify(adversarial, clean: clean, results: ws.results)
    }
}

extension AutoAttackSuite {
    /// The suite in an `AttackSpec`: `{"type": "autoattack", "norm": "linf", "version": "standard"}`
    /// (`square_queries`, 5,000 by default, may be lowered for quick runs).
    public struct Parameters: Codable, Equatable, Sendable {
        public var norm: Norm
        public var version: String
        public var squareQueries: Int
        public var image: Square.ImageShape?

        public static let versions = ["standard"]

        public init(norm: Norm = .linf, version: String = "standard", squareQueries: Int = Square.defaultQueries,
                    image: Square.ImageShape? = nil) throws {
            self.norm = norm
            self.version = version
            self.squareQueries = squareQueries
            self.image = image
            try validate()
        }

        static let keys: Set<String> = ["norm", "version", "square_queries", "image"]

        enum CodingKeys: String, CodingKey {
            case norm, version, image
            case squareQueries = "square_queries"
        }

        /// - Throws: `AttackError.invalidParameter` naming a bad value.
        public func validate() throws {
            try require(Self.versions.contains(version), "version", version, "must be \(Self.versions.joined(separator: " or "))")
            _ = try Square(epsilon: 1, queries: squareQueries, image: image)
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            norm = try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .linf
            version = try c.decodeIfPresent(String.self, forKey: .version) ?? "standard"
            squareQueries = try c.decodeIfPresent(Int.self, forKey: .squareQueries) ?? Square.defaultQueries
            image = try c.decodeIfPresent(Square.ImageShape.self, forKey: .image)
            do { try validate() } catch {
                let key: CodingKeys = switch parameterName(of: error) { case "version": .version; case "image": .image; default: .squareQueries }
                throw c.invalid(key, "\(error)")
            }
        }
    }
}

import NeuralNet
import TensorCore

/// An evasion attack: takes clean inputs in [0, 1], reference labels (or targets) and a seeded
/// generator, and returns adversarial inputs inside the ε-ball and [0, 1].
///
/// Attacks work on one shard of a batch at a time (`AttackRunner` splits datasets into batches and
/// shards), only through the `Classifier` protocol, in evaluation mode.
public protocol Attack: Sendable, CustomStringConvertible {
    var norm: Norm { get }
    var epsilon: Float { get }
    var loss: AttackLoss { get }

    /// Writes adversarial versions of the rows of `clean` into `adversarial` (same shape), and the
    /// model's predictions for them into `workspace.resultPredictions`.
    /// - Parameters:
    ///   - labels: the reference label of each row (true labels, or the model's predictions).
    ///   - targets: for a targeted attack, the class each row should be pushed to; nil for untargeted.
    ///   - workspace: scratch for this shard, from `AttackWorkspace(rows:features:classes:)`.
    /// - Throws: `AttackError.invariantViolated` if a result leaves the ε-ball or [0, 1] (a bug).
    func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                 into adversarial: MatrixRef, classifier: any Classifier, shard: Int,
                 workspace: AttackWorkspace, generator: inout RandomGenerator) throws
}

/// Errors from configuring or running attacks.
public enum AttackError: Error, CustomStringConvertible, Equatable {
    case invalidParameter(name: String, value: String, requirement: String)
    case invariantViolated(row: Int, distance: Float, epsilon: Float, norm: Norm)

    public var description: String {
        switch self {
        case .invalidParameter(let name, let value, let requirement):
            return "invalid \(name) \(value): \(requirement)"
        case .invariantViolated(let row, let distance, let epsilon, let norm):
            return "internal error: adversarial example \(row) is at \(norm.rawValue) distance \(distance) from its input "
                + "(ε = \(epsilon)) or outside [0, 1]; please report this"
        }
    }
}

func require(_ condition: Bool, _ name: String, _ value: some CustomStringConvertible, _ requirement: String) throws {
    if !condition { throw AttackError.invalidParameter(name: name, value: value.description, requirement: requirement) }
}

/// Scratch memory for attacking batches of up to `rows` examples on one shard; allocated once, so
/// attack steps allocate nothing.
public final class AttackWorkspace {
    public let capacity: Int
    public let features: Int
    /// (rows, features): the current iterate and the clean inputs of the active rows (the best
    /// example so far is kept in the caller's output)
    let current: FloatBuffer
    let activeClean: FloatBuffer
    /// (rows): objective values, best objective, labels, targets and predictions of the active rows
    let objective: FloatBuffer
    let bestObjective: FloatBuffer
    let linf: FloatBuffer
    let l2: FloatBuffer
    let activeLabels: UnsafeMutablePointer<Int>
    let activeTargets: UnsafeMutablePointer<Int>
    let predictions: UnsafeMutablePointer<Int>
    /// Row of the shard batch each active row came from.
    let activeRows: UnsafeMutablePointer<Int>
    /// Whether each row's best example already fools the model.
    let fooled: UnsafeMutablePointer<Bool>
    /// The model's prediction for each returned adversarial example.
    public let resultPredictions: UnsafeMutablePointer<Int>

    public init(rows: Int, features: Int) {
        capacity = rows
        self.features = features
        current = FloatBuffer(count: rows * features)
        activeClean = FloatBuffer(count: rows * features)
        objective = FloatBuffer(count: rows)
        bestObjective = FloatBuffer(count: rows)
        linf = FloatBuffer(count: rows)
        l2 = FloatBuffer(count: rows)
        activeLabels = .allocate(capacity: max(rows, 1))
        activeTargets = .allocate(capacity: max(rows, 1))
        predictions = .allocate(capacity: max(rows, 1))
        activeRows = .allocate(capacity: max(rows, 1))
        fooled = .allocate(capacity: max(rows, 1))
        resultPredictions = .allocate(capacity: max(rows, 1))
    }

    deinit {
        activeLabels.deallocate()
        activeTargets.deallocate()
        predictions.deallocate()
        activeRows.deallocate()
        fooled.deallocate()
        resultPredictions.deallocate()
    }
}

extension Attack {
    /// Checks every row of `adversarial`: inside [0, 1] and at most ε + 1e-6 from `clean` in the
    /// attack's norm. Leaves the per-row L∞ and L2 distances in the workspace.
    func verify(_ adversarial: MatrixRef, clean: MatrixRef, workspace: AttackWorkspace) throws {
        Kernels.rowDistances(adversarial, clean, linf: workspace.linf.pointer, l2: workspace.l2.pointer)
        for r in 0..<adversarial.rows {
            let distance = norm == .linf ? workspace.linf.pointer[r] : workspace.l2.pointer[r]
            let row = adversarial.row(r)
            var inside = distance <= epsilon + 1e-6
            for j in 0..<adversarial.columns where !(row[j] >= 0 && row[j] <= 1) { inside = false }
            if !inside { throw AttackError.invariantViolated(row: r, distance: distance, epsilon: epsilon, norm: norm) }
        }
    }

    /// Objective J and ∂J/∂x for `x`: one forward and one backward pass of the classifier.
    /// Leaves the logits' predictions in `workspace.predictions`.
    func objectiveGradient(_ x: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                           classifier: any Classifier, shard: Int, workspace: AttackWorkspace,
                           needGradient: Bool = true) -> MatrixRef? {
        let logits = classifier.logits(x, shard: shard)
        Kernels.argmaxRows(logits, into: workspace.predictions)
        loss.evaluate(logits: logits, labels: labels, targets: targets, objective: workspace.objective.pointer,
                      gradient: needGradient ? classifier.logitsGradient(shard: shard) : nil)
        return needGradient ? classifier.inputGradient(shard: shard) : nil
    }

    /// Moves `x` one step of size α along the gradient direction of the attack's norm, then projects
    /// onto the ε-ball around `clean` and clamps to [0, 1].
    func step(_ x: MatrixRef, clean: MatrixRef, gradient: MatrixRef, stepSize: Float) {
        switch norm {
        case .linf: Kernels.linfStep(x, clean: clean, gradient: gradient, stepSize: stepSize, epsilon: epsilon)
        case .l2: Kernels.l2Step(x, clean: clean, gradient: gradient, stepSize: stepSize, epsilon: epsilon)
        }
    }
}

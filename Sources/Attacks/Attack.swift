import NeuralNet
import TensorCore

/// An evasion attack: takes clean inputs in [0, 1], reference labels (or targets) and a seeded
/// generator, and returns adversarial inputs inside the ε-ball and [0, 1].
///
/// Attacks work on one shard of a batch at a time (`AttackRunner` splits datasets into batches and
/// shards), only through `DifferentiableClassifier`, in evaluation mode. Each attack owns its
/// scratch memory (`Workspace`), allocated once per shard, so attack steps allocate nothing. The
/// building blocks every attack shares are public: `PerturbationBall` (steps, projections, random
/// starts and verification for each norm) and `DifferentiableClassifier.attackObjective` (J and
/// ∂J/∂x), so an attack can live in any module. An attack is described by a case of `AttackSpec`.
public protocol Attack: Sendable, CustomStringConvertible {
    associatedtype Workspace: AttackWorkspace

    var norm: Norm { get }
    var epsilon: Float { get }
    var loss: AttackLoss { get }

    /// Scratch for one shard of up to `rows` examples with `features` inputs.
    func makeWorkspace(rows: Int, features: Int) -> Workspace

    /// Writes adversarial versions of the rows of `clean` into `adversarial` (same shape) and their
    /// distances to the clean rows into `workspace.results` (`PerturbationBall.verify` does both
    /// the check and the distances). The runner classifies the returned rows afresh.
    /// - Parameters:
    ///   - labels: the reference label of each row (true labels, or the model's predictions).
    ///   - targets: for a targeted attack, the class each row should be pushed to; nil for untargeted.
    ///   - workspace: this shard's scratch, from `makeWorkspace(rows:features:)`.
    /// - Throws: `AttackError.shapeMismatch` if the inputs do not fit the workspace or the model,
    ///   `AttackError.invariantViolated` if a result leaves the ε-ball or [0, 1] (a bug).
    func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                 into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                 workspace: Workspace, generator: inout RandomGenerator) throws

    /// Checks that the attack can pursue `goal` on a model with `classes` classes (by default: the
    /// goal's own checks against the attack's loss).
    /// - Throws: `AttackError.invalidParameter` naming the problem.
    func validate(goal: AttackGoal, classes: Int) throws
}

/// The scratch of one attack on one shard. Every workspace carries the per-row results the runner
/// reads back.
public protocol AttackWorkspace: AnyObject {
    /// Rows it holds at most.
    var capacity: Int { get }
    /// Features per row.
    var features: Int { get }
    var results: AttackRowResults { get }
}

/// Per-row outputs of an attack on one shard: each adversarial example's L∞ and L2 distance to the
/// clean input.
public final class AttackRowResults {
    public let capacity: Int
    /// (rows) ‖x_adv − x‖∞ and ‖x_adv − x‖₂
    public let linf: FloatBuffer
    public let l2: FloatBuffer
    /// (rows) model evaluations spent on each input, for query-based attacks (0 otherwise).
    public let queries: UnsafeMutablePointer<Int>
    /// (rows) for iterative attacks in evaluation, the iteration (counted over restarts and targets,
    /// 1 for the first step; for Square, the query) at which each input was first fooled, −1 if
    /// never; 0 or 1 for inputs fooled at their start; for a suite, the stage. The convergence
    /// curves are made from it (they count only inputs classified correctly clean).
    public let fooledAt: UnsafeMutablePointer<Int>
    /// (rows) minimum-norm attacks: the norm of the smallest adversarial perturbation found for each
    /// input, whatever ε (∞ if none, 0 if misclassified clean); other attacks leave it at ∞.
    public let minimalNorm: UnsafeMutablePointer<Float>

    public init(capacity: Int) {
        self.capacity = capacity
        queries = allocateFilled(capacity, with: 0)
        fooledAt = allocateFilled(capacity, with: -1)
        minimalNorm = allocateFilled(capacity, with: Float.infinity)
        linf = FloatBuffer(count: capacity)
        l2 = FloatBuffer(count: capacity)
    }

    deinit {
        queries.deallocate()
        fooledAt.deallocate()
        minimalNorm.deallocate()
    }

    /// The distances in `norm`.
    public func distances(_ norm: Norm) -> UnsafeMutablePointer<Float> { norm == .linf ? linf.pointer : l2.pointer }
}

extension Attack {
    public func validate(goal: AttackGoal, classes: Int) throws {
        try goal.validate(classes: classes, loss: loss)
    }

    /// The threat model: the ε-ball of the attack's norm.
    public var ball: PerturbationBall { PerturbationBall(norm: norm, epsilon: epsilon) }

    /// Checks what every attack entry point needs: `clean` and `adversarial` of one shape, within
    /// the workspace's capacity and the model's input width.
    /// - Throws: `AttackError.shapeMismatch` naming the first problem.
    public func checkShapes(_ clean: MatrixRef, _ adversarial: MatrixRef, workspace: some AttackWorkspace,
                            classifier: any DifferentiableClassifier) throws {
        func fail(_ problem: String) -> AttackError { .shapeMismatch(problem) }
        guard adversarial.rows == clean.rows, adversarial.columns == clean.columns else {
            throw fail("the output is \(adversarial.rows)×\(adversarial.columns), the input \(clean.rows)×\(clean.columns)")
        }
        guard clean.rows <= workspace.capacity, clean.columns == workspace.features else {
            throw fail("\(clean.rows)×\(clean.columns) inputs do not fit a workspace for \(workspace.capacity)×\(workspace.features)")
        }
        guard clean.columns == classifier.inputWidth else {
            throw fail("the inputs have \(clean.columns) features, the model \(classifier.inputWidth)")
        }
    }

    /// `perturb` with a type-erased workspace (for callers that hold `any Attack`).
    /// - Throws: `AttackError.shapeMismatch` if the workspace was made by another attack type.
    public func perturb(_ clean: MatrixRef, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                        into adversarial: MatrixRef, classifier: any DifferentiableClassifier, shard: Int,
                        anyWorkspace: any AttackWorkspace, generator: inout RandomGenerator) throws {
        guard let workspace = anyWorkspace as? Workspace else {
            throw AttackError.shapeMismatch("the workspace was made by another attack (\(type(of: anyWorkspace)))")
        }
        try perturb(clean, labels: labels, targets: targets, into: adversarial, classifier: classifier, shard: shard,
                    workspace: workspace, generator: &generator)
    }

    /// A type-erased workspace.
    public func makeAnyWorkspace(rows: Int, features: Int) -> any AttackWorkspace {
        makeWorkspace(rows: rows, features: features)
    }
}

/// Errors from configuring or running attacks.
public enum AttackError: Error, CustomStringConvertible, Equatable {
    case invalidParameter(name: String, value: String, requirement: String)
    case shapeMismatch(String)
    case inputsOutOfRange(lowest: Float, highest: Float)
    case invariantViolated(row: Int, distance: Float, epsilon: Float, norm: Norm)

    public var description: String {
        switch self {
        case .invalidParameter(let name, let value, let requirement):
            return "invalid \(name) \(value): \(requirement)"
        case .shapeMismatch(let problem):
            return "attack inputs do not fit: \(problem)"
        case .inputsOutOfRange(let lowest, let highest):
            return "the inputs range from \(lowest) to \(highest), but attacks work on inputs in [0, 1]; scale the data "
                + "(for CSV pixels 0–255: --feature-scale 1/255, or \"feature_scale\" in a bench configuration)"
        case .invariantViolated(let row, let distance, let epsilon, let norm):
            return "internal error: adversarial example \(row) is at \(norm.rawValue) distance \(distance) from its input "
                + "(ε = \(epsilon)) or outside [0, 1]; please report this"
        }
    }
}

func require(_ condition: Bool, _ name: String, _ value: some CustomStringConvertible, _ requirement: String) throws {
    if !condition { throw AttackError.invalidParameter(name: name, value: value.description, requirement: requirement) }
}

/// The class with the `rank`-th highest of `count` logits (1 = the top class): the one with exactly
/// rank − 1 classes above it, ties broken by index. APGD-T and FAB-T take their targets this way.
func rankedClass(_ row: UnsafeMutablePointer<Float>, count k: Int, rank: Int) -> Int {
    for c in 0..<k {
        var above = 0
        for j in 0..<k where row[j] > row[c] || (row[j] == row[c] && j < c) { above += 1 }
        if above == rank - 1 { return c }
    }
    return 0
}

/// How far one row of `k` logits is from fooling the model (≤ 0: fooled): z_y − max_{j≠y} z_j, or
/// targeted max_{j≠t} z_j − z_t. Square's loss; negated, how far an iterate is past its goal.
func logitMargin(_ z: UnsafeMutablePointer<Float>, count k: Int, label: Int, target: Int?) -> Float {
    let reference = target ?? label
    var other = -Float.infinity
    for j in 0..<k where j != reference { other = max(other, z[j]) }
    return target == nil ? z[reference] - other : other - z[reference]
}

/// An uninitialised-memory-free buffer of `count` values (at least one slot, so pointers are valid).
func allocateFilled<T>(_ count: Int, with value: T) -> UnsafeMutablePointer<T> {
    let pointer = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
    pointer.initialize(repeating: value, count: max(count, 1))
    return pointer
}

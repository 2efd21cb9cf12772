import Foundation
import NeuralNet
import TensorCore

/// The threat model of a norm-bounded evasion attack: inputs in [0, 1], perturbations δ with
/// ‖δ‖ ≤ ε. Its operations are the building blocks every such attack shares.
public struct PerturbationBall: Sendable, Equatable {
    public let norm: Norm
    public let epsilon: Float

    public init(norm: Norm, epsilon: Float) {
        self.norm = norm
        self.epsilon = epsilon
    }

    /// Moves `x` one step of size α along the gradient direction of the norm, then projects onto
    /// the ε-ball around `clean` and clamps to [0, 1]:
    /// ```
    /// L∞: x ← clamp(clamp(x + α·sign(g), clean − ε, clean + ε), 0, 1)
    /// L2: x ← clamp(clean + Π_ε(x + α·g/‖g‖₂ − clean), 0, 1)
    /// ```
    public func step(_ x: MatrixRef, clean: MatrixRef, gradient: MatrixRef, stepSize: Float) {
        switch norm {
        case .linf: Kernels.linfStep(x, clean: clean, gradient: gradient, stepSize: stepSize, epsilon: epsilon)
        case .l2: Kernels.l2Step(x, clean: clean, gradient: gradient, stepSize: stepSize, epsilon: epsilon)
        }
    }

    /// Overwrites each row of `x` with a uniform random point of the ε-ball around the row of
    /// `clean`, clamped to [0, 1]. L2: a Gaussian direction scaled to radius ε·u^(1/d), which is
    /// uniform in the ball.
    public func randomPoint(_ x: MatrixRef, around clean: MatrixRef, generator: inout RandomGenerator) {
        precondition(x.rows == clean.rows && x.columns == clean.columns, "random start shapes differ")
        let d = x.columns
        for i in 0..<x.rows {
            let row = x.row(i), center = clean.row(i)
            switch norm {
            case .linf:
                for j in 0..<d { row[j] = center[j] + generator.nextFloat(in: -epsilon, epsilon) }
            case .l2:
                var squares: Float = 0
                for j in 0..<d {
                    row[j] = generator.nextGaussian()
                    squares += row[j] * row[j]
                }
                let radius = epsilon * Float(Foundation.pow(Double(generator.nextUnitFloat()), 1 / Double(d)))
                let scale = squares > 0 ? radius * (1 - 1e-6) / squares.squareRoot() : 0
                for j in 0..<d { row[j] = center[j] + scale * row[j] }
            }
            Kernels.clamp(UnsafeMutableBufferPointer(start: row, count: d), lower: 0, upper: 1)
        }
    }

    /// Checks every row of `adversarial`: inside [0, 1] and at most ε + 1e-6 from `clean` in the
    /// norm. Leaves the per-row L∞ and L2 distances in `results`.
    /// - Throws: `AttackError.invariantViolated` for the first row outside (a bug in the attack).
    public func verify(_ adversarial: MatrixRef, clean: MatrixRef, results: AttackRowResults) throws {
        precondition(adversarial.rows <= results.capacity, "more rows than the results hold")
        Kernels.rowDistances(adversarial, clean, linf: results.linf.pointer, l2: results.l2.pointer)
        let distances = results.distances(norm)
        for r in 0..<adversarial.rows {
            let row = adversarial.row(r)
            var inside = distances[r] <= epsilon + 1e-6
            for j in 0..<adversarial.columns where !(row[j] >= 0 && row[j] <= 1) { inside = false }
            if !inside { throw AttackError.invariantViolated(row: r, distance: distances[r], epsilon: epsilon, norm: norm) }
        }
    }
}

extension Norm {
    /// ‖a − b‖ of two rows of `count` values, by the same kernel as `PerturbationBall.verify`, so a
    /// minimum-norm attack's "within ε" decision and the verification agree to the last bit.
    func distance(_ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>, count: Int) -> Float {
        var linf: Float = 0, l2: Float = 0
        Kernels.rowDistances(MatrixRef(a, rows: 1, columns: count), MatrixRef(b, rows: 1, columns: count), linf: &linf, l2: &l2)
        return self == .linf ? linf : l2
    }
}

extension DifferentiableClassifier {
    /// The attack objective J of each row of `x` (into `objective`), the model's predictions (into
    /// `predictions`), and if `withGradient`, ∂J/∂x (rows, inputWidth): one forward pass, and one
    /// backward pass for the gradient. The gradient view is valid until the shard's next call.
    public func attackObjective(_ x: MatrixRef, loss: AttackLoss, labels: UnsafePointer<Int>, targets: UnsafePointer<Int>?,
                                shard: Int, objective: UnsafeMutablePointer<Float>, predictions: UnsafeMutablePointer<Int>,
                                withGradient: Bool, margins: UnsafeMutablePointer<Float>? = nil) -> MatrixRef? {
        let logits = logits(x, shard: shard)
        Kernels.argmaxRows(logits, into: predictions)
        if let margins {
            // How far each row is past its goal: max_{j≠y} z_j − z_y, or z_t − max_{j≠t} z_j (targeted).
            for i in 0..<x.rows { margins[i] = -logitMargin(logits.row(i), count: logits.columns, label: labels[i], target: targets?[i]) }
        }
        loss.evaluate(logits: logits, labels: labels, targets: targets, objective: objective,
                      gradient: withGradient ? logitsGradient(shard: shard) : nil)
        return withGradient ? inputGradient(shard: shard) : nil
    }
}

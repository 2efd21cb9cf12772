import NeuralNet
import TensorCore

/// An attack that looks for each input's smallest adversarial perturbation (DeepFool, C&W-L2, DDN)
/// rather than the strongest one within ε. It records that perturbation's norm per input in
/// `AttackRowResults.minimalNorm` (∞ if none was found, 0 for inputs misclassified clean), from
/// which a single run gives robust accuracy at every ε; as an `Attack` with budget ε it returns an
/// input's closest adversarial example if it is within ε, and the clean input otherwise.
public protocol MinimumNormAttack: Attack {}

extension MinimumNormAttack {
    /// The start every minimum-norm attack shares: classifies the clean rows; rows misclassified
    /// clean get minimal norm 0 and `fooledAt` 0; the others are gathered into slots (their row
    /// index, label and clean input). Every row's `fooledAt` starts at −1 and its minimal norm at ∞.
    /// Returns the number of slots.
    func beginMinimumNormRun(_ clean: MatrixRef, labels: UnsafePointer<Int>, classifier: any DifferentiableClassifier, shard: Int,
                             results: AttackRowResults, predictions: UnsafeMutablePointer<Int>, slots: UnsafeMutablePointer<Int>,
                             slotLabels: UnsafeMutablePointer<Int>, slotClean: UnsafeMutablePointer<Float>) -> Int {
        let (n, d) = (clean.rows, clean.columns)
        results.fooledAt.update(repeating: -1, count: n)
        results.minimalNorm.update(repeating: .infinity, count: n)
        Kernels.argmaxRows(classifier.logits(clean, shard: shard), into: predictions)
        var m = 0
        for r in 0..<n {
            if predictions[r] != labels[r] {
                results.fooledAt[r] = 0
                results.minimalNorm[r] = 0
                continue
            }
            slots[m] = r
            slotLabels[m] = labels[r]
            (slotClean + m * d).update(from: clean.row(r), count: d)
            m += 1
        }
        return m
    }

    /// Slot `i`'s adversarial `iterate` is kept (in `best`, with its norm in `bestNorm`) if it is
    /// the closest so far, by the verification's distance kernel; the first one within ε marks
    /// its row fooled at `iteration`.
    func keepIfCloser(slot i: Int, iterate x: UnsafeMutablePointer<Float>, iteration: Int, features d: Int,
                      slotClean: UnsafeMutablePointer<Float>, best: UnsafeMutablePointer<Float>, bestNorm: UnsafeMutablePointer<Float>,
                      slots: UnsafeMutablePointer<Int>, results: AttackRowResults) {
        let distance = norm.distance(x, slotClean + i * d, count: d)
        guard distance < bestNorm[i] else { return }
        bestNorm[i] = distance
        (best + i * d).update(from: x, count: d)
        let row = slots[i]
        if distance <= epsilon && results.fooledAt[row] < 0 { results.fooledAt[row] = iteration }
    }

    /// The end every minimum-norm attack shares: each slot's minimal norm goes to the results, and
    /// its closest adversarial point to the output if it is within ε (others stay clean).
    func finishMinimumNormRun(count m: Int, features d: Int, slots rows: UnsafeMutablePointer<Int>, best: UnsafeMutablePointer<Float>,
                              bestNorm: UnsafeMutablePointer<Float>, results: AttackRowResults, into adversarial: MatrixRef) {
        for i in 0..<m {
            results.minimalNorm[rows[i]] = bestNorm[i]
            if bestNorm[i] <= epsilon { adversarial.row(rows[i]).update(from: best + i * d, count: d) }
        }
    }
}

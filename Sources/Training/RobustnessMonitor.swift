import Attacks
import NeuralNet
import TensorCore

/// Measures robust accuracy on a held-out slice after every epoch of (adversarial) training, keeps
/// track of the best-robust epoch (Rice, Wong & Kolter, 2020, "Overfitting in adversarially robust
/// deep learning": the last epoch is often not the most robust), and detects catastrophic
/// overfitting: robust accuracy under PGD collapsing while accuracy on the training attack's
/// examples keeps rising, as single-step training does (Wong, Rice & Kolter, 2020, "Fast is better
/// than free"). A collapse is measured against the best epoch, both in absolute terms and
/// relative to it, so it is caught at any accuracy level (0.15 → 0.05 as well as 0.7 → 0.3).
public final class RobustnessMonitor {
    public let attack: any Attack
    public let slice: LabeledData
    public let seed: UInt64
    /// A drop of robust accuracy from its best epoch by more than this (absolute) is a collapse…
    public let collapseThreshold: Double
    /// …as is a fall below this fraction of the best epoch's robust accuracy by at least
    /// `minimumDrop` (so that noise on a small held-out slice near 0 is not a collapse).
    public let collapseFraction: Double
    public let minimumDrop: Double
    private var best: (epoch: Int, robust: Double, train: Double)?
    /// The first epoch at which a collapse was detected.
    public private(set) var collapsedAt: Int?

    public init(attack: any Attack, slice: LabeledData, seed: UInt64, collapseThreshold: Double = 0.2, collapseFraction: Double = 0.5,
                minimumDrop: Double = 0.05) {
        self.attack = attack
        self.slice = slice
        self.seed = seed
        self.collapseThreshold = collapseThreshold
        self.collapseFraction = collapseFraction
        self.minimumDrop = minimumDrop
    }

    /// The most robust epoch so far and its robust accuracy.
    public var bestEpoch: (epoch: Int, robust: Double)? { best.map { ($0.epoch, $0.robust) } }

    /// Adds `robust_accuracy` (and the slice size) to the epoch's metrics, and a warning when it collapses.
    public func observe(_ metrics: inout EpochMetrics, network: Sequential) {
        let outcome: AttackOutcome
        do {
            outcome = try AttackRunner(classifier: network).run(attack, on: slice, seed: seed)
        } catch {
            metrics.warnings.append("robust accuracy could not be measured: \(error)")
            return
        }
        let robust = outcome.robustAccuracy.value
        metrics.extra["robust_accuracy"] = robust
        metrics.extra["robust_n"] = Double(slice.count)
        if let warning = record(epoch: metrics.epoch, robust: robust, train: metrics.trainAccuracy) {
            metrics.warnings.append(warning)
        }
    }

    /// Records one epoch's robust and training accuracy; returns a warning (and sets `collapsedAt`)
    /// if robust accuracy fell more than `collapseThreshold` below its best epoch, or below
    /// `collapseFraction` of it by at least `minimumDrop`, while training accuracy rose above that epoch's.
    public func record(epoch: Int, robust: Double, train: Double) -> String? {
        defer {
            if best == nil || robust > best!.robust { best = (epoch, robust, train) }
        }
        guard let best, train > best.train,
              best.robust - robust > collapseThreshold
                || (robust < collapseFraction * best.robust && best.robust - robust >= minimumDrop) else { return nil }
        if collapsedAt == nil { collapsedAt = epoch }
        return "catastrophic overfitting: robust accuracy under \(attack) fell from \(best.robust) (epoch \(best.epoch)) "
            + "to \(robust) while training accuracy rose to \(train); training stops and keeps epoch \(best.epoch)'s weights. "
            + "Use PGD training (--adversarial pgd), N-FGSM (--adversarial n-fgsm), or a smaller step (Wong et al., 2020; de Jorge et al., 2022)"
    }
}

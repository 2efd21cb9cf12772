import Attacks
import NeuralNet
import TensorCore

/// Measures robust accuracy on a held-out slice after every epoch of (adversarial) training and
/// flags catastrophic overfitting: robust accuracy under PGD collapsing while accuracy on the
/// training attack's examples keeps rising, as FGSM training does (Wong, Rice & Kolter, 2020, "Fast
/// is better than free"). The fix is PGD training, or FGSM with a random start and early stopping.
public final class RobustnessMonitor {
    public let attack: any Attack
    public let slice: LabeledData
    public let seed: UInt64
    /// A drop of robust accuracy from its best epoch by more than this is flagged.
    public let collapseThreshold: Double
    private var best: (epoch: Int, robust: Double, train: Double)?

    public init(attack: any Attack, slice: LabeledData, seed: UInt64, collapseThreshold: Double = 0.2) {
        self.attack = attack
        self.slice = slice
        self.seed = seed
        self.collapseThreshold = collapseThreshold
    }

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

    /// Records one epoch's robust and training accuracy; returns a warning if robust accuracy fell
    /// more than `collapseThreshold` below its best epoch while training accuracy rose above it.
    public func record(epoch: Int, robust: Double, train: Double) -> String? {
        defer {
            if best == nil || robust > best!.robust { best = (epoch, robust, train) }
        }
        guard let best, best.robust - robust > collapseThreshold, train > best.train else { return nil }
        return "catastrophic overfitting: robust accuracy under \(attack) fell from \(best.robust) (epoch \(best.epoch)) "
            + "to \(robust) while training accuracy rose to \(train); use PGD training "
            + "(--adversarial pgd) or keep the checkpoint of epoch \(best.epoch) (Wong et al., 2020)"
    }
}

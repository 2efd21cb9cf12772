import TensorCore

/// Threat results as report metrics (value, n, interval, direction, per-example outcomes), one
/// named group per row, for `bulwark gate`: e.g. `backdoor rate=0.1` / `clustering attack success
/// rate` (lower is better), `membership standard` / `lira-online AUC distance from chance`.
///
/// Every row emits the same metrics whatever the outcome, so two runs always pair up: a defence's
/// flags are scored by recall (over the poisoned examples) and false-positive rate (over the
/// clean ones), both defined for any number of flags. A membership attack's AUC is gated as
/// |AUC − ½|: an attack whose scores are inverted leaks as much as one whose scores are right.
/// TPR at an FPR is emitted only where FPR × non-members ≥ 1 (below that it is the TPR at zero
/// false positives, which another threshold grid would report differently).
extension PoisoningExperiment.Result {
    public var metricGroups: [(name: String, metrics: [Metric])] {
        rates.map { row in
            var metrics = [row.cleanAccuracy.metric("clean accuracy", better: .higher)]
            if let success = row.attackSuccessRate { metrics.append(success.metric("attack success rate", better: .lower)) }
            for defence in row.defences {
                metrics.append(defence.cleanAccuracy.metric("\(defence.defence) clean accuracy", better: .higher))
                if let success = defence.attackSuccessRate {
                    metrics.append(success.metric("\(defence.defence) attack success rate", better: .lower))
                }
                if row.poisoned > 0 {
                    metrics.append(Metric.accuracy("\(defence.defence) recall", Proportion(successes: defence.truePositives, trials: row.poisoned)))
                }
                if trainingExamples > row.poisoned {
                    var falsePositives = Metric.accuracy("\(defence.defence) false-positive rate",
                                                         Proportion(successes: defence.flagged - defence.truePositives,
                                                                    trials: trainingExamples - row.poisoned))
                    falsePositives.better = .lower
                    metrics.append(falsePositives)
                }
            }
            return ("\(attack) rate=\(row.poisonRate)", metrics)
        }
    }
}

extension MembershipExperiment.Result {
    public var metricGroups: [(name: String, metrics: [Metric])] {
        targets.map { target in
            var metrics = [target.testAccuracy.metric("test accuracy", better: .higher)]
            for attack in target.attacks {
                metrics.append(Metric(name: "\(attack.attack.rawValue) AUC distance from chance", value: abs(attack.roc.auc - 0.5), better: .lower))
                for fpr in MembershipExperiment.reportedFPRs where fpr * Double(target.nonMembers) >= 1 {
                    let hits = Int((attack.tpr(atFPR: fpr) * Double(target.members)).rounded())
                    var metric = Metric.accuracy("\(attack.attack.rawValue) TPR at FPR \(fpr)", Proportion(successes: hits, trials: target.members))
                    metric.better = .lower
                    metrics.append(metric)
                }
            }
            if let privacy = target.privacy {
                metrics.append(Metric(name: "DP ε at δ = \(privacy.delta)", value: privacy.epsilon, better: .lower))
            }
            return ("membership \(target.name)", metrics)
        }
    }
}

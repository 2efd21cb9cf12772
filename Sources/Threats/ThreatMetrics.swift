import TensorCore

/// Threat results as report metrics (value, n, interval, direction, per-example outcomes), one
/// named group per row, for `bulwark gate`: e.g. `backdoor rate=0.1` / `clustering attack success
/// rate` (lower is better), `membership standard` / `lira-online AUC` (lower is better).
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
                if defence.flagged > 0 {
                    metrics.append(Metric.accuracy("\(defence.defence) precision",
                                                   Proportion(successes: defence.truePositives, trials: defence.flagged)))
                }
                if row.poisoned > 0 {
                    metrics.append(Metric.accuracy("\(defence.defence) recall", Proportion(successes: defence.truePositives, trials: row.poisoned)))
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
                metrics.append(Metric(name: "\(attack.attack.rawValue) AUC", value: attack.roc.auc, better: .lower))
                for fpr in MembershipExperiment.reportedFPRs {
                    metrics.append(Metric(name: "\(attack.attack.rawValue) TPR at FPR \(fpr)", value: attack.tpr(atFPR: fpr), better: .lower))
                }
            }
            if let privacy = target.privacy {
                metrics.append(Metric(name: "DP ε at δ = \(privacy.delta)", value: privacy.epsilon, better: .lower))
            }
            return ("membership \(target.name)", metrics)
        }
    }
}

import NeuralNet

/// DP-SGD's privacy ledger during training: after each epoch, the (ε, δ) spent so far (the RDP
/// accountant over every step taken, sampling rate q = batch / training examples) and the
/// fraction of examples whose gradient was clipped, in the epoch's `extra` (`dp_epsilon`,
/// `dp_clipped_fraction`); at the end, the model-file metadata the card shows.
public final class PrivacyMonitor {
    public let spec: DPSGDSpec
    public let batchSize: Int
    public let trainingExamples: Int
    private let objective: DPSGDObjective?

    public init(spec: DPSGDSpec, batchSize: Int, trainingExamples: Int, objective: any TrainingObjective) {
        self.spec = spec
        self.batchSize = min(batchSize, trainingExamples)
        self.trainingExamples = trainingExamples
        self.objective = objective as? DPSGDObjective
    }

    public var stepsPerEpoch: Int { (trainingExamples + batchSize - 1) / max(batchSize, 1) }
    public var samplingRate: Double { Double(batchSize) / Double(max(trainingExamples, 1)) }

    public func guarantee(epochs: Int) -> RDPAccountant.Guarantee {
        spec.guarantee(steps: epochs * stepsPerEpoch, batchSize: batchSize, trainingExamples: trainingExamples)
    }

    public func observe(_ metrics: inout EpochMetrics) {
        metrics.extra["dp_epsilon"] = guarantee(epochs: metrics.epoch).epsilon
        if let objective {
            metrics.extra["dp_clipped_fraction"] = Double(objective.clippedCount) / Double(max(trainingExamples, 1))
            objective.resetClippedCount()
        }
    }

    /// `dp_epsilon`, `dp_delta`, `dp_noise_multiplier`, `dp_clip`, `dp_sampling_rate`, `dp_steps`
    /// after `epochs` epochs.
    public func metadata(epochs: Int) -> [String: String] {
        let guarantee = guarantee(epochs: epochs)
        return ["dp_epsilon": String(guarantee.epsilon), "dp_delta": String(spec.delta),
                "dp_noise_multiplier": String(spec.noiseMultiplier), "dp_clip": String(spec.clip),
                "dp_sampling_rate": String(samplingRate), "dp_steps": String(epochs * stepsPerEpoch),
                "dp_sampling": "shuffled batches, accounted as Poisson sampling (a heuristic: the accountant's ε assumes Poisson sampling)",
                "dp_noise": spec.noise == .secure ? "secure (OS CSPRNG, not stored)" : "seeded (reproducible; not private against anyone who knows the seed)",
                "dp_scope": "the weights; the file stores no per-epoch statistics of the training data"]
    }
}

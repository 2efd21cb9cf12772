import Attacks
import Certification
import Datasets
import Foundation
import NeuralNet
import BulwarkSecurity
import TensorCore
import _FileSystem

/// Training as a library job: the whole pipeline of `bulwark train` (and of `bulwark bench`
/// training a missing model), as a value.
///
/// ```
/// check the output path → load and check the data → split off validation → train (objective,
/// robustness monitor, per-epoch checkpoints recorded in the manifest) → test accuracy →
/// save the model atomically with its recipe and metrics → record it in the manifest
/// ```
public struct TrainingJob: Sendable {
    public var recipe: TrainingRecipe
    public var data: DataSpec
    /// The model file to write (`.safetensors`).
    public var output: String
    /// The per-epoch checkpoint (default: `output` with `.checkpoint.safetensors`).
    public var checkpoint: String?
    /// A checkpoint to continue (made with the same recipe).
    public var resume: String?
    /// Replace existing files of another kind at the output and checkpoint paths (never an input).
    public var force = false
    /// The recipe's `initialModel`, already read (by a caller that needed its architecture first);
    /// nil: the job reads it.
    public var initialModel: InitialModel?

    /// A model file's weights to start from, with its architecture and digest.
    public struct InitialModel: Sendable {
        public let path: String
        public let architecture: ModelSpec
        public let parameters: [Float]
        public let sha256: String

        /// Reads the model at `path` through `loader` (which verifies it).
        /// - Throws: `TrainingError.invalidRecipe` for a training checkpoint (which `resume` continues),
        ///   or what parsing the file throws.
        public static func load(_ path: String, loader: any FileLoading) throws -> InitialModel {
            try TrainingRecipe.checkInitialModelPath(path)
            let bytes = try loader.load(path, limit: 1 << 31)
            let file = try SafeTensors(bytes: bytes, source: path)
            if file.metadata["checkpoint_format"] != nil {
                throw TrainingError.invalidRecipe("\(path) is a training checkpoint: continue its run with --resume \(path), or start "
                                                  + "from the model file a run writes (--from takes model files)")
            }
            guard file.metadata["architecture"] != nil else {
                throw TrainingError.invalidRecipe("\(path) records no architecture (a file written by PyTorch?): convert it once with "
                                                  + "bulwark import, then start from the imported file")
            }
            let network = try ModelFile.load(file).network
            // The digest of the file as stored (an encrypted file's ciphertext), as the manifest records it.
            let sha256 = (loader as? VerifyingFileLoader)?.digests[path] ?? FileDigest.sha256(bytes)
            return InitialModel(path: path, architecture: network.spec, parameters: network.parameters.array, sha256: sha256)
        }
    }

    public init(recipe: TrainingRecipe, data: DataSpec = DataSpec(), output: String, checkpoint: String? = nil, resume: String? = nil) {
        self.recipe = recipe
        self.data = data
        self.output = output
        self.checkpoint = checkpoint
        self.resume = resume
    }

    public var checkpointPath: String { checkpoint ?? Self.defaultCheckpointPath(for: output) }

    /// Where the most robust epoch's weights go (Rice et al. 2020) when robust accuracy is monitored:
    /// `output` with `.best-robust.safetensors`.
    public var bestRobustPath: String {
        (output.hasSuffix(".safetensors") ? String(output.dropLast(".safetensors".count)) : output) + ".best-robust.safetensors"
    }

    /// Whether the recipe's robust accuracy is measured every epoch (adversarial, single-step and
    /// TRADES training).
    public var monitorsRobustness: Bool { recipe.robustEvaluationExamples > 0 && recipe.objective.monitoredBall != nil }

    public static func defaultCheckpointPath(for output: String) -> String {
        (output.hasSuffix(".safetensors") ? String(output.dropLast(".safetensors".count)) : output) + ".checkpoint.safetensors"
    }

    /// What the caller sees while the job runs.
    public struct Events {
        public var log: (String) -> Void = { _ in }
        public var warning: (String) -> Void = { _ in }
        public var progress: (TrainingProgress) -> Void = { _ in }
        /// After each epoch, with its metrics (robust accuracy and warnings included).
        public var epochFinished: (EpochMetrics) -> Void = { _ in }
        public init() {}
    }

    public struct Result: Sendable {
        public let testAccuracy: Proportion
        public let model: String
        public let sha256: String
        public let checkpoint: String
        public let history: [EpochMetrics]
        public let seconds: Double
        public let trainData: String
        public let testData: String
    }

    /// Checks what can be checked before any work: the recipe, the output and checkpoint paths.
    /// - Throws: `TrainingError`, `FileSystemError` naming the problem.
    public func validate() throws {
        try recipe.validate()
        guard output.hasSuffix(".safetensors") else {
            throw TrainingError.invalidRecipe("the output must be a .safetensors file, got '\(output)'")
        }
        try data.validate()
        // A new model may replace an old model, a checkpoint a checkpoint; nothing else without force,
        // and never the file resumed from or each other.
        let inputs = (resume.map { [$0] } ?? []) + (recipe.initialModel.map { [$0] } ?? []) + data.namedFiles
        try OutputPath.prepare(output, for: "the trained model", replacing: [.model], inputs: [checkpointPath] + inputs, force: force)
        try OutputPath.prepare(checkpointPath, for: "the training checkpoint", replacing: [.checkpoint],
                               inputs: [output] + (recipe.initialModel.map { [$0] } ?? []) + data.namedFiles, force: force)
        if monitorsRobustness {
            try OutputPath.prepare(bestRobustPath, for: "the best-robust model", replacing: [.model],
                                   inputs: [output, checkpointPath] + inputs, force: force)
        }
    }

    /// Runs the job, reading every file through `loader` (which verifies and decrypts).
    public func run(loader: any FileLoading, events: Events = Events()) throws -> Result {
        let started = Date()
        try validate()
        let (trainSet, trainDescription) = try data.load(.train, loader: loader)
        let (testSet, testDescription) = try data.load(.test, loader: loader)
        events.log("training data: \(trainDescription)")
        let (train, validation) = try split(trainSet, test: testSet)

        let trainer = try Trainer(configuration: recipe.trainerConfiguration, objective: try recipe.objective.makeObjective())
        let monitor = try makeMonitor(validation: validation, events: events)
        trainer.checkpointPath = checkpointPath
        var provenance: [String: String] = [:]
        if let resume {
            // A resumed fine-tuning run keeps the digest of the weights it started from.
            provenance["initial_model_sha256"] = try checkResumable(resume, loader: loader)["initial_model_sha256"]
        } else if let path = recipe.initialModel {
            let initial = try initialModel.flatMap { $0.path == path ? $0 : nil } ?? InitialModel.load(path, loader: loader)
            guard initial.architecture == recipe.architecture else {
                throw TrainingError.invalidRecipe("the initial model \(path) is \(initial.architecture.torchSequential), the recipe's "
                    + "architecture is \(recipe.architecture.torchSequential); leave --model out to train the file's architecture")
            }
            _ = trainer.network.parameters.buffer.update(from: initial.parameters)
            provenance["initial_model_sha256"] = initial.sha256
            events.log("initial weights from \(path) (SHA-256 \(initial.sha256))")
        }
        trainer.checkpointMetadata = provenance.merging(["recipe": recipe.json, "bulwark_version": BulwarkVersion.current]) { _, new in new }
        trainer.checkpointWillBeWritten = { path, bytes in
            if try Manifest.announce(path, sha256: FileDigest.sha256(bytes), size: bytes.count, recipe: recipe.json) {
                events.warning("the manifest beside \(path) was signed; recording the checkpoint removed its signature (sign it again with bulwark manifest sign)")
            }
        }
        trainer.checkpointWritten = { try Self.record($0, recipe: recipe.json, events: events) }
        if let resume {
            try trainer.resume(from: resume, loader: loader)
            events.log("resumed from \(resume) after epoch \(trainer.completedEpochs)")
            // The monitor continues from the epochs already trained: their best stays the best (and
            // its file is not overwritten by a less robust epoch), and a collapse stays a collapse.
            for past in trainer.history {
                if let robust = past.extra["robust_accuracy"] { _ = monitor?.record(epoch: past.epoch, robust: robust, train: past.trainAccuracy) }
            }
        }
        trainer.progress = events.progress
        let privacy = privacyMonitor(trainer: trainer, trainingExamples: train.count)
        let certification = certificationMonitor(validation: validation)
        var bestWeights: [Float]?
        trainer.epochObserver = { metrics, network in
            monitor?.observe(&metrics, network: network)
            if let monitor, let best = monitor.bestEpoch, best.epoch == metrics.epoch, monitor.collapsedAt == nil {
                bestWeights = network.parameters.array
                do {
                    try self.saveBestRobust(network, epoch: best.epoch, robust: best.robust, provenance: provenance, events: events)
                } catch {
                    metrics.warnings.append("the best-robust model could not be written: \(error)")
                }
            }
            certification?(&metrics, network)
            privacy?.observe(&metrics)
            events.epochFinished(metrics)
        }
        events.log("model \(recipe.architecture.shorthand) (\(trainer.network.parameterCount) parameters), \(train.count) training / "
                   + "\(validation.count) validation examples, objective: \(trainer.objective), \(trainer.network.pool.threadCount) threads")
        trainer.shouldStop = { monitor?.collapsedAt != nil }
        try trainer.train(on: train, validation: validation)
        var stoppedEarly: String?
        if let monitor, let collapse = monitor.collapsedAt, let best = monitor.bestEpoch {
            // The guard: the collapsed weights are replaced by the most robust epoch's (from the
            // best-robust file when that epoch was trained before a resume).
            let weights = try bestWeights ?? ModelFile.load(contentsOf: bestRobustPath, loader: loader).network.parameters.array
            guard weights.count == trainer.network.parameterCount else {
                throw TrainingError.dataMismatch("catastrophic overfitting at epoch \(collapse), but the weights of epoch \(best.epoch) "
                                                 + "are not available (\(bestRobustPath) does not match the model)")
            }
            _ = trainer.network.parameters.buffer.update(from: weights)
            stoppedEarly = "catastrophic overfitting detected at epoch \(collapse); training stopped, weights of epoch \(best.epoch) "
                + "(held-out robust accuracy \(best.robust))"
            events.warning(stoppedEarly!)
        }

        let testAccuracy = Proportion(successes: trainer.network.correctPredictions(on: testSet), trials: testSet.count)
        var metadata: [String: String] = provenance.merging([
            "seed": String(recipe.seed), "recipe": recipe.json, "test_accuracy": String(testAccuracy.value),
            "test_n": String(testSet.count), "test_data": testDescription, "train_data": trainDescription,
            "history": Self.deterministicHistory(trainer.history), "bulwark_version": BulwarkVersion.current,
        ]) { _, new in new }
        if let last = trainer.history.last { metadata["epochs_trained"] = String(last.epoch) }
        if let stoppedEarly { metadata["stopped_early"] = stoppedEarly }
        if let privacy {
            // The guarantee covers the weights: per-epoch statistics of the private training set
            // (loss, accuracy, clipped fraction) are not noised, so a DP model's file leaves them out.
            metadata["history"] = nil
            metadata.merge(privacy.metadata(epochs: trainer.completedEpochs)) { _, new in new }
        }
        try ModelFile.save(trainer.network, metadata: metadata, to: output)
        let digest = try Self.record(output, recipe: recipe.json, events: events)
        return Result(testAccuracy: testAccuracy, model: output, sha256: digest, checkpoint: checkpointPath, history: trainer.history,
                      seconds: Date().timeIntervalSince(started), trainData: trainDescription, testData: testDescription)
    }

    /// The seeded train/validation split, after checking the data against the architecture.
    private func split(_ trainSet: LabeledData, test testSet: LabeledData) throws -> (LabeledData, LabeledData) {
        let spec = recipe.architecture
        guard trainSet.featureCount == spec.inputWidth else {
            throw TrainingError.dataMismatch("the model expects \(spec.inputWidth) input features but the training data has \(trainSet.featureCount); change the architecture (--model)")
        }
        guard testSet.featureCount == spec.inputWidth else {
            throw TrainingError.dataMismatch("the test data has \(testSet.featureCount) features but the model expects \(spec.inputWidth)")
        }
        guard trainSet.classCount <= spec.classCount, testSet.classCount <= spec.classCount else {
            throw TrainingError.dataMismatch("the data has \(max(trainSet.classCount, testSet.classCount)) classes but the model outputs \(spec.classCount); change the architecture (--model)")
        }
        if recipe.objective.perturbsInputs {
            do { try AttackRunner.checkInputRange(trainSet.features) } catch { throw TrainingError.dataMismatch("\(error)") }
        }
        let (train, validation) = trainSet.split(validationFraction: recipe.validationFraction, seed: recipe.seed)
        guard train.count > 0 else {
            throw TrainingError.dataMismatch("holding out \(validation.count) of \(trainSet.count) examples for validation "
                + "(--val-split \(recipe.validationFraction)) leaves no training examples; use more data (--limit) or a smaller --val-split")
        }
        guard testSet.count > 0 else { throw TrainingError.dataMismatch("the test split has no examples") }
        return (train, validation)
    }

    /// PGD-10 at the training ε on a held-out slice after every epoch of adversarial, single-step or
    /// TRADES training.
    private func makeMonitor(validation: LabeledData, events: Events) throws -> RobustnessMonitor? {
        guard let (norm, epsilon) = recipe.objective.monitoredBall else { return nil }
        guard recipe.robustEvaluationExamples > 0, validation.count > 0 else {
            events.warning("robust accuracy is not monitored: it needs held-out examples (--val-split > 0, --robust-eval-n > 0)")
            return nil
        }
        let attack = try PGD(norm: norm, epsilon: epsilon, steps: 10)
        return RobustnessMonitor(attack: attack, slice: validation.prefix(recipe.robustEvaluationExamples), seed: recipe.seed)
    }

    /// Writes the most robust epoch so far to `bestRobustPath` (atomically) and records it in the manifest.
    private func saveBestRobust(_ network: Sequential, epoch: Int, robust: Double, provenance: [String: String], events: Events) throws {
        try ModelFile.save(network, metadata: provenance.merging([
            "seed": String(recipe.seed), "recipe": recipe.json, "best_robust_epoch": String(epoch),
            "robust_accuracy": String(robust), "robust_n": String(recipe.robustEvaluationExamples), "bulwark_version": BulwarkVersion.current,
        ]) { _, new in new }, to: bestRobustPath)
        _ = try Self.record(bestRobustPath, recipe: recipe.json, events: events)
    }

    /// IBP-certified accuracy at the training ε on a held-out slice after every epoch of certified
    /// training (`ibp_certified_accuracy`; CROWN, slower, is for `bulwark certify` afterwards).
    private func certificationMonitor(validation: LabeledData) -> ((inout EpochMetrics, Sequential) -> Void)? {
        guard case .certified(let spec) = recipe.objective, recipe.robustEvaluationExamples > 0, validation.count > 0 else { return nil }
        let slice = validation.prefix(recipe.robustEvaluationExamples)
        return { metrics, network in
            do {
                let result = try Certifier(network, method: .ibp, norm: .linf).certify(slice, epsilon: Double(spec.schedule.epsilon))
                metrics.extra["ibp_certified_accuracy"] = result.certifiedAccuracy.value
                metrics.extra["certified_n"] = Double(slice.count)
            } catch {
                metrics.warnings.append("certified accuracy could not be measured: \(error)")
            }
        }
    }

    /// The privacy ledger of a DP-SGD recipe (nil for other objectives).
    private func privacyMonitor(trainer: Trainer, trainingExamples: Int) -> PrivacyMonitor? {
        guard case .dpSGD(let spec) = recipe.objective else { return nil }
        return PrivacyMonitor(spec: spec, batchSize: recipe.batchSize, trainingExamples: trainingExamples, objective: trainer.objective)
    }

    /// Refuses a checkpoint whose full recipe differs, naming the difference (the trainer then
    /// checks its own part again). Returns the checkpoint's metadata.
    @discardableResult
    private func checkResumable(_ path: String, loader: any FileLoading) throws -> [String: String] {
        let file = try SafeTensors(contentsOf: path, loader: loader)
        guard let json = file.metadata["recipe"], let saved = try? TrainingRecipe.decode(json: json) else { return file.metadata }
        if let conflict = saved.resumeConflict(with: recipe) {
            throw TrainingError.incompatibleCheckpoint(path: path, problem: "\(conflict); resume with the same options as the original run")
        }
        return file.metadata
    }

    /// Records a written file in the manifest beside it. Returns its SHA-256.
    @discardableResult
    static func record(_ path: String, recipe: String, events: Events) throws -> String {
        let (entry, removedSignature) = try Manifest.record(path, recipe: recipe)
        if removedSignature {
            events.warning("the manifest beside \(path) was signed; its signature was removed because \(path) changed. Sign it again with bulwark manifest sign")
        }
        return entry.sha256
    }

    /// Per-epoch metrics without wall-clock figures, so the same job writes the same file.
    static func deterministicHistory(_ history: [EpochMetrics]) -> String {
        let entries = history.map { m -> [String: Double] in
            var entry = m.extra
            entry["epoch"] = Double(m.epoch)
            entry["loss"] = m.loss
            entry["train_accuracy"] = m.trainAccuracy
            if let v = m.validationAccuracy { entry["val_accuracy"] = v }
            return entry
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(entries)).map { String(decoding: $0, as: UTF8.self) } ?? "[]"
    }
}

import Foundation
import TensorCore
import _FileSystem

/// Training checkpoints: a safetensors file with the model parameters (same keys as a model file),
/// the optimizer state under `optimizer.<name>` (flat, in parameter order), and in `__metadata__`
/// the trainer configuration, the objective's record, the optimizer step count and the metrics of
/// every finished epoch (plus the caller's `checkpointMetadata`, e.g. the full recipe).
///
/// A checkpoint is a file like any other: its state is validated before use (ranges, finiteness,
/// shapes), and a checkpoint of another configuration or objective is refused, naming the difference.
public enum Checkpoint {
    public static let format = "bulwark-checkpoint/2"
    /// Largest optimizer step count accepted (far beyond any real run; guards the arithmetic).
    static let maximumSteps = 1 << 40

    /// Writes the trainer's state atomically, so an interrupted write leaves the previous checkpoint.
    public static func write(_ trainer: Trainer, to path: String) throws {
        var tensors = ModelFile.parameterTensors(of: trainer.network)
        for (name, buffer) in trainer.optimizer.stateBuffers {
            tensors.append(("optimizer.\(name)", .float32(shape: [buffer.count], values: buffer.array)))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var extra = trainer.checkpointMetadata
        extra["checkpoint_format"] = format
        extra["trainer"] = String(decoding: try encoder.encode(trainer.configuration), as: UTF8.self)
        extra["objective"] = trainer.objective.record
        extra["epoch"] = String(trainer.completedEpochs)
        extra["optimizer_step"] = String(trainer.optimizer.stepCount)
        extra["history"] = String(decoding: try encoder.encode(trainer.history), as: UTF8.self)
        let bytes = try SafeTensors.serialize(tensors, metadata: ModelFile.metadata(for: trainer.network, extra: extra))
        try trainer.checkpointWillBeWritten?(path, bytes)
        try AtomicFile.write(bytes, to: path)
    }

    /// The architecture a checkpoint was trained with.
    /// - Throws: `NeuralNetError.incompatibleCheckpoint` if the file is not a checkpoint or names none.
    public static func architecture(of path: String, loader: any FileLoading) throws -> ModelSpec {
        let file = try SafeTensors(contentsOf: path, loader: loader)
        guard file.metadata["checkpoint_format"] != nil, let architecture = file.metadata["architecture"],
              let spec = try? ModelSpec.parse(architecture) else {
            throw NeuralNetError.incompatibleCheckpoint(path: path, problem: "it is not a Bulwark checkpoint with an architecture entry "
                                                        + "(a model file cannot be resumed; checkpoints are written next to --out)")
        }
        return spec
    }

    /// Loads a checkpoint into `trainer` and returns the finished epochs' metrics.
    static func restore(_ trainer: Trainer, from path: String, loader: any FileLoading) throws -> [EpochMetrics] {
        func fail(_ problem: String) -> NeuralNetError { .incompatibleCheckpoint(path: path, problem: problem) }
        let file = try SafeTensors(contentsOf: path, loader: loader)
        guard let format = file.metadata["checkpoint_format"] else {
            throw fail("it is not a Bulwark checkpoint (a model file cannot be resumed; checkpoints are written next to --out)")
        }
        guard format == Self.format else {
            throw fail("its format is '\(format)', this Bulwark resumes '\(Self.format)'; start the run again")
        }
        guard let configurationJSON = file.metadata["trainer"], let objective = file.metadata["objective"],
              let historyJSON = file.metadata["history"], let stepText = file.metadata["optimizer_step"]
        else {
            throw fail("its metadata lacks the trainer configuration, objective, history or optimizer step")
        }
        let saved: TrainerConfiguration
        let history: [EpochMetrics]
        do {
            saved = try JSONDecoder().decode(TrainerConfiguration.self, from: Data(configurationJSON.utf8))
            history = try JSONDecoder().decode([EpochMetrics].self, from: Data(historyJSON.utf8))
        } catch {
            throw fail("its metadata does not decode (\(decodingErrorText(error)))")
        }
        if let conflict = saved.resumeConflict(with: trainer.configuration) {
            throw fail("\(conflict); resume with the same options as the original run")
        }
        guard objective == trainer.objective.record else {
            throw fail("the checkpoint was made with objective \(objective), this run has \(trainer.objective.record); resume with the same options as the original run")
        }
        guard history.count <= trainer.configuration.epochs else {
            throw fail("it has \(history.count) finished epochs, more than the \(trainer.configuration.epochs) requested")
        }
        guard history.enumerated().allSatisfy({ $0.element.epoch == $0.offset + 1 }) else {
            throw fail("its history does not list epochs 1…\(history.count) in order")
        }
        guard let epochText = file.metadata["epoch"], Int(epochText) == history.count else {
            throw fail("its epoch '\(file.metadata["epoch"] ?? "missing")' does not match the \(history.count) epochs of its history")
        }
        guard let steps = Int(stepText), steps >= 0, steps <= maximumSteps else {
            throw fail("its optimizer step '\(stepText)' is not a count between 0 and \(maximumSteps)")
        }
        try ModelFile.fillParameters(of: trainer.network, from: file, ignoringKeysWithPrefix: "optimizer.")
        for (name, buffer) in trainer.optimizer.stateBuffers {
            let state = try file.floatTensor("optimizer.\(name)")
            guard state.count == buffer.count else {
                throw fail("optimizer state '\(name)' has \(state.count) values, expected \(buffer.count)")
            }
            guard state.scalars.allSatisfy(\.isFinite) else {
                throw fail("optimizer state '\(name)' contains NaN or infinite values")
            }
            if name == "exp_avg_sq", state.scalars.contains(where: { $0 < 0 }) {
                throw fail("optimizer state '\(name)' (a second moment) contains negative values")
            }
            state.scalars.withUnsafeBufferPointer { buffer.pointer.update(from: $0.baseAddress!, count: buffer.count) }
        }
        trainer.optimizer.stepCount = steps
        return history
    }
}

import Foundation
import TensorCore
import _FileSystem

/// Training checkpoints: a safetensors file with the model parameters (same keys as a model file),
/// the optimizer state under `optimizer.<name>` (flat, in parameter order), and in `__metadata__`
/// the recipe, the optimizer step count and the metrics of every finished epoch.
public enum Checkpoint {
    public static let format = "bulwark-checkpoint/1"

    /// Writes the trainer's state atomically, so an interrupted write leaves the previous checkpoint.
    public static func write(_ trainer: Trainer, to path: String) throws {
        var tensors = ModelFile.parameterTensors(of: trainer.network)
        for (name, buffer) in trainer.optimizer.stateBuffers {
            tensors.append(("optimizer.\(name)", .float32(shape: [buffer.count], values: buffer.array)))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let metadata = ModelFile.metadata(for: trainer.network, extra: [
            "checkpoint_format": format,
            "recipe": trainer.recipe.json,
            "epoch": String(trainer.completedEpochs),
            "optimizer_step": String(trainer.optimizer.stepCount),
            "history": String(decoding: try encoder.encode(trainer.history), as: UTF8.self),
        ])
        try AtomicFile.write(SafeTensors.serialize(tensors, metadata: metadata), to: path)
    }

    /// Loads a checkpoint into `trainer` and returns the finished epochs' metrics.
    static func restore(_ trainer: Trainer, from path: String, loader: any FileLoading) throws -> [EpochMetrics] {
        func fail(_ problem: String) -> NeuralNetError { .incompatibleCheckpoint(path: path, problem: problem) }
        let file = try SafeTensors(contentsOf: path, loader: loader)
        guard file.metadata["checkpoint_format"] == format,
              let recipeJSON = file.metadata["recipe"],
              let historyJSON = file.metadata["history"],
              let steps = file.metadata["optimizer_step"].flatMap(Int.init)
        else {
            throw fail("it is not a Bulwark checkpoint (a model file cannot be resumed; checkpoints are written next to --out)")
        }
        let saved: TrainingRecipe
        let history: [EpochMetrics]
        do {
            saved = try TrainingRecipe.decode(json: recipeJSON)
            history = try JSONDecoder().decode([EpochMetrics].self, from: Data(historyJSON.utf8))
        } catch {
            throw fail("its metadata does not decode (\(decodingErrorText(error)))")
        }
        if let conflict = saved.resumeConflict(with: trainer.recipe) {
            throw fail("\(conflict); resume with the same options as the original run")
        }
        guard history.count <= trainer.recipe.epochs else {
            throw fail("it has \(history.count) finished epochs, more than the \(trainer.recipe.epochs) requested")
        }
        try ModelFile.fillParameters(of: trainer.network, from: file, ignoringKeysWithPrefix: "optimizer.")
        for (name, buffer) in trainer.optimizer.stateBuffers {
            let state = try file.floatTensor("optimizer.\(name)")
            guard state.count == buffer.count else {
                throw fail("optimizer state '\(name)' has \(state.count) values, expected \(buffer.count)")
            }
            state.scalars.withUnsafeBufferPointer { buffer.pointer.update(from: $0.baseAddress!, count: buffer.count) }
        }
        trainer.optimizer.stepCount = steps
        return history
    }
}

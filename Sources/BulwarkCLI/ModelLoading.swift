import ArgumentParser
import NeuralNet

/// Loads a model file for a command, turning format errors into a clear message.
enum ModelLoading {
    static func load(_ path: String) throws -> ModelFile.Loaded {
        try ModelFile.load(contentsOf: path)
    }
}

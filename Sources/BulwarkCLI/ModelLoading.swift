import ArgumentParser
import NeuralNet
import Security
import _FileSystem

/// Loads model files for the commands: verified (and decrypted) by the loader before parsing.
enum ModelLoading {
    static func load(_ path: String, loader: any FileLoading) throws -> ModelFile.Loaded {
        try ModelFile.load(contentsOf: path, loader: loader)
    }

    /// Records a file the command wrote in the manifest beside it, so it verifies next time.
    /// - Returns: the file's SHA-256.
    @discardableResult
    static func record(_ path: String, recipe: String?) throws -> String {
        let (entry, removedSignature) = try Manifest.record(path, recipe: recipe)
        if removedSignature {
            log.warning("the manifest beside \(path) was signed; its signature was removed because \(path) changed. Sign it again with bulwark manifest sign")
        }
        return entry.sha256
    }
}

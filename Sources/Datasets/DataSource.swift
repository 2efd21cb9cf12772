import Foundation

/// Where the MNIST-format data comes from, and a sentence saying so for the user.
public struct DataSource: Sendable, Equatable {
    public let directory: String
    public let description: String

    /// Environment variable naming a data directory.
    public static let environmentVariable = "BULWARK_DATA_DIR"
    /// Where Debian's `dataset-fashion-mnist` package installs the data.
    public static let debianDirectory = "/usr/share/datasets/fashion-mnist"
    /// The sample committed in the repository.
    public static let sampleDirectory = "datasets/fashion-mnist-sample"

    /// Chooses the data directory: `--data-dir`, then `$BULWARK_DATA_DIR`, then the Debian package, then
    /// the committed sample (looked up from the working directory and from the executable's location).
    /// - Throws: `DatasetError.notFound` naming what was tried and how to fix it.
    public static func locate(dataDirectory: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                              executablePath: String = CommandLine.arguments.first ?? "") throws -> DataSource {
        func check(_ directory: String, _ origin: String) throws -> DataSource {
            guard MNISTFormat.hasSplit(.train, in: directory) || MNISTFormat.hasSplit(.test, in: directory) else {
                throw DatasetError.notFound("\(origin) \(directory) holds no MNIST-format files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-…); point it at a directory that does")
            }
            return DataSource(directory: directory, description: "\(directory) (\(origin))")
        }
        if let dataDirectory { return try check(dataDirectory, "--data-dir") }
        if let fromEnvironment = environment[environmentVariable], !fromEnvironment.isEmpty {
            return try check(fromEnvironment, "$\(environmentVariable)")
        }
        if MNISTFormat.hasSplit(.train, in: debianDirectory) {
            return DataSource(directory: debianDirectory, description: "full Fashion-MNIST from \(debianDirectory) (Debian package dataset-fashion-mnist)")
        }
        var candidates = [sampleDirectory]
        var directory = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            candidates.append(directory.appendingPathComponent(sampleDirectory).path)
            directory.deleteLastPathComponent()
        }
        if let sample = candidates.first(where: { MNISTFormat.hasSplit(.train, in: $0) }) {
            return DataSource(directory: sample, description: "the small Fashion-MNIST sample in \(sample) (install dataset-fashion-mnist for the full data)")
        }
        throw DatasetError.notFound("no Fashion-MNIST data found: install it (apt-get install dataset-fashion-mnist), pass --data-dir DIR, or set \(environmentVariable)")
    }
}

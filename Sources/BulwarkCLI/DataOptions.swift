import ArgumentParser
import Datasets
import Foundation
import TensorCore
import _FileSystem

/// Where examples come from: an MNIST-format directory (Fashion-MNIST by default) or CSV files.
struct DataOptions: ParsableArguments {
    @Option(help: ArgumentHelp("MNIST-format data directory (default: $BULWARK_DATA_DIR, then /usr/share/datasets/fashion-mnist, then the committed sample).", valueName: "dir"))
    var dataDir: String?

    @Option(name: .customLong("train-csv"), help: ArgumentHelp("CSV file of training examples (label column + feature columns) instead of MNIST-format data.", valueName: "file"))
    var trainCSV: String?

    @Option(name: .customLong("test-csv"), help: ArgumentHelp("CSV file of test examples.", valueName: "file"))
    var testCSV: String?

    @Option(help: "Zero-based label column of the CSV files (-1 = last).")
    var labelColumn: Int = 0

    @Option(help: "Factor applied to CSV features (1/255 = 0.00392156862745098 maps 0–255 pixels to [0, 1]).")
    var featureScale: Float = 1

    @Option(help: ArgumentHelp("Use only the first N examples of each split.", valueName: "n"))
    var limit: Int?

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
        if !(featureScale.isFinite && featureScale > 0) {
            throw ValidationError("--feature-scale must be a positive number, got \(featureScale)")
        }
        if (trainCSV != nil || testCSV != nil) && dataDir != nil {
            throw ValidationError("give either --data-dir or --train-csv/--test-csv, not both")
        }
    }

    /// Loads one split and says where it came from.
    func load(_ split: Split, loader: any FileLoading) throws -> (data: LabeledData, description: String) {
        if let csv = split == .train ? trainCSV : testCSV {
            let data = try CSVDataset.load(path: csv, options: .init(labelColumn: labelColumn, scale: featureScale), loader: loader)
            let limited = limit.map { data.prefix($0) } ?? data
            return (limited, "\(csv) (CSV, \(limited.count) examples)")
        }
        if trainCSV != nil || testCSV != nil {
            throw ValidationError("--\(split == .train ? "train" : "test")-csv is needed when CSV data is used")
        }
        let source = try DataSource.locate(dataDirectory: dataDir)
        let data = try MNISTFormat.load(directory: source.directory, split: split, limit: limit, loader: loader)
        return (data, "\(source.description), \(split.rawValue) split, \(data.count) examples")
    }
}

/// Engine settings shared by the commands that compute.
struct EngineOptions: ParsableArguments {
    @Option(help: "Threads that run the shards of each batch (default: 2, or 1 on a single-core machine). Results do not depend on it.")
    var threads: Int?

    func validate() throws {
        if let threads, !(1...256).contains(threads) {
            throw ValidationError("--threads must be between 1 and 256, got \(threads)")
        }
    }

    /// Sets up the shared worker pool; call before creating networks.
    func apply() {
        if let threads { WorkerPool.configureShared(threadCount: threads) }
    }
}

import ArgumentParser
import Datasets
import Foundation
import TensorCore
import _FileSystem

/// Where examples come from, the same options for every command that reads data (`train`, `eval`,
/// `attack`, `bench`): an MNIST-format directory (Fashion-MNIST by default) or CSV files.
package struct DataOptions: ParsableArguments {
    package init() {}

    @Option(help: ArgumentHelp("MNIST-format data directory (default: $BULWARK_DATA_DIR, then /usr/share/datasets/fashion-mnist, then the committed sample).", valueName: "dir"))
    var dataDir: String?

    @Option(name: .customLong("train-csv"), help: ArgumentHelp("CSV file of training examples (label column + feature columns) instead of MNIST-format data.", valueName: "file"))
    var trainCSV: String?

    @Option(name: .customLong("test-csv"), help: ArgumentHelp("CSV file of test examples.", valueName: "file"))
    var testCSV: String?

    // `.unconditional`: the value may be negative ("--label-column -1"), which would otherwise be read as a flag.
    @Option(parsing: .unconditional, help: "Zero-based label column of the CSV files (-1 = last; default 0).")
    var labelColumn: Int?

    @Option(help: ArgumentHelp("Factor applied to CSV features, e.g. 1/255 to map 0–255 pixels to [0, 1] (default 1).", valueName: "x"))
    var featureScale: Real?

    @Option(help: ArgumentHelp("Use only the first N examples of each split.", valueName: "n"))
    var limit: Int?

    var usesCSV: Bool { trainCSV != nil || testCSV != nil }

    package func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, got \(limit)") }
        if let featureScale, !(featureScale.value.isFinite && featureScale.value > 0) {
            throw ValidationError("--feature-scale must be a positive number, got \(featureScale)")
        }
        if usesCSV && dataDir != nil {
            throw ValidationError("give either --data-dir or --train-csv/--test-csv, not both")
        }
    }

    /// `--label-column` and `--feature-scale` describe CSV files: refused without them (bench also
    /// accepts them for a configuration's CSV data, and checks that itself).
    package func checkCSVOptions() throws {
        if !usesCSV && (labelColumn != nil || featureScale != nil) {
            throw ValidationError("--label-column and --feature-scale apply to CSV data (--train-csv, --test-csv)")
        }
    }

    /// The data these options describe.
    package var spec: DataSpec {
        let source: DataSpec.Source = usesCSV
            ? .csv(train: trainCSV, test: testCSV, labelColumn: labelColumn ?? 0, featureScale: featureScale?.value ?? 1)
            : .mnistFormat(directory: dataDir)
        return DataSpec(source: source, limit: limit)
    }

    /// Whether any option was given (bench: they replace the configuration's dataset).
    var isSet: Bool { dataDir != nil || usesCSV }
}

/// Engine settings shared by the commands that compute.
package struct EngineOptions: ParsableArguments {
    package init() {}

    @Option(help: "Threads that run the shards of each batch, or models trained side by side (default: 2, or 1 on a single-core machine). Results do not depend on it.")
    package var threads: Int?

    package func validate() throws {
        if let threads, !(1...256).contains(threads) {
            throw ValidationError("--threads must be between 1 and 256, got \(threads)")
        }
    }

    /// Sets up the shared worker pool; call before creating networks.
    package func apply() {
        if let threads { WorkerPool.configureShared(threadCount: threads) }
    }
}

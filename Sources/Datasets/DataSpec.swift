import Foundation
import TensorCore
import _FileSystem

/// Where a command's examples come from: one description shared by `train`, `eval`, `attack` and
/// `bench`, so a model trained on some data can be evaluated and attacked on the same data.
///
/// - MNIST-format directory (`train-images-idx3-ubyte[.gz]`, …), by default located by
///   `DataSource.locate` (`$BULWARK_DATA_DIR`, the Debian package, the committed sample);
/// - or CSV files (an integer label column and numeric features, scaled by `featureScale`).
///
/// `limit` keeps the first examples of each split.
public struct DataSpec: Equatable, Sendable {
    public enum Source: Equatable, Sendable {
        case mnistFormat(directory: String?)
        case csv(train: String?, test: String?, labelColumn: Int, featureScale: Float)
    }

    public var source: Source
    public var limit: Int?

    public init(source: Source = .mnistFormat(directory: nil), limit: Int? = nil) {
        self.source = source
        self.limit = limit
    }

    /// The files this data is read from, as far as they are named (CSV files; an IDX directory's
    /// files are found when loading), so outputs can be checked against them.
    public var namedFiles: [String] {
        if case .csv(let train, let test, _, _) = source { return [train, test].compactMap { $0 } }
        return []
    }

    /// - Throws: `DatasetError.invalidSpec` naming a bad value.
    public func validate() throws {
        if let limit, limit < 1 { throw DatasetError.invalidSpec("the example limit must be at least 1, got \(limit)") }
        if case .csv(let train, let test, _, let scale) = source {
            guard train != nil || test != nil else { throw DatasetError.invalidSpec("CSV data needs a training or a test file") }
            guard scale.isFinite && scale > 0 else {
                throw DatasetError.invalidSpec("the feature scale must be a positive number, got \(scale)")
            }
        }
    }

    /// Loads one split (each file read through `loader`, which verifies and decrypts it), and says
    /// where it came from.
    /// - Throws: `DatasetError` naming the file and the problem, or what the loader throws.
    public func load(_ split: Split, loader: any FileLoading) throws -> (data: LabeledData, description: String) {
        try validate()
        switch source {
        case .csv(let train, let test, let labelColumn, let scale):
            guard let path = split == .train ? train : test else {
                throw DatasetError.notFound("no CSV file for the \(split.rawValue) split; give --\(split.rawValue)-csv FILE")
            }
            let data = try CSVDataset.load(path: path, options: .init(labelColumn: labelColumn, scale: scale), loader: loader)
            let limited = limit.map { data.prefix($0) } ?? data
            return (limited, "\(path) (CSV, \(limited.count) examples)")
        case .mnistFormat(let directory):
            let located = try DataSource.locate(dataDirectory: directory)
            let data = try MNISTFormat.load(directory: located.directory, split: split, limit: limit, loader: loader)
            return (data, "\(located.description), \(split.rawValue) split, \(data.count) examples")
        }
    }
}

import Foundation
import TensorCore
import _FileSystem

/// Training or test split of an MNIST-format dataset.
public enum Split: String, Sendable, CaseIterable {
    case train, test

    var filePrefix: String { self == .train ? "train" : "t10k" }
}

/// Datasets in the MNIST directory layout: `train-images-idx3-ubyte[.gz]`,
/// `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`.
/// Fashion-MNIST (Xiao et al., 2017), MNIST and KMNIST all work. Pixels are scaled to [0, 1].
public enum MNISTFormat {
    public static let fashionClassNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]

    /// Path of the images or labels file of `split` in `directory`, preferring `.gz`; nil if neither exists.
    public static func file(_ kind: String, split: Split, in directory: String) -> String? {
        let base = "\(directory)/\(split.filePrefix)-\(kind)-idx\(kind == "images" ? 3 : 1)-ubyte"
        for candidate in [base + ".gz", base] where FileManager.default.fileExists(atPath: candidate) {
            return candidate
        }
        return nil
    }

    /// True if `directory` holds both files of `split`.
    public static func hasSplit(_ split: Split, in directory: String) -> Bool {
        file("images", split: split, in: directory) != nil && file("labels", split: split, in: directory) != nil
    }

    /// Loads one split: images (n, rows·columns) in [0, 1] and labels.
    /// - Parameter limit: keep only the first `limit` examples.
    /// - Throws: `DatasetError` if a file is missing, invalid, or images and labels disagree.
    /// - Parameter loader: reads each file (and may verify or decrypt it first).
    public static func load(directory: String, split: Split, limit: Int? = nil,
                            loader: any FileLoading = PlainFileLoader()) throws -> LabeledData {
        guard let imagesPath = file("images", split: split, in: directory),
              let labelsPath = file("labels", split: split, in: directory)
        else {
            throw DatasetError.notFound("\(directory) has no \(split.filePrefix)-images-idx3-ubyte[.gz] and \(split.filePrefix)-labels-idx1-ubyte[.gz]")
        }
        // With a limit, compressed files inflate only as far as the first `limit` examples.
        let images = try IDXFile(contentsOf: imagesPath, loader: loader, maximumItems: limit)
        let labels = try IDXFile(contentsOf: labelsPath, loader: loader, maximumItems: limit)
        guard images.dimensions.count == 3 else {
            throw DatasetError.invalidIDX(path: imagesPath, problem: "an image file must have rank 3 (count, rows, columns), this one has dimensions \(images.dimensions)")
        }
        guard labels.dimensions.count == 1 else {
            throw DatasetError.invalidIDX(path: labelsPath, problem: "a label file must have rank 1, this one has dimensions \(labels.dimensions)")
        }
        guard images.dimensions[0] == labels.dimensions[0] else {
            throw DatasetError.mismatch("\(imagesPath) holds \(images.dimensions[0]) images but \(labelsPath) holds \(labels.dimensions[0]) labels")
        }
        let count = min(images.dimensions[0], limit ?? .max)
        let pixels = images.dimensions[1] * images.dimensions[2]
        let scalars = images.data[0..<(count * pixels)].map { Float($0) / 255 }
        let labelValues = labels.data[0..<count].map(Int.init)
        let classCount = max(10, (labelValues.max() ?? 0) + 1)
        return LabeledData(features: Tensor(shape: [count, pixels], scalars: scalars), labels: labelValues, classCount: classCount)
    }
}

import NeuralNet
import TensorCore

/// A defence that inspects a training set and the model trained on it, and flags the examples it
/// believes poisoned; the experiment then retrains without them.
public protocol PoisonDefence: Sendable, CustomStringConvertible {
    /// The command-line name (`spectral`, `clustering`, `loss`).
    var name: String { get }
    /// One flag per example of `data`.
    func flag(_ data: LabeledData, model: Sequential, seed: UInt64) throws -> [Bool]
}

/// The defences, as values a command line or configuration names.
public enum PoisonDefenceSpec: String, CaseIterable, Sendable {
    case spectral, clustering, loss

    /// - Parameter expectedRate: the defender's upper bound on the poisoned fraction (spectral
    ///   signatures remove 1.5× it from each class, loss filtering from the whole set).
    public func makeDefence(expectedRate: Double) throws -> any PoisonDefence {
        switch self {
        case .spectral: try SpectralSignatures(expectedRate: expectedRate)
        case .clustering: ActivationClustering()
        case .loss: try LossFiltering(expectedRate: expectedRate)
        }
    }
}

extension LabeledData {
    /// The indices of each class's examples (by the labels as given, poisoned or not).
    var indicesByClass: [[Int]] {
        var result = [[Int]](repeating: [], count: classCount)
        for (i, label) in labels.enumerated() { result[label].append(i) }
        return result
    }
}

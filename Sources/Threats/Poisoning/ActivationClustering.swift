import NeuralNet
import TensorCore

/// Activation clustering (Chen et al., 2018, "Detecting Backdoor Attacks on Deep Neural Networks by
/// Activation Clustering"): within each class, the penultimate activations are reduced to
/// `dimensions` dimensions and split into two clusters by k-means; a cluster holding at most
/// `sizeThreshold` of its class is flagged as poison (the paper's relative-size analysis; clean
/// classes split into two comparable halves).
///
/// The paper reduces with ICA; this uses PCA (the leading principal directions), which keeps the
/// between-cluster direction the split needs. Like the paper's size analysis it cannot flag a
/// class whose poison is the majority.
public struct ActivationClustering: PoisonDefence {
    public var dimensions = 10
    public var sizeThreshold = 0.35
    public var restarts = 5

    public init() {}

    public var name: String { "clustering" }
    public var description: String { "activation clustering (PCA to \(dimensions), 2-means, clusters ≤ \(sizeThreshold) of their class)" }

    public func flag(_ data: LabeledData, model: Sequential, seed: UInt64) throws -> [Bool] {
        let (features, width) = try FeatureSpace.penultimate(of: model, on: data)
        var flags = [Bool](repeating: false, count: data.count)
        for (label, indices) in data.indicesByClass.enumerated() where indices.count >= 4 {
            var generator = RandomGenerator(seed: seed, stream: .activationClustering, index: UInt64(label))
            let assignment = try clusters(features, width: width, indices: indices, generator: &generator)
            let sizes = [assignment.filter { $0 == 0 }.count, assignment.filter { $0 == 1 }.count]
            let smaller = sizes[0] <= sizes[1] ? 0 : 1
            guard Double(sizes[smaller]) / Double(indices.count) <= sizeThreshold else { continue }
            for (r, cluster) in assignment.enumerated() where cluster == smaller { flags[indices[r]] = true }
        }
        return flags
    }

    /// The 2-means cluster of each of `indices` in the reduced space.
    func clusters(_ features: [Float], width: Int, indices: [Int], generator: inout RandomGenerator) throws -> [Int] {
        let centred = FeatureSpace.centredRows(features, width: width, indices: indices)
        let k = min(dimensions, width)
        let directions = try FeatureSpace.principalDirections(centred: centred, rows: indices.count, width: width, k: k)
        let reduced = FeatureSpace.project(centred, rows: indices.count, width: width, onto: directions, k: k)
        return FeatureSpace.kMeans(reduced, rows: indices.count, width: k, k: 2, restarts: restarts, generator: &generator)
    }
}

extension RandomStream {
    /// k-means seeding of activation clustering, per class.
    public static let activationClustering = RandomStream("threats.poisoning.activation-clustering")
}

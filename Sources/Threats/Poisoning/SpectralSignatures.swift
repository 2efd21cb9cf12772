import NeuralNet
import TensorCore

/// Spectral signatures (Tran, Li & Mądry, 2018, "Spectral Signatures in Backdoor Attacks"): within
/// each class, poisoned examples leave a trace along the top singular vector of the centred
/// penultimate representations. Each example's score is its squared projection on that vector;
/// the 1.5·ε·nᶜ highest-scoring examples of each class are flagged, ε being the defender's bound
/// on the poisoned fraction.
///
/// The paper's setting has poison as a minority of its class. When a class is mostly poison (a
/// 10% BadNets rate on ten balanced classes makes the target class about half poison), both
/// clusters sit far from the mean and the score cannot tell them apart; the README's table shows it.
public struct SpectralSignatures: PoisonDefence {
    public let expectedRate: Double
    public static let removalFactor = 1.5

    public init(expectedRate: Double) throws {
        try require(expectedRate > 0 && expectedRate * Self.removalFactor < 1, "expected poison rate", expectedRate,
                    "must be in (0, \(1 / Self.removalFactor)) (1.5× it is removed from each class)")
        self.expectedRate = expectedRate
    }

    public var name: String { "spectral" }
    public var description: String { "spectral signatures (removes 1.5 × \(expectedRate) of each class)" }

    public func flag(_ data: LabeledData, model: Sequential, seed: UInt64) throws -> [Bool] {
        let (features, width) = try FeatureSpace.penultimate(of: model, on: data)
        var flags = [Bool](repeating: false, count: data.count)
        for indices in data.indicesByClass where indices.count >= 2 {
            let scores = try Self.scores(features, width: width, indices: indices)
            let removed = Int((Self.removalFactor * expectedRate * Double(indices.count)).rounded())
            let ranked = indices.indices.sorted { scores[$0] > scores[$1] }
            for r in ranked.prefix(removed) { flags[indices[r]] = true }
        }
        return flags
    }

    /// The outlier score of each of `indices`: the squared projection of its centred
    /// representation on the top singular vector of the class's centred representations.
    static func scores(_ features: [Float], width: Int, indices: [Int]) throws -> [Double] {
        let centred = FeatureSpace.centredRows(features, width: width, indices: indices)
        let top = try FeatureSpace.principalDirections(centred: centred, rows: indices.count, width: width, k: 1)
        let projection = FeatureSpace.project(centred, rows: indices.count, width: width, onto: top, k: 1)
        return projection.map { $0 * $0 }
    }
}

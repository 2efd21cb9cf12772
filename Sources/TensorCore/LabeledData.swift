/// Examples with integer class labels: `features` is (n, d) with pixels or features, `labels` has n
/// entries in `0..<classCount`.
public struct LabeledData: Sendable {
    public var features: Tensor
    public var labels: [Int]
    public let classCount: Int

    public init(features: Tensor, labels: [Int], classCount: Int) {
        precondition(features.rank == 2 && features.shape[0] == labels.count,
                     "features \(features.shape) and \(labels.count) labels disagree")
        precondition(labels.allSatisfy { $0 >= 0 && $0 < classCount }, "label outside 0..<\(classCount)")
        self.features = features
        self.labels = labels
        self.classCount = classCount
    }

    /// The first label that is not a class of a model with `classes` outputs, if any: eval, attack
    /// and bench refuse such data instead of counting every such example as misclassified.
    public func labelOutside(classes: Int) -> Int? { labels.first { $0 >= classes } }

    public var count: Int { labels.count }
    public var featureCount: Int { features.shape[1] }

    /// The examples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> LabeledData {
        LabeledData(features: features.gatherRows(indices), labels: indices.map { labels[$0] }, classCount: classCount)
    }

    /// The first `n` examples (all of them if there are fewer).
    public func prefix(_ n: Int) -> LabeledData {
        subset(Array(0..<min(n, count)))
    }

    /// A seeded random split into (train, validation) with `round(fraction · n)` validation examples.
    public func split(validationFraction fraction: Double, seed: UInt64) -> (train: LabeledData, validation: LabeledData) {
        precondition(fraction >= 0 && fraction < 1, "validation fraction must be in [0, 1), got \(fraction)")
        var order = Array(0..<count)
        var generator = RandomGenerator(seed: seed, stream: .validationSplit)
        generator.shuffle(&order)
        let validationCount = Int((fraction * Double(count)).rounded())
        let validation = Array(order[..<validationCount]).sorted()
        let train = Array(order[validationCount...]).sorted()
        return (subset(train), subset(validation))
    }
}

import TensorCore

/// A data-poisoning attack on a training set: which examples it changes and how.
///
/// - Label flipping: random (each chosen example gets a uniformly drawn other class) or targeted
///   (chosen examples of `source` are relabelled `target`).
/// - BadNets backdoor (Gu, Dolan-Gavitt & Garg, 2017, "BadNets: Identifying Vulnerabilities in the
///   Machine Learning Model Supply Chain"): chosen examples whose class is not `target` get the
///   trigger stamped on and the label `target`; at test time the trigger alone steers the model.
///
/// The poison rate is a fraction of the whole training set, and exact: ⌊rate · n + ½⌋ examples
/// are poisoned: the first ones of a seeded shuffle of the eligible examples, so with one seed the
/// poisoned sets of increasing rates are nested, and a curve over rates varies only the rate.
/// Random flipping draws each example's new label from a stream of its own index, so an example
/// poisoned at two rates gets the same label at both.
public enum PoisonAttack: Equatable, Sendable, CustomStringConvertible {
    case randomLabelFlip
    case targetedLabelFlip(source: Int, target: Int)
    case backdoor(BackdoorTrigger, target: Int)

    public var description: String {
        switch self {
        case .randomLabelFlip: "random label flipping"
        case .targetedLabelFlip(let source, let target): "targeted label flipping \(source) → \(target)"
        case .backdoor(let trigger, let target): "BadNets backdoor (\(trigger), target class \(target))"
        }
    }

    /// The command-line name: `label-flip` or `backdoor`.
    public var name: String {
        switch self {
        case .randomLabelFlip, .targetedLabelFlip: "label-flip"
        case .backdoor: "backdoor"
        }
    }

    /// The class the attack wants test inputs classified as (nil for random flipping).
    public var target: Int? {
        switch self {
        case .randomLabelFlip: nil
        case .targetedLabelFlip(_, let target), .backdoor(_, let target): target
        }
    }

    /// A training set with `rate` of its examples poisoned.
    /// - Throws: `ThreatError` if the rate is outside [0, 1], a class is outside the data's
    ///   classes, the trigger does not fit the inputs, or too few examples are eligible.
    public func poison(_ data: LabeledData, rate: Double, seed: UInt64) throws -> PoisonedData {
        try require(rate >= 0 && rate <= 1, "poison rate", rate, "must be in [0, 1]")
        try validate(classCount: data.classCount, featureCount: data.featureCount)
        let eligible = eligibleIndices(data)
        let count = try poisonCount(rate: rate, examples: data.count, eligible: eligible.count)
        var generator = RandomGenerator(seed: seed, stream: .poisonSelection)
        var order = eligible
        generator.shuffle(&order)
        let chosen = Array(order.prefix(count)).sorted()

        var features = data.features
        var labels = data.labels
        for i in chosen {
            switch self {
            case .randomLabelFlip:
                var labelGenerator = RandomGenerator(seed: seed, stream: .poisonLabels, index: UInt64(i))
                let other = labelGenerator.nextInt(below: data.classCount - 1)
                labels[i] = other >= labels[i] ? other + 1 : other
            case .targetedLabelFlip(_, let target):
                labels[i] = target
            case .backdoor(let trigger, let target):
                trigger.stamp(&features.scalars, row: i, width: data.featureCount)
                labels[i] = target
            }
        }
        return PoisonedData(data: LabeledData(features: features, labels: labels, classCount: data.classCount), poisoned: chosen)
    }

    /// The examples the attack may change: all (random flipping), the source class's (targeted
    /// flipping), or those not of the target class (backdoor).
    func eligibleIndices(_ data: LabeledData) -> [Int] {
        switch self {
        case .randomLabelFlip: Array(0..<data.count)
        case .targetedLabelFlip(let source, _): data.labels.indices.filter { data.labels[$0] == source }
        case .backdoor(_, let target): data.labels.indices.filter { data.labels[$0] != target }
        }
    }

    /// ⌊rate · n + ½⌋, if that many examples are eligible.
    func poisonCount(rate: Double, examples: Int, eligible: Int) throws -> Int {
        let count = Int((rate * Double(examples)).rounded(.toNearestOrAwayFromZero))
        guard count <= eligible else {
            throw ThreatError.dataMismatch("a poison rate of \(rate) needs \(count) eligible examples, the data has \(eligible) "
                                           + "(\(self)); lower --rate")
        }
        return count
    }

    /// Checks, without poisoning anything, that `rates` of `train` can be poisoned and that the
    /// attack's success can be measured on `test`.
    public func check(train: LabeledData, test: LabeledData, rates: [Double]) throws {
        try validate(classCount: train.classCount, featureCount: train.featureCount)
        let eligible = eligibleIndices(train).count
        for rate in rates { _ = try poisonCount(rate: rate, examples: train.count, eligible: eligible) }
        _ = try successTest(test)
    }

    /// Test inputs the attack is judged on, and the class it wants for them: triggered test inputs
    /// whose true class is not the target (backdoor), or the source class's test inputs (targeted
    /// flipping). Nil for random flipping, which has no target.
    public func successTest(_ test: LabeledData) throws -> LabeledData? {
        try validate(classCount: test.classCount, featureCount: test.featureCount)
        switch self {
        case .randomLabelFlip:
            return nil
        case .targetedLabelFlip(let source, _):
            let sources = test.labels.indices.filter { test.labels[$0] == source }
            guard !sources.isEmpty else {
                throw ThreatError.dataMismatch("the test data has no example of the source class \(source): the attack's success cannot be measured; use more test data")
            }
            return test.subset(sources)
        case .backdoor(let trigger, let target):
            var triggered = test.subset(test.labels.indices.filter { test.labels[$0] != target })
            guard triggered.count > 0 else {
                throw ThreatError.dataMismatch("every test example is of the target class \(target): the attack's success cannot be measured; use more test data")
            }
            for i in 0..<triggered.count { trigger.stamp(&triggered.features.scalars, row: i, width: test.featureCount) }
            return triggered
        }
    }

    /// What can be checked before the data is known.
    public func validate() throws {
        switch self {
        case .randomLabelFlip: break
        case .targetedLabelFlip(let source, let target):
            try require(source >= 0 && target >= 0, "class", "\(source) → \(target)", "classes are ≥ 0")
            try require(source != target, "source class", source, "must differ from the target class")
        case .backdoor(let trigger, let target):
            try require(target >= 0, "target class", target, "must be ≥ 0")
            try trigger.validate()
        }
    }

    /// `validate()`, and what needs the data: classes in range, the trigger inside the image.
    func validate(classCount: Int, featureCount: Int) throws {
        try validate()
        switch self {
        case .randomLabelFlip:
            try require(classCount >= 2, "class count", classCount, "label flipping needs at least two classes")
        case .targetedLabelFlip(let source, let target):
            try require(source < classCount, "source class", source, "must be in 0..<\(classCount)")
            try require(target < classCount, "target class", target, "must be in 0..<\(classCount)")
        case .backdoor(let trigger, let target):
            try require(target < classCount, "target class", target, "must be in 0..<\(classCount)")
            try trigger.validate(featureCount: featureCount)
        }
    }
}

/// A training set after poisoning, with the indices of the poisoned examples (ascending).
public struct PoisonedData: Sendable {
    public var data: LabeledData
    public var poisoned: [Int]

    /// One flag per example: poisoned or not.
    public var isPoisoned: [Bool] {
        var flags = [Bool](repeating: false, count: data.count)
        for i in poisoned { flags[i] = true }
        return flags
    }
}

/// BadNets' trigger: a square patch of `size` × `size` pixels set to `value`, with its top-left
/// corner at (`row`, `column`) of an image `imageWidth` pixels wide (rows of the flattened input).
/// By default a 3 × 3 white square one pixel from the bottom-right corner of a 28 × 28 image.
public struct BackdoorTrigger: Equatable, Sendable, CustomStringConvertible {
    public var size: Int
    public var row: Int
    public var column: Int
    public var value: Float
    public var imageWidth: Int

    public init(size: Int = 3, row: Int? = nil, column: Int? = nil, value: Float = 1, imageWidth: Int = 28) {
        self.size = size
        // Wrapping arithmetic: absurd sizes are refused by `validate`, never trapped on here.
        self.row = row ?? imageWidth &- size &- 1
        self.column = column ?? imageWidth &- size &- 1
        self.value = value
        self.imageWidth = imageWidth
    }

    public var description: String { "\(size)×\(size) patch of \(value) at row \(row), column \(column)" }

    /// What can be checked without the data: sizes and positions in range (no arithmetic that
    /// could overflow on hostile values).
    func validate() throws {
        try require(imageWidth >= 1 && imageWidth <= 65_536, "image width", imageWidth, "must be between 1 and 65536 pixels")
        try require(size >= 1 && size <= imageWidth, "trigger size", size, "must be between 1 and the image width \(imageWidth)")
        try require(row >= 0 && row <= 65_536, "trigger row", row, "must be between 0 and the image height minus the trigger size")
        try require(column >= 0 && column <= imageWidth - size, "trigger column", column,
                    "must keep the \(size)-pixel patch inside the \(imageWidth) columns (at most \(imageWidth - size))")
        try require(value.isFinite, "trigger value", value, "must be finite")
    }

    /// The placement checks that need the input width (after `validate()`).
    func validate(featureCount: Int) throws {
        try require(featureCount % imageWidth == 0, "image width", imageWidth,
                    "must divide the \(featureCount) input features (an image of width × height pixels)")
        let height = featureCount / imageWidth
        try require(size <= height && row <= height - size, "trigger row", row,
                    "must keep the \(size)-pixel patch inside the \(height) rows (at most \(height - min(size, height)))")
    }

    /// Sets the patch's pixels of example `row` of a row-major (n, width) buffer.
    func stamp(_ scalars: inout [Float], row example: Int, width: Int) {
        for r in row..<(row + size) {
            for c in column..<(column + size) { scalars[example * width + r * imageWidth + c] = value }
        }
    }

    /// The flattened indices of the patch's pixels.
    public var pixelIndices: [Int] {
        (row..<(row + size)).flatMap { r in (column..<(column + size)).map { r * imageWidth + $0 } }
    }
}

extension RandomStream {
    /// Which examples a poisoning attack changes.
    public static let poisonSelection = RandomStream("threats.poisoning.selection")
    /// Random flipping's new label of each example (indexed by the example).
    public static let poisonLabels = RandomStream("threats.poisoning.labels")
}

import Attacks
import Foundation
import NeuralNet
import Plot
import Robustness
import TensorCore

/// What an attack does to a few test images of a model, to look at: per example the clean input,
/// the adversarial one and the perturbation amplified to the full grey range (mid-grey is no
/// change; black and white are −ε and +ε), each an embedded PNG, with the true and predicted labels.
public struct ExampleGrid: Sendable {
    public struct Example: Sendable {
        public let label: Int
        public let cleanPrediction: Int
        public let adversarialPrediction: Int
        public let clean: PNGImage
        public let adversarial: PNGImage
        public let perturbation: PNGImage
    }

    public let model: String
    public let attack: String
    public let epsilon: Float
    public let examples: [Example]
    /// Class names by label (index labels when empty).
    public var classNames: [String] = []

    /// Upscaling of each image (nearest neighbour).
    static let scale = 3

    /// Attacks the first `perClass` test examples of each class with `entry` at `epsilon`.
    /// - Returns: nil when the inputs are not square grey images (no picture to draw).
    /// - Throws: `AttackError` from the attack.
    public static func make(model name: String, network: Sequential, test: LabeledData, entry: BenchConfiguration.AttackEntry,
                            epsilon: Float, seed: UInt64, perClass: Int = 2, batchSize: Int = 500) throws -> ExampleGrid? {
        guard let shape = Square.ImageShape.inferred(features: test.featureCount), shape.channels == 1 else { return nil }
        var chosen: [Int] = []
        for label in Set(test.labels).sorted() {
            chosen += test.labels.indices.filter { test.labels[$0] == label }.prefix(perClass)
        }
        let subset = test.subset(chosen)
        let attack = try entry.makeAttack(epsilon: epsilon)
        let runner = AttackRunner(classifier: network, batchSize: batchSize)
        let outcome = try runner.run(attack, on: subset, goal: entry.goal,
                                     seed: BenchRunner.attackSeed(seed, attack: "example grid \(entry.name)", epsilon: epsilon))
        let d = test.featureCount
        let clean = subset.features.scalars, adversarial = outcome.adversarial.scalars
        let examples = (0..<subset.count).map { i in
            let x = Array(clean[(i * d)..<((i + 1) * d)]), a = Array(adversarial[(i * d)..<((i + 1) * d)])
            let delta = zip(a, x).map { epsilon > 0 ? 0.5 + ($0 - $1) / (2 * epsilon) : 0.5 }
            return Example(label: subset.labels[i], cleanPrediction: outcome.cleanPredictions[i], adversarialPrediction: outcome.adversarialPredictions[i],
                           clean: image(x, shape), adversarial: image(a, shape), perturbation: image(delta, shape))
        }
        return ExampleGrid(model: name, attack: entry.name, epsilon: epsilon, examples: examples)
    }

    /// The cell a model's grid shows: the middle ε of its attack grid (0.1 of 0.05, 0.1, 0.2) and,
    /// there, the attack that left the lowest accuracy (the first on ties).
    public static func choice(for model: BenchReport.ModelResult, in configuration: BenchConfiguration) -> (entry: BenchConfiguration.AttackEntry, epsilon: Float)? {
        let epsilons = Set(model.attacks.map(\.epsilon)).filter { $0 > 0 }.sorted()
        guard !epsilons.isEmpty else { return nil }
        let epsilon = epsilons[(epsilons.count - 1) / 2 + (epsilons.count > 1 && epsilons.count % 2 == 0 ? 1 : 0)]
        guard let strongest = model.attacks.filter({ $0.epsilon == epsilon }).min(by: { $0.accuracy.correct < $1.accuracy.correct }),
              let entry = configuration.attacks.first(where: { $0.name == strongest.attack }) else { return nil }
        return (entry, epsilon)
    }

    /// One PNG of up to `limit` examples, a row each: clean input, adversarial input and the
    /// perturbation amplified to the grey range (mid-grey unchanged, black −ε, white +ε), 2-pixel
    /// white gaps, each image upscaled ×2. For `bulwark attack --png`.
    /// - Returns: nil when the inputs are not square grey images.
    public static func composite(clean: Tensor, adversarial: Tensor, epsilon: Float, limit: Int = 16) -> PNGImage? {
        let d = clean.shape.count == 2 ? clean.shape[1] : 0
        guard let shape = Square.ImageShape.inferred(features: d), shape.channels == 1, clean.shape == adversarial.shape, clean.shape[0] > 0 else { return nil }
        let rows = min(limit, clean.shape[0]), zoom = 2, gap = 2
        let (tileW, tileH) = (shape.width * zoom, shape.height * zoom)
        let width = 3 * tileW + 4 * gap, height = rows * tileH + (rows + 1) * gap
        var pixels = [UInt8](repeating: 255, count: width * height)
        let x = clean.scalars, a = adversarial.scalars
        for row in 0..<rows {
            let base = row * d
            let tiles: [(Int) -> Float] = [
                { x[base + $0] }, { a[base + $0] },
                { epsilon > 0 ? 0.5 + (a[base + $0] - x[base + $0]) / (2 * epsilon) : 0.5 },
            ]
            for (column, value) in tiles.enumerated() {
                let (left, top) = (gap + column * (tileW + gap), gap + row * (tileH + gap))
                for py in 0..<tileH {
                    for px in 0..<tileW {
                        let v = value((py / zoom) * shape.width + px / zoom)
                        pixels[(top + py) * width + left + px] = UInt8((min(max(v, 0), 1) * 255).rounded())
                    }
                }
            }
        }
        return PNGImage(width: width, height: height, channels: 1, pixels: pixels)
    }

    /// A grey image from values in [0, 1] (clamped), upscaled.
    static func image(_ values: [Float], _ shape: Square.ImageShape) -> PNGImage {
        let (w, h) = (shape.width * scale, shape.height * scale)
        var pixels = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                let v = values[(y / scale) * shape.width + x / scale]
                pixels[y * w + x] = UInt8((min(max(v, 0), 1) * 255).rounded())
            }
        }
        return PNGImage(width: w, height: h, channels: 1, pixels: pixels)
    }

    func name(_ label: Int) -> String { classNames.indices.contains(label) ? classNames[label] : "\(label)" }

    func node() -> Node<HTML.BodyContext> {
        .div(
            .class("grid"),
            .h3(.text("\(model): \(attack) at ε = \(formatEpsilon(epsilon)) on \(examples.count) test images")),
            .p(.class("meta"), .text("Each cell: clean input, adversarial input, perturbation (mid-grey: unchanged; black −ε, white +ε). "
                                     + "Labels: true → predicted clean / under attack; red marks a successful attack. These images are "
                                     + "attacked again for this picture (their own batch and random start), so an image can differ from "
                                     + "its outcome in the tables.")),
            .div(
                .class("cells"),
                .forEach(examples) { example in
                    let fooled = example.cleanPrediction == example.label && example.adversarialPrediction != example.label
                    return .element(named: "figure", nodes: [
                        .class(fooled ? "fooled" : "kept"),
                        png(example.clean, alt: "clean image of class \(name(example.label))"),
                        png(example.adversarial, alt: "adversarial image, predicted \(name(example.adversarialPrediction))"),
                        png(example.perturbation, alt: "perturbation, amplified"),
                        .element(named: "figcaption", nodes: [
                            .text("\(name(example.label)) → \(name(example.cleanPrediction)) / \(name(example.adversarialPrediction))"),
                        ]),
                    ])
                }
            )
        )
    }

    private func png(_ image: PNGImage, alt: String) -> Node<HTML.BodyContext> {
        .img(.src("data:image/png;base64," + image.encoded().base64EncodedString()), .alt(HTMLReport.attributeValue(alt)),
             .attribute(named: "width", value: String(image.width)), .attribute(named: "height", value: String(image.height)))
    }
}

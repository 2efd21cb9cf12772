import Foundation
import NeuralNet
import Robustness

/// A machine-learning bill of materials (CycloneDX ML-BOM) for one model: the model with its
/// digest and a model card (architecture, training recipe, data, clean, robust and certified
/// accuracy from Bulwark's card), the training and test data with their files' digests, and the
/// software that made and runs it.
public struct ModelBOM {
    /// One split of a dataset: its files and their digests.
    public struct Dataset: Sendable {
        public var name: String
        public var split: String
        public var directory: String
        public var examples: Int?
        public var files: [(name: String, sha256: String)]
        /// Where the files come from, when Bulwark knows them (e.g. a Debian package).
        public var origin: String?
        /// Whether the model's own record (card or recipe) names this data as what it was trained
        /// and tested on; only then is it listed among the model card's datasets.
        public var matchesRecord: Bool
        /// How the data relates to the model, when it is not simply what the record names.
        public var note: String?

        public init(name: String, split: String, directory: String, examples: Int?, files: [(name: String, sha256: String)], origin: String?,
                    matchesRecord: Bool = true, note: String? = nil) {
            self.name = name
            self.split = split
            self.directory = directory
            self.examples = examples
            self.files = files
            self.origin = origin
            self.matchesRecord = matchesRecord
            self.note = note
        }

        var reference: String { "data:\(name)-\(split)" }
    }

    public var name: String
    public var file: String
    public var sha256: String
    public var spec: ModelSpec
    public var recipe: String?
    public var card: ModelCard?
    public var cardSHA256: String?
    public var datasets: [Dataset]

    public init(name: String, file: String, sha256: String, spec: ModelSpec, recipe: String?, card: ModelCard?, cardSHA256: String?, datasets: [Dataset]) {
        self.name = name
        self.file = file
        self.sha256 = sha256
        self.spec = spec
        self.recipe = recipe
        self.card = card
        self.cardSHA256 = cardSHA256
        self.datasets = datasets
    }

    var reference: String { "model:\(name)" }

    /// The document (libraries from this process: `SoftwareBOM.libraries()`).
    public func document(libraries: [CycloneDX.Component] = SoftwareBOM.libraries()) -> CycloneDX.Document {
        let data = datasets.map(dataComponent)
        var dependencies = [CycloneDX.Dependency(ref: reference, dependsOn: datasets.filter(\.matchesRecord).map(\.reference))]
        dependencies += data.compactMap(\.bomRef).map { CycloneDX.Dependency(ref: $0, dependsOn: []) }
        dependencies.append(CycloneDX.Dependency(ref: SoftwareBOM.applicationReference, dependsOn: libraries.compactMap(\.bomRef)))
        return CycloneDX.Document(
            metadata: CycloneDX.Metadata(tool: SoftwareBOM.application(withReference: false), component: modelComponent()),
            components: data + [SoftwareBOM.application()] + libraries,
            dependencies: dependencies)
    }

    func modelComponent() -> CycloneDX.Component {
        var component = CycloneDX.Component(type: "machine-learning-model", bomRef: reference, name: name, version: String(sha256.prefix(12)),
                                            description: "\(spec.shorthand) classifier in \(file) (safetensors)")
        component.hashes = [.sha256(sha256)]
        if let card, let cardSHA256 {
            component.externalReferences = [.init(type: "model-card", url: ModelCard.path(forModel: file), hashes: [.sha256(cardSHA256)])]
            _ = card
        }
        var properties = [CycloneDX.Property("bulwark:file", file), .init("bulwark:parameters", String(spec.parameterCount))]
        if let recipe { properties.append(.init("bulwark:recipe", recipe)) }
        if let command = card?.trainCommand { properties.append(.init("bulwark:train_command", command)) }
        if let seed = card?.seed { properties.append(.init("bulwark:seed", String(seed))) }
        if let privacy = card?.privacy {
            properties.append(.init("bulwark:dp_guarantee", "(ε = \(privacy.epsilon), δ = \(privacy.delta)) DP-SGD, noise multiplier \(privacy.noiseMultiplier), clip \(privacy.clip), \(privacy.steps) steps"))
        }
        component.modelCard = CycloneDX.ModelCard(
            modelParameters: CycloneDX.ModelParameters(
                approach: .init(type: "supervised"), task: "classification",
                architectureFamily: "multilayer perceptron (dense network)",
                modelArchitecture: "\(spec.shorthand): \(spec.torchSequential); \(spec.parameterCount) parameters",
                datasets: datasets.contains(where: \.matchesRecord) ? datasets.filter(\.matchesRecord).map { .init(ref: $0.reference) } : nil,
                inputs: [.init(format: "\(spec.inputWidth) float32 values in [0, 1] (a flattened image)")],
                outputs: [.init(format: "logits: \(spec.classCount) float32 values, one per class")]),
            quantitativeAnalysis: metrics().isEmpty ? nil : CycloneDX.QuantitativeAnalysis(performanceMetrics: metrics()),
            considerations: CycloneDX.Considerations(
                useCases: ["Research on adversarial robustness: attack, defend and evaluate the model with Bulwark"],
                technicalLimitations: [
                    "Robust accuracy is an upper bound: it holds against the attacks listed, not against every attack.",
                    "Certified accuracy is a lower bound that holds for every perturbation within the stated norm and ε.",
                ],
                performanceTradeoffs: card?.robustAccuracy.isEmpty == false
                    ? ["Adversarial training trades clean accuracy for robust accuracy; compare both."] : nil),
            properties: nil)
        component.properties = properties
        return component
    }

    /// Clean, robust and certified accuracy from the card, each with its n and 95% Wilson interval.
    func metrics() -> [CycloneDX.PerformanceMetric] {
        guard let card else { return [] }
        func metric(_ type: String, _ accuracy: BenchReport.Accuracy, _ slice: String) -> CycloneDX.PerformanceMetric {
            CycloneDX.PerformanceMetric(
                type: type, value: String(format: "%.4f", accuracy.accuracy),
                slice: "\(slice); \(card.data); 95% Wilson interval",
                confidenceInterval: accuracy.ci95.count == 2
                    ? .init(lowerBound: String(format: "%.4f", accuracy.ci95[0]), upperBound: String(format: "%.4f", accuracy.ci95[1])) : nil)
        }
        var metrics = [metric("accuracy", card.cleanAccuracy, "clean")]
        metrics += card.robustAccuracy.map { metric("robust accuracy", $0.accuracy, "\($0.description), ε = \($0.epsilon)") }
        metrics += (card.certifiedAccuracy ?? []).map {
            metric("certified accuracy", $0.accuracy, "\($0.method) certificate, \($0.norm.rawValue) ε = \($0.epsilon)")
        }
        return metrics
    }

    func dataComponent(_ dataset: Dataset) -> CycloneDX.Component {
        var component = CycloneDX.Component(type: "data", bomRef: dataset.reference, name: "\(dataset.name)-\(dataset.split)",
                                            version: dataset.origin)
        var properties: [CycloneDX.Property] = []
        if let examples = dataset.examples { properties.append(.init("bulwark:examples", String(examples))) }
        if let note = dataset.note { component.properties = [.init("bulwark:relation_to_model", note)] }
        component.data = [CycloneDX.ComponentData(
            type: "dataset", name: "\(dataset.name) \(dataset.split) split",
            contents: .init(url: URL(fileURLWithPath: dataset.directory, isDirectory: true).absoluteString, properties: properties.isEmpty ? nil : properties),
            classification: nil, description: dataset.origin.map { "from \($0)" })]
        component.components = dataset.files.map { file in
            var part = CycloneDX.Component(type: "file", bomRef: "\(dataset.reference)/\(file.name)", name: file.name)
            part.hashes = [.sha256(file.sha256)]
            return part
        }
        return component
    }
}

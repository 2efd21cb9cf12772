import Attacks
import Certification
import Foundation
import NeuralNet
import Threats
import Training
import _FileSystem

// Strict JSON forms of a bench configuration: every object rejects keys it does not know, with the
// closest valid key as a suggestion.

extension BenchConfiguration: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case schema, seed, epsilons, dataset, models, attacks, threats, certification
        case batchSize = "batch_size", checkExamples = "check_examples"
    }

    public init(from decoder: any Decoder) throws {
        try StrictDecoding.rejectUnknownKeys(decoder, allowed: Set(CodingKeys.allCases.map(\.rawValue)))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.decode(String.self, forKey: .schema)
        guard Self.readableSchemas.contains(schema) else {
            throw c.invalid(.schema, "schema is '\(schema)', this Bulwark reads \(Self.readableSchemas.joined(separator: " and "))")
        }
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
        epsilons = try c.decode([Float].self, forKey: .epsilons)
        dataset = try c.decode(DatasetSelection.self, forKey: .dataset)
        var modelList = try c.nestedUnkeyedContainer(forKey: .models)
        var models: [ModelEntry] = []
        while !modelList.isAtEnd {
            models.append(try ModelEntry(from: try modelList.superDecoder(), legacySchema: schema == "bulwark-bench-config/1"))
        }
        self.models = models
        attacks = try c.decode([AttackEntry].self, forKey: .attacks)
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize)
        checkExamples = try c.decodeIfPresent(Int.self, forKey: .checkExamples)
        threats = try c.decodeIfPresent([ThreatEntry].self, forKey: .threats) ?? []
        certification = try c.decodeIfPresent([CertificationEntry].self, forKey: .certification) ?? []
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schema, forKey: .schema)
        try c.encode(seed, forKey: .seed)
        try c.encode(epsilons, forKey: .epsilons)
        try c.encode(dataset, forKey: .dataset)
        try c.encode(models, forKey: .models)
        try c.encode(attacks, forKey: .attacks)
        try c.encodeIfPresent(batchSize, forKey: .batchSize)
        try c.encodeIfPresent(checkExamples, forKey: .checkExamples)
        if !threats.isEmpty { try c.encode(threats, forKey: .threats) }
        if !certification.isEmpty { try c.encode(certification, forKey: .certification) }
    }
}

extension BenchConfiguration.CertificationEntry: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case method, norm, epsilons
    }

    public init(from decoder: any Decoder) throws {
        try StrictDecoding.rejectUnknownKeys(decoder, allowed: Set(CodingKeys.allCases.map(\.rawValue)))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decode(String.self, forKey: .method)
        guard let method = CertificationMethod(rawValue: name) else {
            throw c.invalid(.method, "unknown certification method '\(name)' (known: \(CertificationMethod.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        self.init(method: method, norm: try c.decodeIfPresent(Norm.self, forKey: .norm) ?? .linf,
                  epsilons: try c.decodeIfPresent([Float].self, forKey: .epsilons))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(method.rawValue, forKey: .method)
        try c.encode(norm, forKey: .norm)
        try c.encodeIfPresent(epsilons, forKey: .epsilons)
    }
}

extension BenchConfiguration.ThreatEntry: Codable {
    enum CodingKeys: String, CodingKey { case name }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        spec = try ThreatExperimentSpec(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        try spec.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
    }
}

extension BenchConfiguration.DatasetSelection: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, split, n
        case dataDir = "data_dir", testCSV = "test_csv", trainCSV = "train_csv", labelColumn = "label_column", featureScale = "feature_scale"
    }

    public init(from decoder: any Decoder) throws {
        try StrictDecoding.rejectUnknownKeys(decoder, allowed: Set(CodingKeys.allCases.map(\.rawValue)))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), split: try c.decodeIfPresent(String.self, forKey: .split) ?? "test",
                  n: try c.decode(Int.self, forKey: .n), dataDir: try c.decodeIfPresent(String.self, forKey: .dataDir),
                  testCSV: try c.decodeIfPresent(String.self, forKey: .testCSV),
                  trainCSV: try c.decodeIfPresent(String.self, forKey: .trainCSV),
                  labelColumn: try c.decodeIfPresent(Int.self, forKey: .labelColumn),
                  featureScale: try c.decodeIfPresent(Float.self, forKey: .featureScale))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(split, forKey: .split)
        try c.encode(n, forKey: .n)
        try c.encodeIfPresent(dataDir, forKey: .dataDir)
        try c.encodeIfPresent(testCSV, forKey: .testCSV)
        try c.encodeIfPresent(trainCSV, forKey: .trainCSV)
        try c.encodeIfPresent(labelColumn, forKey: .labelColumn)
        try c.encodeIfPresent(featureScale, forKey: .featureScale)
    }
}

extension BenchConfiguration.ModelEntry: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, path, recipe, activation, train
    }

    public init(from decoder: any Decoder) throws {
        try self.init(from: decoder, legacySchema: false)
    }

    /// - Parameter legacySchema: a version-1 document, whose models may carry a `train` argument list.
    init(from decoder: any Decoder, legacySchema: Bool) throws {
        let allowed: Set<String> = legacySchema ? ["name", "path", "train"] : ["name", "path", "recipe", "activation"]
        try StrictDecoding.rejectUnknownKeys(decoder, allowed: allowed) { key in
            key == "train" ? "a version-2 configuration describes how to make a model with a \"recipe\" object (see docs/bench-config.md)" : nil
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        path = try c.decode(String.self, forKey: .path)
        recipe = try c.decodeIfPresent(TrainingRecipe.self, forKey: .recipe)
        legacyTrainArguments = try c.decodeIfPresent([String].self, forKey: .train)
        if let text = try? c.decodeIfPresent(String.self, forKey: .activation) {
            activations = try Self.parseActivations(text, c)
        } else {
            activations = try c.decodeIfPresent([String].self, forKey: .activation).map { try Self.parseActivations($0.joined(separator: ","), c) }
        }
    }

    static func parseActivations(_ text: String, _ c: KeyedDecodingContainer<CodingKeys>) throws -> [Activation] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { name in
            guard let activation = Activation(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw c.invalid(.activation, "unknown activation '\(name)' (known: \(Activation.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return activation
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(path, forKey: .path)
        try c.encodeIfPresent(recipe, forKey: .recipe)
        try c.encodeIfPresent(activations?.map(\.rawValue).joined(separator: ","), forKey: .activation)
        try c.encodeIfPresent(legacyTrainArguments, forKey: .train)
    }
}

extension BenchConfiguration.AttackEntry: Codable {
    enum CodingKeys: String, CodingKey {
        case name, epsilons, targeted, labels
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        spec = try AttackSpec(from: decoder, alsoAllowing: ["name", "epsilons", "targeted", "labels"])
        goal = AttackGoal(targets: try c.decodeIfPresent(TargetSelection.self, forKey: .targeted),
                          labels: try c.decodeIfPresent(LabelSource.self, forKey: .labels) ?? .trueLabels)
        epsilons = try c.decodeIfPresent([Float].self, forKey: .epsilons)
    }

    public func encode(to encoder: any Encoder) throws {
        try spec.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encodeIfPresent(epsilons, forKey: .epsilons)
        try c.encodeIfPresent(goal.targets, forKey: .targeted)
        if goal.labels != .trueLabels { try c.encode(goal.labels, forKey: .labels) }
    }
}

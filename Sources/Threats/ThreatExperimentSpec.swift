import Foundation
import TensorCore
import Training
import _FileSystem

/// A threat experiment as a typed, strictly decoded value, for bench configurations
/// (`"threats": [...]`): a poisoning experiment or a membership experiment, run on the training and
/// test data of the bench, its results reported as metrics beside the models'.
///
/// ```json
/// {"name": "backdoor", "type": "poison", "attack": "backdoor", "rates": [0.01, 0.1], "defences": ["clustering"],
///  "target_class": 0, "trigger": {"size": 3}, "expected_rate": 0.1, "recipe": {"architecture": "784-256-256-10"}}
/// {"name": "privacy", "type": "membership", "shadows": 16, "attacks": ["loss", "lira-online"],
///  "targets": [{"name": "standard", "pool": 60000, "recipe": {"architecture": "784-256-256-10"}}]}
/// ```
public enum ThreatExperimentSpec: Equatable, Sendable {
    case poison(PoisoningExperiment)
    case membership(MembershipConfiguration)

    public var type: String {
        switch self {
        case .poison: "poison"
        case .membership: "membership"
        }
    }

    /// - Throws: `ThreatError` naming the first bad value.
    public func validate() throws {
        switch self {
        case .poison(let experiment): try experiment.validate()
        case .membership(let configuration): try configuration.validate()
        }
    }

    /// Checks that the data fits the experiment, before any training.
    public func check(train: LabeledData, test: LabeledData) throws {
        switch self {
        case .poison(let experiment): try experiment.check(train: train, test: test)
        case .membership(let configuration): try MembershipExperiment(configuration: configuration).check(train: train, test: test)
        }
    }

    /// Runs the experiment with `seed` and returns its metrics, one group per row.
    public func run(train: LabeledData, test: LabeledData, seed: UInt64, threads: Int,
                    log: (String) -> Void = { _ in }) throws -> [(name: String, metrics: [Metric])] {
        switch self {
        case .poison(var experiment):
            experiment.seed = seed
            experiment.threads = threads
            return try experiment.run(train: train, test: test, log: log).metricGroups
        case .membership(var configuration):
            configuration.seed = seed
            configuration.threads = threads
            return try MembershipExperiment(configuration: configuration).run(train: train, test: test, log: log).metricGroups
        }
    }
}

extension PoisoningExperiment: Equatable {
    public static func == (a: PoisoningExperiment, b: PoisoningExperiment) -> Bool {
        a.attack == b.attack && a.rates == b.rates && a.defences == b.defences && a.expectedRate == b.expectedRate
            && a.recipe == b.recipe && a.seed == b.seed && a.threads == b.threads
    }
}

extension ThreatExperimentSpec: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case type, attack, rates, defences, trigger, recipe, shadows, attacks, targets
        case targetClass = "target_class", sourceClass = "source_class", expectedRate = "expected_rate"
    }

    enum TriggerKeys: String, CodingKey, CaseIterable {
        case size, row, column, value
        case imageWidth = "image_width"
    }

    /// Keys of the enclosing entry (its name) that this decoder leaves to it.
    public static let entryKeys: Set<String> = ["name"]

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "poison":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: Self.entryKeys.union(["type", "attack", "rates", "defences", "trigger", "recipe",
                                                                                          "target_class", "source_class", "expected_rate"]))
            let target = try c.decodeIfPresent(Int.self, forKey: .targetClass) ?? 0
            let attackName = try c.decode(String.self, forKey: .attack)
            let attack: PoisonAttack
            switch attackName {
            case "backdoor":
                var trigger = BackdoorTrigger()
                if c.contains(.trigger) {
                    let t = try c.nestedContainer(keyedBy: TriggerKeys.self, forKey: .trigger)
                    try StrictDecoding.rejectUnknownKeys(try c.superDecoder(forKey: .trigger), allowed: Set(TriggerKeys.allCases.map(\.rawValue)))
                    let size = try t.decodeIfPresent(Int.self, forKey: .size) ?? 3
                    trigger = BackdoorTrigger(size: size, row: try t.decodeIfPresent(Int.self, forKey: .row),
                                              column: try t.decodeIfPresent(Int.self, forKey: .column),
                                              value: try t.decodeIfPresent(Float.self, forKey: .value) ?? 1,
                                              imageWidth: try t.decodeIfPresent(Int.self, forKey: .imageWidth) ?? 28)
                }
                guard !c.contains(.sourceClass) else { throw c.invalid(.sourceClass, "\"source_class\" applies to label-flip only") }
                attack = .backdoor(trigger, target: target)
            case "label-flip":
                guard !c.contains(.trigger) else { throw c.invalid(.trigger, "\"trigger\" applies to backdoor only") }
                attack = try c.decodeIfPresent(Int.self, forKey: .sourceClass).map { .targetedLabelFlip(source: $0, target: target) } ?? .randomLabelFlip
            default:
                throw c.invalid(.attack, "unknown poisoning attack \"\(attackName)\" (known: backdoor, label-flip)")
            }
            let defenceNames = try c.decodeIfPresent([String].self, forKey: .defences) ?? []
            let defences = try defenceNames.map { name in
                guard let defence = PoisonDefenceSpec(rawValue: name) else {
                    throw c.invalid(.defences, "unknown defence \"\(name)\" (known: \(PoisonDefenceSpec.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return defence
            }
            self = .poison(PoisoningExperiment(
                attack: attack, rates: try c.decode([Double].self, forKey: .rates), defences: defences,
                expectedRate: try c.decodeIfPresent(Double.self, forKey: .expectedRate) ?? 0.1,
                recipe: try c.decodeIfPresent(TrainingRecipe.self, forKey: .recipe) ?? PoisoningExperiment.defaultRecipe))
        case "membership":
            try StrictDecoding.rejectUnknownKeys(decoder, allowed: Self.entryKeys.union(["type", "shadows", "attacks", "targets"]))
            self = .membership(MembershipConfiguration(
                shadows: try c.decodeIfPresent(Int.self, forKey: .shadows) ?? 16,
                attacks: try c.decodeIfPresent([MembershipAttack].self, forKey: .attacks) ?? MembershipAttack.allCases,
                targets: try c.decode([MembershipConfiguration.Target].self, forKey: .targets)))
        default:
            throw c.invalid(.type, "unknown threat experiment \"\(type)\" (known: poison, membership)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        switch self {
        case .poison(let experiment):
            try c.encode(experiment.attack.name, forKey: .attack)
            try c.encode(experiment.rates, forKey: .rates)
            try c.encode(experiment.defences.map(\.rawValue), forKey: .defences)
            try c.encode(experiment.expectedRate, forKey: .expectedRate)
            try c.encode(experiment.recipe, forKey: .recipe)
            switch experiment.attack {
            case .randomLabelFlip:
                break
            case .targetedLabelFlip(let source, let target):
                try c.encode(source, forKey: .sourceClass)
                try c.encode(target, forKey: .targetClass)
            case .backdoor(let trigger, let target):
                try c.encode(target, forKey: .targetClass)
                var t = c.nestedContainer(keyedBy: TriggerKeys.self, forKey: .trigger)
                try t.encode(trigger.size, forKey: .size)
                try t.encode(trigger.row, forKey: .row)
                try t.encode(trigger.column, forKey: .column)
                try t.encode(trigger.value, forKey: .value)
                try t.encode(trigger.imageWidth, forKey: .imageWidth)
            }
        case .membership(let configuration):
            try c.encode(configuration.shadows, forKey: .shadows)
            try c.encode(configuration.attacks, forKey: .attacks)
            try c.encode(configuration.targets, forKey: .targets)
        }
    }
}

import Foundation
import NeuralNet
import Training
import _FileSystem

/// What `bulwark threat membership` measures: target models (each a recipe and a data pool), the
/// attacks, and the shadow models LiRA trains. Decoding is strict (unknown keys are errors).
///
/// ```json
/// {"schema": "bulwark-membership-config/1", "seed": 0, "shadows": 16,
///  "attacks": ["loss", "confidence", "entropy", "lira-online", "lira-offline"],
///  "targets": [{"name": "standard", "pool": 60000, "recipe": {"architecture": "784-256-256-10"}}]}
/// ```
/// Each target's pool is the first `pool` training examples. The target model trains on a seeded
/// random half of it (the members; the other half are the non-members); every shadow model trains
/// on a seeded set in which each pool record appears in exactly half of the shadow models
/// (Carlini et al.'s design), with the target's recipe.
public struct MembershipConfiguration: Equatable, Sendable {
    public static let schema = "bulwark-membership-config/1"
    /// Each shadow model's logits on the whole pool are kept (shadows × pool × classes floats):
    /// the bound keeps a configuration from exhausting memory before training starts.
    public static let maximumShadows = 256

    public var schema: String
    public var seed: UInt64
    public var shadows: Int
    /// Models trained side by side.
    public var threads: Int
    public var attacks: [MembershipAttack]
    public var targets: [Target]

    public struct Target: Equatable, Sendable {
        public var name: String
        public var pool: Int
        public var recipe: TrainingRecipe

        public init(name: String, pool: Int, recipe: TrainingRecipe) {
            self.name = name
            self.pool = pool
            self.recipe = recipe
        }
    }

    public init(seed: UInt64 = 0, shadows: Int = 16, threads: Int = 2, attacks: [MembershipAttack] = MembershipAttack.allCases,
                targets: [Target]) {
        schema = Self.schema
        self.seed = seed
        self.shadows = shadows
        self.threads = threads
        self.attacks = attacks
        self.targets = targets
    }

    /// The README's membership table: the standard model, a deliberately overfit one (2,500
    /// training examples, 50 epochs), a PGD-trained one (5 epochs of PGD-7 at ε = 0.1 on 90% of
    /// each batch) and a DP-SGD one (σ = 0.8, C = 1, batch 256, 10 epochs; seeded noise, so that the
    /// table repeats exactly: a measurement, not a deployment), 16 shadow models each.
    public static let standard = MembershipConfiguration(targets: [
        Target(name: "standard", pool: 60_000, recipe: .standardMLP),
        Target(name: "overfit", pool: 5_000, recipe: TrainingRecipe(architecture: TrainingRecipe.standardMLP.architecture, epochs: 50)),
        Target(name: "pgd-trained", pool: 60_000, recipe: {
            var recipe = TrainingRecipe.pgdMLP
            recipe.epochs = 5
            return recipe
        }()),
        Target(name: "dp-sgd", pool: 60_000, recipe: TrainingRecipe(
            architecture: TrainingRecipe.standardMLP.architecture, epochs: 10, batchSize: 256,
            objective: .dpSGD(DPSGDSpec(noiseMultiplier: 0.8, clip: 1, noise: .seeded)))),
    ])

    /// - Throws: `ThreatError.invalidConfiguration` naming the first bad value.
    public func validate() throws {
        func fail(_ problem: String) -> ThreatError { .invalidConfiguration(problem) }
        guard schema == Self.schema else { throw fail("schema '\(schema)' is not \(Self.schema)") }
        guard !targets.isEmpty else { throw fail("\"targets\" is empty; name at least one target model") }
        guard !attacks.isEmpty else { throw fail("\"attacks\" is empty; known: \(MembershipAttack.allCases.map(\.rawValue).joined(separator: ", "))") }
        guard Set(targets.map(\.name)).count == targets.count else { throw fail("target names must be unique") }
        guard (1...256).contains(threads) else { throw fail("\"threads\" must be between 1 and 256, got \(threads)") }
        if attacks.contains(where: \.needsShadowModels) {
            guard shadows >= 2, shadows % 2 == 0, shadows <= Self.maximumShadows else {
                throw fail("LiRA needs an even number of shadow models from 2 to at most \(Self.maximumShadows) (each record is in exactly half), got \(shadows)")
            }
        }
        for target in targets {
            guard !target.name.isEmpty, target.name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw fail("target name '\(displayable(target.name))' must be letters, digits, '-', '_' or '.' (it names score files)")
            }
            guard target.pool >= 4 && target.pool <= 10_000_000 else {
                throw fail("target \(target.name): \"pool\" must be between 4 and 10,000,000, got \(target.pool)")
            }
            do { try target.recipe.validate() } catch { throw fail("target \(target.name): \(error)") }
        }
    }
}

extension MembershipConfiguration: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case schema, seed, shadows, threads, attacks, targets
    }

    public init(from decoder: any Decoder) throws {
        try StrictDecoding.rejectUnknownKeys(decoder, allowed: Set(CodingKeys.allCases.map(\.rawValue)))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(seed: try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0,
                  shadows: try c.decodeIfPresent(Int.self, forKey: .shadows) ?? 16,
                  threads: try c.decodeIfPresent(Int.self, forKey: .threads) ?? 2,
                  attacks: try c.decodeIfPresent([MembershipAttack].self, forKey: .attacks) ?? MembershipAttack.allCases,
                  targets: try c.decode([Target].self, forKey: .targets))
        schema = try c.decode(String.self, forKey: .schema)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schema, forKey: .schema)
        try c.encode(seed, forKey: .seed)
        try c.encode(shadows, forKey: .shadows)
        try c.encode(threads, forKey: .threads)
        try c.encode(attacks, forKey: .attacks)
        try c.encode(targets, forKey: .targets)
    }

    /// Reads a configuration file (strict JSON), naming the file in errors.
    public static func decode(_ bytes: [UInt8], source: String) throws -> MembershipConfiguration {
        let configuration: MembershipConfiguration
        do {
            configuration = try StrictJSON.decode(MembershipConfiguration.self, from: bytes)
        } catch {
            throw ThreatError.invalidConfiguration("\(source): \(decodingErrorText(error))")
        }
        try configuration.validate()
        return configuration
    }
}

extension MembershipConfiguration.Target: Codable {
    enum CodingKeys: String, CodingKey, CaseIterable { case name, pool, recipe }

    public init(from decoder: any Decoder) throws {
        try StrictDecoding.rejectUnknownKeys(decoder, allowed: Set(CodingKeys.allCases.map(\.rawValue)))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(name: try c.decode(String.self, forKey: .name), pool: try c.decode(Int.self, forKey: .pool),
                  recipe: try c.decode(TrainingRecipe.self, forKey: .recipe))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(pool, forKey: .pool)
        try c.encode(recipe, forKey: .recipe)
    }
}

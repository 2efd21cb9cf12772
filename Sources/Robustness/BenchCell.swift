import Attacks
import Certification
import Foundation
import TensorCore

/// One unit of a bench's work: an attack at one ε on one model, a certificate at one ε, a model's
/// sanity checks, or a threat experiment. A cell's result depends only on the configuration, the
/// data and the cell (its random streams are derived from the seed, the attack's name and ε), so any
/// subset of cells can run anywhere and the results assemble into the same report.
public enum BenchCell: Hashable, Sendable, CustomStringConvertible {
    case attack(model: String, attack: String, epsilon: Float)
    case certify(model: String, method: CertificationMethod, norm: Norm, epsilon: Float)
    /// The checks that need the model (BW003, BW004, BW005's Square runs, BW006, BW007).
    case checks(model: String)
    case threat(name: String)

    public var description: String {
        switch self {
        case let .attack(model, attack, epsilon): "\(model): \(attack) ε = \(formatEpsilon(epsilon))"
        case let .certify(model, method, norm, epsilon): "\(model): certify \(method.displayName) \(norm.rawValue) ε = \(formatEpsilon(epsilon))"
        case let .checks(model): "\(model): sanity checks"
        case let .threat(name): "threat \(name)"
        }
    }

    /// The model the cell belongs to (nil for threat experiments).
    public var model: String? {
        switch self {
        case let .attack(model, _, _), let .certify(model, _, _, _), let .checks(model): model
        case .threat: nil
        }
    }
}

extension BenchCell: Codable {
    enum CodingKeys: String, CodingKey {
        case kind, model, attack, epsilon, method, norm, name
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .kind) {
        case "attack":
            self = .attack(model: try c.decode(String.self, forKey: .model), attack: try c.decode(String.self, forKey: .attack),
                           epsilon: try c.decode(Float.self, forKey: .epsilon))
        case "certify":
            self = .certify(model: try c.decode(String.self, forKey: .model), method: try c.decode(CertificationMethod.self, forKey: .method),
                            norm: try c.decode(Norm.self, forKey: .norm), epsilon: try c.decode(Float.self, forKey: .epsilon))
        case "checks": self = .checks(model: try c.decode(String.self, forKey: .model))
        case "threat": self = .threat(name: try c.decode(String.self, forKey: .name))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown cell kind '\(other)' (attack, certify, checks, threat)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case let .attack(model, attack, epsilon):
            try c.encode("attack", forKey: .kind)
            try c.encode(model, forKey: .model)
            try c.encode(attack, forKey: .attack)
            try c.encode(epsilon, forKey: .epsilon)
        case let .certify(model, method, norm, epsilon):
            try c.encode("certify", forKey: .kind)
            try c.encode(model, forKey: .model)
            try c.encode(method, forKey: .method)
            try c.encode(norm, forKey: .norm)
            try c.encode(epsilon, forKey: .epsilon)
        case let .checks(model):
            try c.encode("checks", forKey: .kind)
            try c.encode(model, forKey: .model)
        case let .threat(name):
            try c.encode("threat", forKey: .kind)
            try c.encode(name, forKey: .name)
        }
    }
}

/// A slice of a bench's cells (`WorkShard`): cells, rather than ranges of examples, keep every
/// attack's batches (and so its random streams) exactly as in an unsharded run.
public typealias BenchShard = WorkShard

extension WorkShard {
    /// This shard's cells of a bench, in the configuration's order.
    public func cells(of configuration: BenchConfiguration) -> [BenchCell] { select(configuration.cells()) }
}

extension BenchConfiguration {
    /// Every cell of the bench, in a fixed order: per model, its attacks (ε increasing, then the
    /// configuration's attack order), its certificates, its checks; then the threat experiments.
    public func cells() -> [BenchCell] {
        let epsilons = Set(attacks.flatMap { $0.grid(in: self) }).filter { $0 > 0 }.sorted()
        var cells: [BenchCell] = []
        for model in models {
            for epsilon in epsilons {
                for entry in attacks where entry.grid(in: self).contains(epsilon) {
                    cells.append(.attack(model: model.name, attack: entry.name, epsilon: epsilon))
                }
            }
            for entry in certification {
                for epsilon in entry.grid(in: self) {
                    cells.append(.certify(model: model.name, method: entry.method, norm: entry.norm, epsilon: epsilon))
                }
            }
            cells.append(.checks(model: model.name))
        }
        return cells + threats.map { .threat(name: $0.name) }
    }
}

import Foundation
import TensorCore
import Training
import _FileSystem

/// The models one shard of a membership experiment trained (`bulwark threat membership --shard
/// I/N --part PATH`; schema `bulwark-membership-part/1`): shard I of N trains the models whose
/// position in `MembershipExperiment.units()` is I modulo N. `merge` checks that the parts belong
/// together and returns every model, for `MembershipExperiment.score`: the result is the unsharded
/// run's, number for number (each model's seed and training set derive from the experiment's seed
/// and the model's position).
public struct MembershipPart: Codable, Equatable, Sendable {
    public static let schema = "bulwark-membership-part/1"

    public var schema: String
    public var bulwarkVersion: String
    /// The configuration, with `threads` set to 1 (results do not depend on it).
    public var configuration: MembershipConfiguration
    public var trainSHA256: String
    public var testSHA256: String
    public var shard: WorkShard
    public var models: [MembershipExperiment.TrainedModel]

    enum CodingKeys: String, CodingKey {
        case schema, configuration, models, shard
        case bulwarkVersion = "bulwark_version", trainSHA256 = "train_sha256", testSHA256 = "test_sha256"
    }

    /// Trains `shard`'s slice of `experiment`'s models.
    /// - Throws: `ThreatError.dataMismatch` for data that do not fit; training errors.
    public static func train(_ experiment: MembershipExperiment, shard: WorkShard, train: LabeledData, test: LabeledData,
                             log: (String) -> Void = { _ in }) throws -> MembershipPart {
        let units = shard.select(experiment.units())
        log("shard \(shard): \(units.count) of \(experiment.units().count) models")
        var configuration = experiment.configuration
        configuration.threads = 1
        return MembershipPart(schema: schema, bulwarkVersion: BulwarkVersion.current, configuration: configuration,
                              trainSHA256: train.contentDigest, testSHA256: test.contentDigest, shard: shard,
                              models: try experiment.train(units, train: train, test: test, log: log))
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// - Throws: `ThreatError.dataMismatch` naming the file and the problem.
    public static func decode(_ data: Data, source: String) throws -> MembershipPart {
        struct Header: Decodable { let schema: String }
        guard let header = try? JSONDecoder().decode(Header.self, from: data), header.schema == schema else {
            throw ThreatError.dataMismatch("\(source) is not a membership part (schema \(schema), written by bulwark threat membership --shard I/N --part PATH)")
        }
        do {
            return try StrictJSON.decodeRejectingUnknownFields(MembershipPart.self, from: data)
        } catch {
            throw ThreatError.dataMismatch("\(source) does not parse as a membership part (\(decodingErrorText(error)))")
        }
    }

    /// Every trained model of the parts (in any order), checked against `experiment` and the data.
    /// - Throws: `ThreatError.dataMismatch` when the parts differ in configuration, data, Bulwark
    ///   version or shard count, when a shard is missing or given twice, or when a part does not
    ///   hold exactly its shard's models.
    public static func merge(_ parts: [(source: String, part: MembershipPart)], experiment: MembershipExperiment,
                             train: LabeledData, test: LabeledData) throws -> [MembershipExperiment.TrainedModel] {
        guard let first = parts.first else { throw ThreatError.dataMismatch("--merge needs the parts of every shard") }
        var configuration = experiment.configuration
        configuration.threads = 1
        let (trainDigest, testDigest) = (train.contentDigest, test.contentDigest)
        let count = first.part.shard.count
        var seen: [Int: String] = [:]
        for (source, part) in parts {
            func refuse(_ problem: String) -> ThreatError { .dataMismatch("\(source): \(problem)") }
            guard part.configuration == configuration else { throw refuse("it was trained with another configuration (seed, shadows, attacks or targets)") }
            guard part.trainSHA256 == trainDigest, part.testSHA256 == testDigest else { throw refuse("it was trained on other data") }
            guard part.bulwarkVersion == first.part.bulwarkVersion else { throw refuse("it was made by Bulwark \(part.bulwarkVersion), \(first.source) by \(first.part.bulwarkVersion)") }
            guard part.shard.count == count else { throw refuse("it is shard \(part.shard), \(first.source) one of \(count)") }
            if let earlier = seen.updateValue(source, forKey: part.shard.index) {
                throw refuse("shard \(part.shard) is given twice (also \(earlier)): the parts overlap")
            }
            guard part.models.map(\.unit) == part.shard.select(experiment.units()) else { throw refuse("its models are not those of shard \(part.shard)") }
        }
        let absent = (0..<count).filter { seen[$0] == nil }
        guard absent.isEmpty else {
            throw ThreatError.dataMismatch("shard(s) \(absent.map { "\($0)/\(count)" }.joined(separator: ", ")) are missing: --merge needs all \(count) parts")
        }
        return parts.flatMap(\.part.models)
    }
}

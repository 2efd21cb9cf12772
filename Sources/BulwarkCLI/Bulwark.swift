import ArgumentParser
import Robustness

/// The `bulwark` command line: thin commands over the libraries.
public struct Bulwark: ParsableCommand {
    public static let version = BulwarkVersion.current

    public static let configuration = CommandConfiguration(
        commandName: "bulwark",
        abstract: "Adversarial-robustness testbed: train, attack, evaluate and gate dense networks.",
        version: version,
        subcommands: [TrainCommand.self, EvalCommand.self, InspectCommand.self, AttackCommand.self, BenchCommand.self, GateCommand.self,
                      ManifestCommand.self, KeysCommand.self, DataCommand.self]
    )

    public init() {}
}

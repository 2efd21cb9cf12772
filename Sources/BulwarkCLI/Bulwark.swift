import ArgumentParser

/// The `bulwark` command line: thin commands over the libraries.
public struct Bulwark: ParsableCommand {
    public static let version = "0.1.0"

    public static let configuration = CommandConfiguration(
        commandName: "bulwark",
        abstract: "Adversarial-robustness testbed: train, attack, evaluate and gate dense networks.",
        version: version,
        subcommands: [TrainCommand.self, EvalCommand.self, InspectCommand.self]
    )

    public init() {}
}

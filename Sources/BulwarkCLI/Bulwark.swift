import ArgumentParser
import TensorCore

/// The `bulwark` command line: thin commands over the libraries.
public struct Bulwark: ParsableCommand {
    public static let version = BulwarkVersion.current

    /// Commands from targets that BulwarkCLI does not link (the HTTPS service): the executable adds
    /// them before parsing, so the engine's command line builds without the server's dependencies.
    package nonisolated(unsafe) static var additionalSubcommands: [any ParsableCommand.Type] = []

    public static var configuration: CommandConfiguration { CommandConfiguration(
        commandName: "bulwark",
        abstract: "Adversarial-robustness testbed: train, attack, evaluate and gate dense networks.",
        discussion: """
        Exit codes (every command): 0 success; 1 a check failed (gate regression, bench --strict, manifest verify); \
        2 unusable input (a file, model, dataset, configuration, report or key); 64 usage error; \
        70 internal error; 73 an output cannot be written.
        """,
        version: version,
        subcommands: [TrainCommand.self, EvalCommand.self, InspectCommand.self, AttackCommand.self, CertifyCommand.self, BenchCommand.self, ReportCommand.self, GateCommand.self,
                      ImportCommand.self, ManifestCommand.self, SignCommand.self, VerifyCommand.self, SbomCommand.self, KeysCommand.self, DataCommand.self, ThreatCommand.self] + additionalSubcommands
    ) }

    public init() {}
}

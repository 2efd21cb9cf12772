import ArgumentParser
import Foundation
import _FileSystem
import TensorCore
import Threats

/// The `bulwark` process: refuses repeated single-valued options, parses, runs, and turns errors
/// into the documented exit codes (`ExitStatus`) with a message on stderr.
public enum CommandLineEntry {
    /// - Parameters:
    ///   - additionalSubcommands: commands of targets BulwarkCLI does not link (`serve`, `audit`).
    ///   - remotePredictionAPI: opens a client of a live service's predict URL (`threat extract`),
    ///     from the ServingClient target.
    public static func main(_ arguments: [String] = Array(CommandLine.arguments.dropFirst()),
                            additionalSubcommands: [any ParsableCommand.Type] = [],
                            remotePredictionAPI: ((_ url: String, _ apiKey: String, _ caCertificatePEM: [UInt8]?, _ rowsPerRequest: Int) throws
                                -> (api: any PredictionAPI, modelSHA256: String))? = nil) -> Never {
        Bulwark.additionalSubcommands = additionalSubcommands
        ThreatExtractCommand.remoteAPI = remotePredictionAPI
        InterruptCleanup.install()  // an interrupted write leaves no temporary file behind
        var command: any ParsableCommand
        do {
            try RepeatedOptions.check(arguments)
            command = try Bulwark.parseAsRoot(arguments)
        } catch let error as CLIError {
            finish(error.status, "error: \(error)\nSee 'bulwark --help'.")
        } catch {
            Bulwark.exit(withError: error)  // help, version, or a usage error with the usage text (exit 64)
        }
        do {
            // A command is a batch job that owns its main thread: hand it to the worker pools, so
            // they poll for their workers instead of paying a blocked wake-up per job.
            try WorkerPool.dedicating { try command.run() }
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)
        } catch let error as ValidationError {
            finish(.usage, "error: \(error)")
        } catch {
            guard let status = exitStatus(of: error) else {
                Bulwark.exit(withError: error)  // ArgumentParser's own (a command group asked for help, …)
            }
            finish(status, "error: \(error)")
        }
        Foundation.exit(0)
    }

    private static func finish(_ status: ExitStatus, _ message: String) -> Never {
        Console.flushStandardOutput()
        // Messages quote names and values from files: escape control characters (not line breaks).
        Console.note(message.split(separator: "\n", omittingEmptySubsequences: false).map { displayable($0) }.joined(separator: "\n"))
        Foundation.exit(status.rawValue)
    }
}

/// A single-valued option given twice (`--eps 0.1 … --eps 0.2`) is a usage error: ArgumentParser
/// would silently keep the last value. The options of each command come from ArgumentParser's own
/// description of the command line (`_dumpHelp`), so the check follows every change of a command.
enum RepeatedOptions {
    private struct ToolInfo: Decodable {
        let command: Command
    }

    private struct Command: Decodable {
        let commandName: String
        let subcommands: [Command]?
        let arguments: [Argument]?
    }

    private struct Argument: Decodable {
        struct Name: Decodable {
            let kind: String
            let name: String
        }
        let kind: String
        let isRepeating: Bool
        let names: [Name]?
    }

    private static let tool: Command? = try? JSONDecoder().decode(ToolInfo.self, from: Data(Bulwark._dumpHelp().utf8)).command

    /// - Throws: `CLIError.usage` naming the first repeated option.
    static func check(_ arguments: [String]) throws {
        guard var command = tool else { return }
        var index = 0
        while index < arguments.count, let sub = command.subcommands?.first(where: { $0.commandName == arguments[index] }) {
            command = sub
            index += 1
        }
        var singleValued: [String: String] = [:]  // spelling → canonical name
        for argument in command.arguments ?? [] where argument.kind == "option" && !argument.isRepeating {
            let names = argument.names ?? []
            guard let canonical = names.first(where: { $0.kind == "long" }).map({ "--" + $0.name }) else { continue }
            for name in names { singleValued[(name.kind == "short" ? "-" : "--") + name.name] = canonical }
        }
        var seen: [String: String] = [:]  // canonical name → first spelling
        for token in arguments[index...] {
            if token == "--" { break }
            let spelling = token.hasPrefix("--") ? String(token.split(separator: "=", maxSplits: 1)[0]) : token
            guard let canonical = singleValued[spelling] else { continue }
            if let first = seen[canonical] {
                throw CLIError.usage("\(canonical) is given more than once (\(first) and \(spelling)); give it once")
            }
            seen[canonical] = spelling
        }
    }
}

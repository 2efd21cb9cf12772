#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import ArgumentParser
import BulwarkCLI
import BulwarkSecurity
import Crypto
import Dispatch
import Foundation
import Logging
import NeuralNet
import Serving
import TensorCore
import _FileSystem

/// `bulwark serve`: the hardened HTTPS inference service (`Serving`), and its key and
/// certificate tools. `bulwark serve --model …` runs the service (`serve run`, the default).
public struct ServeCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve models over HTTPS with API keys, roles, rate limits, input validation, metrics and an audit log.",
        subcommands: [ServeRunCommand.self, ServeKeysCommand.self, DevCertCommand.self, FitDetectorsCommand.self],
        defaultSubcommand: ServeRunCommand.self
    )

    public init() {}
}

/// `bulwark serve [run] --model NAME=PATH …`: runs the service until SIGTERM or SIGINT.
struct ServeRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the service (the default subcommand: bulwark serve --model … is bulwark serve run --model …).",
        discussion: """
        Every model is verified before it loads (manifest, signature with --public-key, or --expect-sha256), \
        as every other command does. SIGTERM or SIGINT drains in-flight requests and stops; SIGHUP reloads \
        the API-key file (it is also reloaded when it changes).

        Examples:
          bulwark serve dev-cert --out tls
          bulwark serve keys add --api-keys keys.json --name ci-bot --role predictor
          bulwark serve --model standard=models/mlp-standard.safetensors --api-keys keys.json \\
              --tls-cert tls/cert.pem --tls-key tls/key.pem --audit-log audit.jsonl
        """
    )

    @Option(help: ArgumentHelp("A model to serve as NAME=PATH (repeat for several). NAME: letters, digits, '.', '_', '-'.", valueName: "name=path"))
    var model: [String] = []

    @Option(help: ArgumentHelp("Anomaly detectors for a model as NAME=FILE (made by bulwark serve fit-detectors); flagged inputs are counted, logged and audited.", valueName: "name=file"))
    var detectors: [String] = []

    @Option(name: .customLong("api-keys"), help: ArgumentHelp("The API-key file (mode 0600; made by bulwark serve keys add).", valueName: "file"))
    var apiKeys: String?

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port, printed at start).")
    var port = 8443

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("PEM certificate chain.", valueName: "pem"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("PEM private key (not readable by other users).", valueName: "pem"))
    var tlsKey: String?

    @Flag(name: .customLong("insecure-http"), help: "Plain HTTP instead of TLS; allowed on a loopback address only.")
    var insecureHTTP = false

    @Option(name: .customLong("audit-log"), help: ArgumentHelp("Append-only, hash-chained audit log (JSON Lines, mode 0600).", valueName: "path"))
    var auditLog: String?

    @Option(name: .customLong("audit-key"), help: ArgumentHelp("Key file (bulwark keys new-data-key): the audit chain's links become HMAC-SHA256 under it, so someone who can write the log cannot rewrite it undetected.", valueName: "file"))
    var auditKey: String?

    @Option(help: ArgumentHelp("JSON file of limits and timeouts (README, 'bulwark serve').", valueName: "file"))
    var config: String?

    @OptionGroup var security: SecurityOptions
    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        guard !model.isEmpty else { throw ValidationError("give at least one --model NAME=PATH") }
        if auditKey != nil && auditLog == nil { throw ValidationError("--audit-key applies to --audit-log; give both") }
        guard apiKeys != nil else { throw ValidationError("give --api-keys FILE (create it with bulwark serve keys add --api-keys FILE --name NAME --role predictor)") }
        switch (tlsCert, tlsKey, insecureHTTP) {
        case (.some, .some, false): break
        case (nil, nil, true):
            guard ServeConfiguration.isLoopback(host) else { throw ValidationError("\(ServeError.insecureHTTPOnPublicAddress(host))") }
        case (_, _, true): throw ValidationError("--insecure-http and --tls-cert/--tls-key exclude each other")
        case (nil, nil, false): throw ValidationError("give --tls-cert PEM and --tls-key PEM (bulwark serve dev-cert makes a pair for local use), or --insecure-http on a loopback address")
        default: throw ValidationError("give both --tls-cert and --tls-key")
        }
        let names = Set(try namedModels().map(\.name))
        for (name, _) in try namedDetectors() where !names.contains(name) {
            throw ValidationError("--detectors \(name)=…: no --model is named \(name)")
        }
    }

    func namedDetectors() throws -> [(name: String, path: String)] {
        try Self.namePathPairs(detectors, option: "--detectors", valueName: "FILE")
    }

    func namedModels() throws -> [(name: String, path: String)] {
        let pairs = try Self.namePathPairs(model, option: "--model", valueName: "PATH")
        if let bad = pairs.first(where: { !ServedModelLoading.isValidName($0.name) }) {
            throw ValidationError("--model name '\(displayable(bad.name, limit: 80))': use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        }
        return pairs
    }

    /// NAME=PATH values of a repeated option, each name once.
    static func namePathPairs(_ values: [String], option: String, valueName: String) throws -> [(name: String, path: String)] {
        var seen = Set<String>()
        return try values.map { text in
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("\(option) takes NAME=\(valueName), not '\(displayable(text, limit: 80))'")
            }
            guard seen.insert(parts[0]).inserted else { throw ValidationError("\(option) for '\(parts[0])' is given twice") }
            return (parts[0], parts[1])
        }
    }

    func run() throws {
        // The service handles SIGTERM/SIGINT (drain) and SIGHUP (reload keys) itself.
        InterruptCleanup.release(signals: [SIGINT, SIGTERM, SIGHUP])
        let limits = try config.map(ServeConfiguration.Limits.read) ?? ServeConfiguration.Limits()
        let configuration = ServeConfiguration(
            host: host, port: port,
            tls: tlsCert.flatMap { cert in tlsKey.map { ServeConfiguration.TLSFiles(certificatePath: cert, keyPath: $0) } },
            keysPath: apiKeys!, auditLogPath: auditLog,
            auditChainKey: try auditKey.map { SymmetricKey(data: try DataKey.load(path: $0).bytes) }, limits: limits)
        let loader = ServedModelLoading.loader(security: security, modelOptions: modelOptions,
                                               detectors: Dictionary(uniqueKeysWithValues: try namedDetectors().map { ($0.name, $0.path) }))
        let models = try namedModels().map { try loader($0.name, $0.path) }
        var logger = Logger(label: "bulwark.serve") { JSONLogHandler(label: $0) }
        logger.logLevel = ProcessInfo.processInfo.environment["BULWARK_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
        let server = try ServeErrors.mapping { try Server(configuration: configuration, models: models, loader: loader, logger: logger) }
        for served in models {
            logger.notice("serving model", metadata: ["model": .string(served.name), "sha256": .string(served.sha256), "architecture": .string(served.architecture)])
        }
        let canJudgeOutOfDistribution = limits.extractionMaxOutOfDistributionFraction != nil && models.contains { $0.detectors?.mahalanobis != nil }
        if limits.extractionAction != .log, limits.extractionMaxRowsPerHour == nil, !canJudgeOutOfDistribution,
           !models.contains(where: { $0.detectors?.extraction != nil }) {
            logger.warning("extraction_action is \(limits.extractionAction.rawValue), but nothing can flag a key: give --detectors files fitted with an extraction (PRADA) or Mahalanobis detector, or extraction_max_rows_per_hour")
        }
        if limits.extractionMaxOutOfDistributionFraction != nil, !models.contains(where: { $0.detectors?.mahalanobis != nil }) {
            logger.warning("extraction_max_ood_fraction is set, but no model has a Mahalanobis detector (bulwark serve fit-detectors): it judges nothing")
        }
        let outcome = Locked<(any Error)?>(nil)
        let done = DispatchSemaphore(value: 0)
        let scheme = configuration.tls == nil ? "http" : "https"
        let (host, serverLogger) = (host, logger)
        Task.detached {
            do {
                try await server.run { port in
                    serverLogger.notice("listening", metadata: ["url": .string("\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)"), "port": .stringConvertible(port)])
                }
            } catch {
                outcome.withLock { $0 = error }
            }
            done.signal()
        }
        done.wait()
        if let error = outcome.withLock({ $0 }) { throw CLIError.unusableInput("the service stopped: \(error)") }
        logger.notice("stopped")
    }
}

/// Turns the service's errors into the command line's exit codes.
enum ServeErrors {
    static func mapping<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ServeError {
            switch error {
            case .invalidConfiguration, .insecureHTTPOnPublicAddress: throw CLIError.usage("\(error)")
            default: throw CLIError.unusableInput("\(error)")
            }
        } catch let error as AuditVerifier.Failure {
            throw CLIError.checkFailed("\(error)")
        }
    }
}

/// Loads served models exactly as the other commands load models: verified by the manifest (and
/// signature) or `--expect-sha256` before parsing, decrypted with the data key if encrypted.
enum ServedModelLoading {
    static func isValidName(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), let first = name.utf8.first, isAlphanumeric(first) else { return false }
        return name.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    private static func isAlphanumeric(_ c: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
    }

    /// - Parameter detectors: detector files by model name, verified and checked against the model.
    static func loader(security: SecurityOptions, modelOptions: ModelOptions, detectors: [String: String] = [:]) -> ModelLoader {
        { name, path in
            let fileLoader = try security.loader(model: path)
            let loaded = try modelOptions.load(path, loader: fileLoader)
            guard let sha256 = fileLoader.digests[path] else {
                throw CLIError.unusableInput("\(path) was loaded without its digest being recorded (internal error)")
            }
            let cardPath = (path.hasSuffix(".safetensors") ? String(path.dropLast(".safetensors".count)) : path) + ".card.json"
            var card: JSONValue?
            if FileManager.default.fileExists(atPath: cardPath) {
                do {
                    let bytes = try fileLoader.load(cardPath, limit: 1 << 20)
                    card = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
                } catch {
                    log.warning("the model card \(cardPath) is not served: \(error)")
                }
            }
            let network = loaded.network
            let inference = network.inferenceModel(pool: nil)
            var fitted: AnomalyDetectors?
            if let detectorPath = detectors[name] {
                do {
                    fitted = try AnomalyDetectors.decode(try fileLoader.load(detectorPath, limit: 64 << 20), source: detectorPath,
                                                         model: inference, modelSHA256: sha256)
                } catch let error as AnomalyDetectors.Invalid {
                    throw CLIError.unusableInput(error.description)
                }
            }
            return ServedModel(name: name, path: path, model: inference, sha256: sha256,
                               architecture: network.spec.shorthand, card: card, detectors: fitted)
        }
    }
}
#endif

#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import ArgumentParser
import BulwarkCLI
import Foundation
import NeuralNet
import Serving
import _FileSystem

extension Role: ExpressibleByArgument {}

/// `bulwark serve keys add|list|revoke`: the API-key file. A running service picks changes up
/// within a second (or at once on SIGHUP).
struct ServeKeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Add, list and revoke API keys (the file stores only SHA-256 hashes of the keys).",
        discussion: """
        Examples:
          bulwark serve keys add --api-keys keys.json --name ci-bot --role predictor --rate 10 --burst 20
          bulwark serve keys add --api-keys keys.json --name dashboard --role predictor --output top-k:3
          bulwark serve keys list --api-keys keys.json
          bulwark serve keys revoke --api-keys keys.json --name ci-bot
        """,
        subcommands: [Add.self, List.self, Revoke.self]
    )

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key and print it once; only its hash is stored.")

        @Option(name: .customLong("api-keys"), help: ArgumentHelp("The API-key file (created with mode 0600 if missing).", valueName: "file"))
        var apiKeys: String

        @Option(help: "A name for the key, shown in logs, metrics and the audit log.")
        var name: String

        @Option(help: "admin (everything), predictor (predictions and the model list) or auditor (metrics, audit log, model list).")
        var role: Role

        @Option(help: "Requests per second the key may send on average.")
        var rate: Double = KeyFile.defaultRate

        @Option(help: "Requests the key may send at once.")
        var burst: Int = KeyFile.defaultBurst

        @Option(help: ArgumentHelp("What predictions show: full, top-k:K, rounded:D, label, reverse-sigmoid:BETA:GAMMA (Lee et al. 2019) or noise:SIGMA (Gaussian on the probabilities).", valueName: "policy"))
        var output = "full"

        @Flag(help: "Print {\"name\", \"role\", \"key\"} as JSON.")
        var json = false

        func validate() throws {
            guard (1...64).contains(name.count), name.allSatisfy({ $0.isLetter || $0.isNumber || "._-@".contains($0) }) else {
                throw ValidationError("--name: use 1 to 64 letters, digits, '.', '_', '-' or '@'")
            }
            guard KeyFile.rateRange.contains(rate) else { throw ValidationError("--rate must be \(KeyFile.rateRange.lowerBound) to \(Int(KeyFile.rateRange.upperBound)) requests per second") }
            guard KeyFile.burstRange.contains(burst) else { throw ValidationError("--burst must be 1 to \(KeyFile.burstRange.upperBound)") }
            do { _ = try OutputPolicy(parsing: output) } catch { throw ValidationError("--output: \(error)") }
        }

        func run() throws {
            let key = APIKey.generate()
            let policy = try OutputPolicy(parsing: output)
            let created = AuditLog.timestamp(Date())
            try ServeErrors.mapping {
                try KeyFile.modify(apiKeys) { file in
                    guard !file.keys.contains(where: { $0.name == name }) else { throw ServeError.duplicateKeyName(name) }
                    file.keys.append(KeyEntry(id: key.id, name: name, role: role, sha256: key.secretDigest, rate: rate, burst: burst,
                                              output: policy, created: created))
                }
            }
            if json {
                try JSONOutput.line(["name": name, "role": role.rawValue, "key": key.text])
            } else {
                print(key.text)
                Console.note("added key '\(name)' (role \(role.rawValue), \(rate)/s, burst \(burst), output \(policy)) to \(apiKeys). This is the only time the key is shown: store it now. Send it as 'Authorization: Bearer <key>'.")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (names, roles, limits; never the keys).")

        @Option(name: .customLong("api-keys"), help: ArgumentHelp("The API-key file.", valueName: "file"))
        var apiKeys: String

        @Flag(help: "One JSON object per key.")
        var json = false

        func run() throws {
            let file = try ServeErrors.mapping { try KeyFile.read(apiKeys) }
            for key in file.keys {
                if json {
                    struct Listed: Encodable { let id, name, role, output, created: String; let rate: Double; let burst: Int; let revoked: Bool }
                    try JSONOutput.line(Listed(id: key.id, name: key.name, role: key.role.rawValue, output: key.output.description,
                                               created: key.created, rate: key.rate, burst: key.burst, revoked: key.revoked))
                } else {
                    print("\(key.name)\t\(key.role.rawValue)\t\(key.rate)/s burst \(key.burst)\t\(key.output)\tcreated \(key.created)\(key.revoked ? "\tREVOKED" : "")\tid \(key.id)")
                }
            }
            if file.keys.isEmpty && !json { Console.note("\(apiKeys) holds no keys") }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key: it is refused from the next request on (the entry stays, marked revoked).")

        @Option(name: .customLong("api-keys"), help: ArgumentHelp("The API-key file.", valueName: "file"))
        var apiKeys: String

        @Option(help: "The key's name.")
        var name: String

        func run() throws {
            try ServeErrors.mapping {
                try KeyFile.modify(apiKeys) { file in
                    guard let index = file.keys.firstIndex(where: { $0.name == name }) else { throw ServeError.unknownKey(name) }
                    file.keys[index].revoked = true
                }
            }
            Console.note("revoked key '\(name)' in \(apiKeys); a running service refuses it within a second")
        }
    }
}
#endif

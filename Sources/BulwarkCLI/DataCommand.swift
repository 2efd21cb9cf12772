import ArgumentParser
import Foundation
import _FileSystem
import BulwarkSecurity

/// `bulwark data encrypt|decrypt`: encryption at rest for models and datasets.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Encrypt and decrypt model and data files (AES-256-GCM chunked containers, or Fernet).",
        discussion: """
        Examples:
          bulwark data encrypt --key-file data.key models/mlp-pgd.safetensors secret/mlp-pgd.safetensors
          bulwark data encrypt --format fernet --key-file data.key IN OUT
          bulwark data decrypt --key-file data.key --ttl 3600 IN OUT
        """,
        subcommands: [Encrypt.self, Decrypt.self]
    )

    enum Format: String, ExpressibleByArgument {
        case bulwark, fernet
    }

    struct Encrypt: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Encrypt IN into OUT (written atomically).")

        @Option(help: ArgumentHelp("Key file (or $BULWARK_DATA_KEY).", valueName: "file"))
        var keyFile: String?

        @Option(help: "bulwark (AES-256-GCM in authenticated chunks; any size, bounded memory) or fernet (Python cryptography compatible; in memory).")
        var format: Format = .bulwark

        @Argument var input: String
        @Argument var output: String

        @Flag(help: "Replace an existing OUT that is not an encrypted file (never IN or the key file).")
        var force = false

        func run() throws {
            let key = try requireDataKey(keyFile)
            // Compared as files (device and inode), so ./p.bin and p.bin, links and the key file are caught;
            // bulwark keys rotate re-encrypts in place.
            try OutputPath.prepare(output, for: "OUT", replacing: [.encrypted], inputs: [input] + (keyFile.map { [$0] } ?? []), force: force)
            try DataEncryption.encrypt(input, to: output, key: key, format: format == .fernet ? .fernet : .container)
            try ModelLoading.record(output, recipe: "bulwark data encrypt (\(format.rawValue))")
            print("encrypted \(input) → \(output) (\(format.rawValue))")
        }
    }

    struct Decrypt: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decrypt IN into OUT (mode 0600); the format is detected.")

        @Option(help: ArgumentHelp("Key file (or $BULWARK_DATA_KEY).", valueName: "file"))
        var keyFile: String?

        @Option(help: ArgumentHelp("Refuse Fernet tokens older than this many seconds.", valueName: "seconds"))
        var ttl: UInt64?

        @Argument var input: String
        @Argument var output: String

        @Flag(help: "Replace an existing OUT (never IN or the key file).")
        var force = false

        func run() throws {
            let key = try requireDataKey(keyFile)
            try OutputPath.prepare(output, for: "OUT", replacing: [], inputs: [input] + (keyFile.map { [$0] } ?? []), force: force)
            try DataEncryption.decrypt(input, to: output, key: key, ttl: ttl)
            print("decrypted \(input) → \(output)")
        }
    }
}

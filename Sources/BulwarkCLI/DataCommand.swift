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
        With --key-file the file is encrypted under that data key. With --recipient (X-Wing public keys,
        post-quantum hybrid) or key-encryption keys (--kek-file, --kek-env, --kek-command for a KMS), the file
        gets its own random data key, wrapped in its header for each of them (envelope encryption); re-wrap
        it with bulwark keys rewrap, without re-encrypting the data.
        Examples:
          bulwark data encrypt --key-file data.key models/mlp-pgd.safetensors secret/mlp-pgd.safetensors
          bulwark data encrypt --format fernet --key-file data.key IN OUT
          bulwark data decrypt --key-file data.key --ttl 3600 IN OUT
          bulwark data encrypt --recipient alice.pub --recipient ci.pub IN OUT
          bulwark data decrypt --identity ~/.bulwark-keys/bulwark-recipient.key IN OUT
          bulwark data encrypt --kek-command 'my-kms-wrap' IN OUT
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

        @Option(name: .customLong("recipient"), parsing: .singleValue,
                help: ArgumentHelp("X-Wing public key to encrypt to (repeatable; bulwark keys generate --algorithm xwing).", valueName: "file"))
        var recipients: [String] = []

        @OptionGroup var keyEncryption: KeyEncryptionOptions

        @Argument var input: String
        @Argument var output: String

        @Flag(help: "Replace an existing OUT that is not an encrypted file (never IN or the key file).")
        var force = false

        var isEnvelope: Bool { !recipients.isEmpty || !keyEncryption.isEmpty }

        func validate() throws {
            if !keyEncryption.identities.isEmpty {
                throw ValidationError("--identity opens files (bulwark data decrypt); to encrypt to a key pair, give its public key with --recipient")
            }
            if isEnvelope && keyFile != nil {
                throw ValidationError("--key-file encrypts under that data key; --recipient and --kek-* wrap a new data key per file. Give one or the other")
            }
            if isEnvelope && format == .fernet {
                throw ValidationError("Fernet has no recipients or key-encryption keys; use --format bulwark")
            }
        }

        func run() throws {
            let keyFiles = recipients + (keyFile.map { [$0] } ?? []) + (keyEncryption.kekFile.map { [$0] } ?? [])
            let key = isEnvelope ? nil : try requireDataKey(keyFile)
            let wrappers = isEnvelope ? try recipients.map { KeyWrapper.recipient(try RecipientKeys.loadPublicKey($0)) } + keyEncryption.keyEncryptionKeys() : []
            // Compared as files (device and inode), so ./p.bin and p.bin, links and the key file are caught;
            // bulwark keys rotate re-encrypts in place.
            try OutputPath.prepare(output, for: "OUT", replacing: [.encrypted], inputs: [input] + keyFiles, force: force)
            if let key {
                try DataEncryption.encrypt(input, to: output, key: key, format: format == .fernet ? .fernet : .container)
                try ModelLoading.record(output, recipe: "bulwark data encrypt (\(format.rawValue))")
                print("encrypted \(input) → \(output) (\(format.rawValue))")
            } else {
                try EnvelopeEncryption.encryptFile(input, to: output, for: wrappers)
                try ModelLoading.record(output, recipe: "bulwark data encrypt (envelope, \(wrappers.count) key holders)")
                let keys = wrappers.count - recipients.count
                print("encrypted \(input) → \(output) (envelope for \(recipients.count) recipient\(recipients.count == 1 ? "" : "s") "
                      + "and \(keys) key-encryption key\(keys == 1 ? "" : "s"))")
            }
        }
    }

    struct Decrypt: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decrypt IN into OUT (mode 0600); the format is detected.")

        @Option(help: ArgumentHelp("Key file (or $BULWARK_DATA_KEY).", valueName: "file"))
        var keyFile: String?

        @Option(help: ArgumentHelp("Refuse Fernet tokens older than this many seconds.", valueName: "seconds"))
        var ttl: UInt64?

        @OptionGroup var keyEncryption: KeyEncryptionOptions

        @Argument var input: String
        @Argument var output: String

        @Flag(help: "Replace an existing OUT (never IN or the key file).")
        var force = false

        func run() throws {
            let unwrappers = try keyEncryption.unwrappers()
            if unwrappers.isEmpty, EnvelopeEncryption.isEnvelope(try FileReader.readPrefix(input, count: 8)) {
                throw ValidationError("\(input) is encrypted to recipients or key-encryption keys; give --identity, --kek-file, --kek-env or --kek-command")
            }
            let key = unwrappers.isEmpty ? try requireDataKey(keyFile) : try DataKey.resolve(keyFile: keyFile)
            let keyFiles = (keyFile.map { [$0] } ?? []) + keyEncryption.identities + (keyEncryption.kekFile.map { [$0] } ?? [])
            try OutputPath.prepare(output, for: "OUT", replacing: [], inputs: [input] + keyFiles, force: force)
            try DataEncryption.decrypt(input, to: output, key: key, unwrappers: unwrappers, ttl: ttl)
            print("decrypted \(input) → \(output)")
        }
    }
}

import ArgumentParser
import Foundation
import BulwarkSecurity

/// `--algorithm` of `bulwark keys generate`: a signing algorithm, or X-Wing for recipients.
enum KeyAlgorithmOption: String, ExpressibleByArgument, CaseIterable {
    case ed25519, p256, mldsa65, hybrid, xwing
    /// nil for X-Wing, which encrypts rather than signs.
    var signing: SigningAlgorithm? { SigningAlgorithm.allCases.first { $0.optionName == rawValue } }
}

/// `bulwark keys generate|new-data-key|rotate`.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Generate signing keys and data keys; re-encrypt files under a new key.",
        discussion: """
        Examples:
          bulwark keys generate --out ~/.bulwark-keys
          bulwark keys generate --algorithm hybrid --out ~/.bulwark-pq-keys
          bulwark keys new-data-key --out data.key
          bulwark keys rotate --key-file data.key --new-key-file new.key secret/*.safetensors
          bulwark keys rewrap --kek-file old-kek.key --new-kek-file new-kek.key secret/*.safetensors
        """,
        subcommands: [Generate.self, NewDataKey.self, Rotate.self, Rewrap.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a manifest signing key pair (private key mode 0600).",
            discussion: """
            Algorithms: ed25519 (default; 32-byte keys, 64-byte signatures), p256 (ECDSA P-256 with SHA-256),
            mldsa65 (ML-DSA-65, FIPS 204, post-quantum; 1,952-byte public keys, 3,309-byte signatures), and
            hybrid (Ed25519 AND ML-DSA-65: both must verify, so a forgery must break both).
            xwing makes an encryption key pair instead (X-Wing: ML-KEM-768 + X25519), bulwark-recipient.key and
            bulwark-recipient.pub, for bulwark data encrypt --recipient and --identity.
            For OpenSSF Model Signing (bulwark sign), use a PEM ECDSA key instead:
              openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out key.pem
              openssl pkey -in key.pem -pubout -out pub.pem
            """)

        @Option(help: ArgumentHelp("Directory for the key pair (bulwark-signing.key and .pub; bulwark-recipient.key and .pub for xwing).", valueName: "dir"))
        var out: String

        @Option(help: "ed25519, p256, mldsa65 or hybrid (Ed25519 + ML-DSA-65) to sign; xwing to receive encrypted files.")
        var algorithm: KeyAlgorithmOption = .ed25519

        func run() throws {
            guard let signing = algorithm.signing else {
                let (privateKey, publicKey) = try RecipientKeys.generate(into: out)
                print("private key \(privateKey) (the identity; keep it secret; mode 0600)")
                print("public key  \(publicKey) (x-wing recipient \(RecipientKeys.fingerprint(try RecipientKeys.loadPublicKey(publicKey))))")
                return
            }
            let (privateKey, publicKey) = try SigningKeys.generate(into: out, algorithm: signing)
            print("private key \(privateKey) (keep it secret; mode 0600)")
            print("public key  \(publicKey) (\(signing.rawValue), fingerprint \(try SigningKeys.loadPublicKey(publicKey).fingerprint))")
        }
    }

    struct NewDataKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "new-data-key",
            abstract: "Generate a 32-byte data key (URL-safe base64, mode 0600) for encryption at rest; it also works as a Fernet key.")

        @Option(help: ArgumentHelp("Key file to create.", valueName: "file"))
        var out: String

        func run() throws {
            guard !FileManager.default.fileExists(atPath: out) else {
                throw CLIError.cannotWrite("\(out) exists; Bulwark does not overwrite keys (choose another --out)")
            }
            try DataKey.generate().write(to: out)
            print("wrote \(out) (mode 0600)")
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-encrypt files under a new key in place, without writing plaintext to disk.")

        @Option(help: ArgumentHelp("Current key file (or $BULWARK_DATA_KEY).", valueName: "file"))
        var keyFile: String?

        @Option(help: ArgumentHelp("New key file.", valueName: "file"))
        var newKeyFile: String

        @Argument(help: "Encrypted files (Bulwark containers or Fernet tokens).")
        var files: [String]

        func run() throws {
            let oldKey = try requireDataKey(keyFile)
            let newKey = try DataKey.load(path: newKeyFile)
            for file in files {
                try DataEncryption.rotate(file, from: oldKey, to: newKey)
                try ModelLoading.record(file, recipe: nil)
                print("re-encrypted \(file)")
            }
        }
    }

    struct Rewrap: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-wrap envelope-encrypted files' data keys for new recipients or key-encryption keys, without re-encrypting the data.",
            discussion: """
            Opens each file's data key with --identity or --kek-* (the current key holders) and replaces the
            header's wrapped keys by ones for the --new-* key holders; the encrypted data is copied unchanged, and
            each file is replaced atomically. Give every holder the file should keep: the old set is replaced.
            """)

        @OptionGroup var current: KeyEncryptionOptions

        @Option(name: .customLong("new-recipient"), parsing: .singleValue, help: ArgumentHelp("X-Wing public key to wrap for (repeatable).", valueName: "file"))
        var newRecipients: [String] = []

        @Option(help: ArgumentHelp("New key-encryption key file.", valueName: "file"))
        var newKekFile: String?

        @Option(help: ArgumentHelp("Environment variable with the new key-encryption key.", valueName: "name"))
        var newKekEnv: String?

        @Option(help: ArgumentHelp("New key-encryption command.", valueName: "command"))
        var newKekCommand: String?

        @Flag(help: "Do not unwrap a key the --new-kek-command just wrapped to check it (for encrypt-only KMS permissions).")
        var noNewKekCheck = false

        @Argument(help: "Envelope-encrypted files (bulwark data encrypt --recipient or --kek-*).")
        var files: [String]

        func run() throws {
            let unwrappers = try current.unwrappers()
            guard !unwrappers.isEmpty else { throw ValidationError("give the current key holder with --identity, --kek-file, --kek-env or --kek-command") }
            let wrappers = try newRecipients.map { KeyWrapper.recipient(try RecipientKeys.loadPublicKey($0)) }
                + KeyEncryptionOptions.keyEncryptionKeys(file: newKekFile, environment: newKekEnv, command: newKekCommand,
                                                         timeout: current.kekTimeout ?? 30, checksRoundTrip: !noNewKekCheck)
            guard !wrappers.isEmpty else { throw ValidationError("give the new key holders with --new-recipient, --new-kek-file, --new-kek-env or --new-kek-command") }
            for file in files {
                try EnvelopeEncryption.rewrapFile(file, unwrappers: unwrappers, for: wrappers)
                try ModelLoading.record(file, recipe: nil)
                print("re-wrapped \(file) for \(wrappers.count) key holder\(wrappers.count == 1 ? "" : "s") (data unchanged)")
            }
        }
    }
}

import ArgumentParser
import Foundation
import BulwarkSecurity

/// `bulwark keys generate|new-data-key|rotate`.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Generate signing keys and data keys; re-encrypt files under a new key.",
        discussion: """
        Examples:
          bulwark keys generate --out ~/.bulwark-keys
          bulwark keys new-data-key --out data.key
          bulwark keys rotate --key-file data.key --new-key-file new.key secret/*.safetensors
        """,
        subcommands: [Generate.self, NewDataKey.self, Rotate.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Generate an Ed25519 signing key pair (private key mode 0600).")

        @Option(help: ArgumentHelp("Directory for bulwark-signing.key and bulwark-signing.pub.", valueName: "dir"))
        var out: String

        func run() throws {
            let (privateKey, publicKey) = try SigningKeys.generate(into: out)
            print("private key \(privateKey) (keep it secret; mode 0600)")
            print("public key  \(publicKey) (fingerprint \(SigningKeys.fingerprint(try SigningKeys.loadPublicKey(publicKey))))")
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
}

import ArgumentParser
import Foundation
import BulwarkSecurity

/// `--algorithm` of `bulwark keys generate`.
enum SigningAlgorithmOption: String, ExpressibleByArgument, CaseIterable {
    case ed25519, p256, mldsa65, hybrid
    var algorithm: SigningAlgorithm { SigningAlgorithm.allCases.first { $0.optionName == rawValue }! }
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
        """,
        subcommands: [Generate.self, NewDataKey.self, Rotate.self]
    )

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a manifest signing key pair (private key mode 0600).",
            discussion: """
            Algorithms: ed25519 (default; 32-byte keys, 64-byte signatures), p256 (ECDSA P-256 with SHA-256),
            mldsa65 (ML-DSA-65, FIPS 204, post-quantum; 1,952-byte public keys, 3,309-byte signatures), and
            hybrid (Ed25519 AND ML-DSA-65: both must verify, so a forgery must break both).
            For OpenSSF Model Signing (bulwark sign), use a PEM ECDSA key instead:
              openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out key.pem
              openssl pkey -in key.pem -pubout -out pub.pem
            """)

        @Option(help: ArgumentHelp("Directory for bulwark-signing.key and bulwark-signing.pub.", valueName: "dir"))
        var out: String

        @Option(help: "ed25519, p256, mldsa65 or hybrid (Ed25519 + ML-DSA-65).")
        var algorithm: SigningAlgorithmOption = .ed25519

        func run() throws {
            let (privateKey, publicKey) = try SigningKeys.generate(into: out, algorithm: algorithm.algorithm)
            print("private key \(privateKey) (keep it secret; mode 0600)")
            print("public key  \(publicKey) (\(algorithm.algorithm.rawValue), fingerprint \(try SigningKeys.loadPublicKey(publicKey).fingerprint))")
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

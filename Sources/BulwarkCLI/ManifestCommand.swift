import ArgumentParser
import Foundation
import NeuralNet
import BulwarkSecurity
import _FileSystem

/// `bulwark manifest create|verify|sign DIR`: integrity manifests of model and data directories.
struct ManifestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "manifest",
        abstract: "Create, verify and sign integrity manifests (SHA-256, size and recipe of every file).",
        discussion: """
        Examples:
          bulwark manifest create models
          bulwark manifest sign models --key ~/.bulwark-keys/bulwark-signing.key
          bulwark manifest verify models --public-key ~/.bulwark-keys/bulwark-signing.pub
        """,
        subcommands: [Create.self, Verify.self, Sign.self]
    )

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write DIR/bulwark-manifest.json covering every file of DIR.")

        @Argument(help: "Directory of models or datasets.")
        var directory: String

        func run() throws {
            let previous = try Manifest.load(directory: directory)
            let manifest = try Manifest.create(directory: directory, previous: previous) { path in
                // Models carry their recipe in their metadata.
                guard path.hasSuffix(".safetensors"), let file = try? SafeTensors(contentsOf: path) else { return nil }
                return file.metadata["recipe"]
            }
            try manifest.write(directory: directory)
            if previous?.signature != nil {
                log.warning("the previous manifest was signed; the new one is not. Sign it with bulwark manifest sign \(directory) --key KEY")
            }
            print("wrote \(Manifest.path(in: directory)) with \(manifest.files.count) files")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check every file of DIR against its manifest (and the signature).")

        @Argument(help: "Directory with a bulwark-manifest.json.")
        var directory: String

        @Option(help: ArgumentHelp("Trusted public key: the manifest must be signed by it.", valueName: "file"))
        var publicKey: String?

        func run() throws {
            guard let manifest = try Manifest.load(directory: directory) else {
                throw CLIError.unusableInput("\(directory) has no \(Manifest.fileName); create one with bulwark manifest create \(directory)")
            }
            let result = try manifest.verify(directory: directory, trustedKey: try publicKey.map(SigningKeys.loadPublicKey))
            for name in result.verified { print("ok        \(name)") }
            for (name, expected, actual) in result.mismatched { print("MISMATCH  \(name): expected \(expected), actual \(actual)") }
            for name in result.missing { print("MISSING   \(name)") }
            for name in result.unlisted { print("unlisted  \(name) (not covered by the manifest)") }
            switch (result.signer, publicKey) {
            case (nil, _): print("signature none (unsigned manifest)")
            case (let signer?, nil): print("signature valid, key \(signer) (not checked against a trusted key; pass --public-key)")
            case (let signer?, _?): print("signature valid, trusted key \(signer)")
            }
            guard result.ok else {
                throw CLIError.checkFailed("\(result.mismatched.count) file(s) changed and \(result.missing.count) missing in \(directory)")
            }
        }
    }

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Verify DIR against its manifest, then sign the manifest (Ed25519, P-256, ML-DSA-65 or the hybrid, as the key says).")

        @Argument(help: "Directory with a bulwark-manifest.json.")
        var directory: String

        @Option(help: ArgumentHelp("Private key file (from bulwark keys generate).", valueName: "file"))
        var key: String

        func run() throws {
            guard var manifest = try Manifest.load(directory: directory) else {
                throw CLIError.unusableInput("\(directory) has no \(Manifest.fileName); create one with bulwark manifest create \(directory)")
            }
            let privateKey = try SigningKeys.loadPrivateKey(key)
            manifest.signature = nil
            let result = try manifest.verify(directory: directory, trustedKey: nil)
            guard result.ok else {
                throw CLIError.checkFailed("refusing to sign: \(result.mismatched.count) file(s) differ from the manifest and \(result.missing.count) are missing; run bulwark manifest verify \(directory)")
            }
            try manifest.sign(with: privateKey)
            try manifest.write(directory: directory)
            print("signed \(Manifest.path(in: directory)) (\(manifest.files.count) files) with \(privateKey.algorithm.rawValue) key \(privateKey.publicKey.fingerprint)")
        }
    }
}

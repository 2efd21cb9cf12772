import ArgumentParser
import Foundation
import BulwarkSecurity

/// The data key from `--key-file` or `$BULWARK_DATA_KEY`, or a message saying how to give one.
func requireDataKey(_ keyFile: String?) throws -> DataKey {
    guard let key = try DataKey.resolve(keyFile: keyFile) else {
        throw ValidationError("give the key with --key-file FILE or $\(DataKey.environmentVariable) (create one with bulwark keys new-data-key)")
    }
    return key
}

/// How files are checked (and decrypted) before they are parsed, shared by every command that loads
/// a model or a dataset.
package struct SecurityOptions: ParsableArguments, Sendable {
    package init() {}

    @Option(name: .customLong("expect-sha256"), help: ArgumentHelp("Expected SHA-256 of the model file given to this command (instead of its manifest entry).", valueName: "hex"))
    var expectSHA256: String?

    @Flag(help: "Load files that no manifest or digest vouches for (logged as a warning).")
    var allowUnverified = false

    @Option(help: ArgumentHelp("Key file for encrypted models and data (or set $BULWARK_DATA_KEY).", valueName: "file"))
    var keyFile: String?

    @Option(help: ArgumentHelp("Trusted Ed25519 public key: manifests must be signed by it (or set $BULWARK_PUBLIC_KEY to a key file).", valueName: "file"))
    var publicKey: String?

    @Option(help: ArgumentHelp("Refuse Fernet-encrypted files older than this many seconds.", valueName: "seconds"))
    var ttl: UInt64?

    package func validate() throws {
        if let expectSHA256, !Manifest.isHexDigest(expectSHA256.lowercased()) {
            throw ValidationError("\(SecurityError.invalidDigest(expectSHA256))")
        }
    }

    /// The loader for this command; `model` is the file `--expect-sha256` refers to.
    package func loader(model: String? = nil) throws -> VerifyingFileLoader {
        var expected: [String: String] = [:]
        if let expectSHA256 {
            guard let model else { throw ValidationError("--expect-sha256 applies to commands that take a model file") }
            expected[model] = expectSHA256.lowercased()
        }
        let keyPath = publicKey ?? ProcessInfo.processInfo.environment["BULWARK_PUBLIC_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        return VerifyingFileLoader(
            expectedDigests: expected, allowUnverified: allowUnverified,
            trustedKey: try keyPath.map(SigningKeys.loadPublicKey), dataKey: try DataKey.resolve(keyFile: keyFile),
            fernetTTL: ttl, warn: { log.warning("\($0)") })
    }
}

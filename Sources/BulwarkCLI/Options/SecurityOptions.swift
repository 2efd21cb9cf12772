import ArgumentParser
import Foundation
import BulwarkSecurity
import _FileSystem

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

    @Option(help: ArgumentHelp("Trusted public key (or set $BULWARK_PUBLIC_KEY to a key file): a Bulwark key (bulwark keys generate) means manifests must be signed by it; a PEM ECDSA key means every file must be listed in an OpenSSF Model Signing signature DIR/model.sig made with it (bulwark sign, model_signing sign key).", valueName: "file"))
    var publicKey: String?

    @Option(help: ArgumentHelp("Refuse Fernet-encrypted files older than this many seconds.", valueName: "seconds"))
    var ttl: UInt64?

    @OptionGroup var keyEncryption: KeyEncryptionOptions

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
        var trustedKey: SigningPublicKey?, modelSigningKey: ECDSAPublicKey?
        if let keyPath {
            // A PEM key is an OMS signer's; Bulwark's own key files are JSON.
            let text = String(decoding: try FileReader.readAll(keyPath, limit: 64 << 10), as: UTF8.self)
            if !text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("{"), text.contains("-----BEGIN ") {
                modelSigningKey = try ECDSAPublicKey(pem: text, source: keyPath)
            } else {
                trustedKey = try SigningKeys.loadPublicKey(keyPath)
            }
        }
        let loader = VerifyingFileLoader(
            expectedDigests: expected, allowUnverified: allowUnverified,
            trustedKey: trustedKey, modelSigningKey: modelSigningKey, dataKey: try DataKey.resolve(keyFile: keyFile),
            fernetTTL: ttl, warn: { log.warning("\($0)") })
        loader.keyUnwrappers = try keyEncryption.unwrappers()
        return loader
    }
}

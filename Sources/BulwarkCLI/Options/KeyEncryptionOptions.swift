import ArgumentParser
import Foundation
import BulwarkSecurity

/// How envelope-encrypted files (format 2) are opened: X-Wing identities and key-encryption keys
/// from a file, an environment variable or a command (a KMS). Shared by every command that reads
/// encrypted models or data.
package struct KeyEncryptionOptions: ParsableArguments, Sendable {
    package init() {}

    @Option(name: .customLong("identity"), parsing: .singleValue,
            help: ArgumentHelp("X-Wing private key that opens files encrypted to its public key (repeatable; bulwark keys generate --algorithm xwing).", valueName: "file"))
    var identities: [String] = []

    @Option(help: ArgumentHelp("Key-encryption key file (the base64 of 32 bytes, mode 0600) that wraps files' data keys.", valueName: "file"))
    var kekFile: String?

    @Option(help: ArgumentHelp("Environment variable holding a key-encryption key (the base64 of 32 bytes).", valueName: "name"))
    var kekEnv: String?

    @Option(help: ArgumentHelp("Command that wraps and unwraps data keys (a KMS or HSM client), run non-interactively by /bin/sh with BULWARK_KEK_OPERATION=wrap|unwrap and BULWARK_KEK_CONTEXT (the file's header, hex), the input on stdin, the result on stdout.", valueName: "command"))
    var kekCommand: String?

    @Option(help: ArgumentHelp("Seconds the --kek-command may take (default 30).", valueName: "seconds"))
    var kekTimeout: Double?

    @Flag(help: "Do not unwrap a key the --kek-command just wrapped to check it (for encrypt-only KMS permissions).")
    var noKekCheck = false

    package func validate() throws {
        if let kekTimeout, !(kekTimeout > 0 && kekTimeout <= 3600) { throw ValidationError("--kek-timeout must be between 0 and 3600 seconds") }
        if kekCommand?.trimmingCharacters(in: .whitespaces).isEmpty == true { throw ValidationError("--kek-command is empty") }
        if kekCommand == nil && (kekTimeout != nil || noKekCheck) { throw ValidationError("--kek-timeout and --no-kek-check apply to --kek-command") }
    }

    var isEmpty: Bool { identities.isEmpty && kekFile == nil && kekEnv == nil && kekCommand == nil }

    /// The key-encryption keys given (file, environment, command), in that order.
    func keyEncryptionKeys() throws -> [KeyWrapper] {
        try Self.keyEncryptionKeys(file: kekFile, environment: kekEnv, command: kekCommand, timeout: kekTimeout ?? 30, checksRoundTrip: !noKekCheck)
    }

    /// Key-encryption keys from a file, an environment variable and a command (each optional).
    static func keyEncryptionKeys(file kekFile: String?, environment kekEnv: String?, command kekCommand: String?,
                                  timeout kekTimeout: Double, checksRoundTrip: Bool = true) throws -> [KeyWrapper] {
        var wrappers: [KeyWrapper] = []
        if let kekFile { wrappers.append(.keyEncryptionKey(try DataKey.load(path: kekFile))) }
        if let kekEnv {
            guard let text = ProcessInfo.processInfo.environment[kekEnv], !text.isEmpty else {
                throw ValidationError("\(kekEnv): the environment variable named for the key-encryption key is not set")
            }
            guard let bytes = Base64.decodeEither(text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == 32 else {
                throw ValidationError("\(kekEnv): the key-encryption key must be the base64 of 32 bytes (make one with bulwark keys new-data-key)")
            }
            wrappers.append(.keyEncryptionKey(try DataKey(bytes: bytes)))
        }
        if let kekCommand {
            // The command must not see the key-encryption key Bulwark was given in the environment.
            wrappers.append(.command(KeyEncryptionCommand(command: kekCommand, timeout: kekTimeout, checksRoundTrip: checksRoundTrip,
                                                          hiddenVariables: kekEnv.map { [$0] } ?? [])))
        }
        return wrappers
    }

    /// Everything given that can open a file.
    package func unwrappers() throws -> [KeyUnwrapper] {
        let identities = try self.identities.map { KeyUnwrapper.identity(try RecipientKeys.loadPrivateKey($0)) }
        return identities + (try keyEncryptionKeys()).map { wrapper in
            switch wrapper {
            case .keyEncryptionKey(let key): KeyUnwrapper.keyEncryptionKey(key)
            case .command(let command): KeyUnwrapper.command(command)
            case .recipient: preconditionFailure("keyEncryptionKeys() returns no recipients")
            }
        }
    }
}

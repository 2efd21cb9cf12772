import ArgumentParser
import Foundation
import BulwarkSecurity
import _FileSystem

/// Options shared by `bulwark sign` and `bulwark verify`: which paths of the model are left out.
struct ModelPathOptions: ParsableArguments {
    @Option(name: .customLong("ignore-paths"), parsing: .singleValue,
            help: ArgumentHelp("A file or directory to leave out (repeatable), relative to the model or the current directory.", valueName: "path"))
    var ignorePaths: [String] = []

    @Flag(help: "Hash the top-level .git, .gitattributes, .github and .gitignore too (left out by default, as model_signing does).")
    var noIgnoreGitPaths = false

    /// `ignorePaths` relative to the model's root: a path that exists from the current directory
    /// inside the model is made relative to it; anything else is taken as relative to the model.
    func relativeIgnorePaths(model: String) -> [String] {
        let root = URL(fileURLWithPath: model).standardizedFileURL.path
        return ignorePaths.map { path in
            let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
            if FileManager.default.fileExists(atPath: path), absolute.hasPrefix(root + "/") { return String(absolute.dropFirst(root.count + 1)) }
            return path
        }
    }

    /// Where the signature is by default: `model.sig` inside a model directory, `FILE.sig` beside a single file.
    static func defaultSignature(of model: String) -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory), isDirectory.boolValue {
            return (model.hasSuffix("/") ? String(model.dropLast()) : model) + "/" + ModelSigning.defaultSignatureName
        }
        return model + ".sig"
    }
}

/// `bulwark sign MODEL --key KEY.pem`: an OpenSSF Model Signing (OMS v1.0) signature.
struct SignCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Sign a model (directory or file) with an ECDSA key: an OpenSSF Model Signing (OMS v1.0) Sigstore bundle.",
        discussion: """
        The signature is what `model_signing sign key` writes, and `model_signing verify key` verifies it.
        It lists the SHA-256 of every file (or of every shard with --shards). The default signature path
        is MODEL/model.sig for a directory (left out of the hash; bulwark's verifying loader reads it
        with --public-key PUB.pem) and MODEL.sig for a file.
        Examples:
          bulwark sign models --key signing-key.pem
          bulwark sign bert --key signing-key.pem --signature bert.sig --ignore-paths bert/README.md
        """)

    @Argument(help: "The model: a directory or a single file.")
    var model: String

    @Option(help: ArgumentHelp("PEM ECDSA private key (P-256, P-384 or P-521; PKCS#8 or SEC1; mode 0600).", valueName: "file"))
    var key: String

    @Option(help: ArgumentHelp("Where to write the signature (default: MODEL/model.sig, or MODEL.sig for a file).", valueName: "file"))
    var signature: String?

    @OptionGroup var paths: ModelPathOptions

    @Flag(help: "Hash files that symbolic links point to (by default a symbolic link is an error).")
    var allowSymlinks = false

    @Flag(help: "Hash every file in shards of --shard-size bytes (OMS shard serialization) instead of whole.")
    var shards = false

    @Option(help: ArgumentHelp("Shard size in bytes, with --shards.", valueName: "bytes"))
    var shardSize: Int?

    func validate() throws {
        if shardSize != nil && !shards { throw ValidationError("--shard-size applies only with --shards") }
        if let shardSize, shardSize < 1 { throw ValidationError("--shard-size must be a positive number of bytes") }
    }

    func run() throws {
        let privateKey = try ECDSAPrivateKey.load(key)
        let signaturePath = signature ?? ModelPathOptions.defaultSignature(of: model)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory) else {
            throw CLIError.unusableInput("\(model) does not exist; give the model's directory or file")
        }
        if !isDirectory.boolValue && (!paths.ignorePaths.isEmpty || paths.noIgnoreGitPaths) {
            throw ValidationError("--ignore-paths and --no-ignore-git-paths apply to a model directory; \(model) is a single file")
        }
        try OutputPath.prepare(signaturePath, for: "--signature", replacing: [.modelSignature], inputs: [model, key], force: false)
        let serialization = ModelSerialization(method: shards ? .shards(size: shardSize ?? ModelSerialization.defaultShardSize) : .files,
                                               allowSymlinks: allowSymlinks, ignorePaths: paths.relativeIgnorePaths(model: model))
        let statement = try ModelSigning.sign(model: model, key: privateKey, serialization: serialization,
                                              ignoreGitPaths: !paths.noIgnoreGitPaths, signaturePath: signaturePath)
        print("signed \(statement.resources.count) \(shards ? "shards" : "files") of \(model) (root sha256:\(statement.rootDigest))")
        print("signature \(signaturePath), \(privateKey.publicKey.curve) key \(privateKey.publicKey.fingerprint)")
    }
}

/// `bulwark verify MODEL --public-key PUB.pem`: checks an OpenSSF Model Signing signature.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a model against an OpenSSF Model Signing (OMS v1.0) signature made with an ECDSA key.",
        discussion: """
        Accepts signatures from bulwark sign and model_signing sign key (any version since 0.3). Fails (exit 1)
        if a signed file changed or is missing, or an unsigned file was added; exit 2 if the signature is
        malformed, names another key, or does not verify.
        Examples:
          bulwark verify models --public-key signing-key.pub.pem
          bulwark verify bert --signature bert.sig --public-key pub.pem --ignore-paths bert/README.md
        """)

    @Argument(help: "The model: a directory or a single file.")
    var model: String

    @Option(help: ArgumentHelp("The signer's PEM ECDSA public key.", valueName: "file"))
    var publicKey: String

    @Option(help: ArgumentHelp("The signature (default: MODEL/model.sig, or MODEL.sig for a file).", valueName: "file"))
    var signature: String?

    @OptionGroup var paths: ModelPathOptions

    @Flag(help: "Files in the model that the signature does not list are not a failure.")
    var ignoreUnsignedFiles = false

    func run() throws {
        let key = try ECDSAPublicKey.load(publicKey)
        let signaturePath = signature ?? ModelPathOptions.defaultSignature(of: model)
        guard FileManager.default.fileExists(atPath: signaturePath) else {
            throw CLIError.unusableInput("the signature \(signaturePath) does not exist; give it with --signature FILE")
        }
        let result = try ModelSigning.verify(model: model, signaturePath: signaturePath, trustedKey: key,
                                             ignorePaths: paths.relativeIgnorePaths(model: model),
                                             ignoreUnsignedFiles: ignoreUnsignedFiles, ignoreGitPaths: !paths.noIgnoreGitPaths)
        for name in result.verified { print("ok        \(displayable(name))") }
        for (name, expected, actual) in result.mismatched { print("MISMATCH  \(displayable(name)): signed \(expected), actual \(actual)") }
        for name in result.missing { print("MISSING   \(displayable(name))") }
        for name in result.unsigned { print("UNSIGNED  \(displayable(name)) (not listed by the signature; --ignore-unsigned-files to accept)") }
        guard result.ok else {
            throw CLIError.checkFailed("\(model) does not match its signature: \(result.mismatched.count) changed, \(result.missing.count) missing, \(result.unsigned.count) unsigned")
        }
        print("signature valid: \(result.verified.count) resources, root sha256:\(result.statement.rootDigest), \(key.curve) key \(key.fingerprint)")
    }
}

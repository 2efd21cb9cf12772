/// Errors from integrity checks, signatures, keys and encryption. Each message names the file and
/// says what to do.
public enum SecurityError: Error, CustomStringConvertible, Equatable {
    case digestMismatch(path: String, expected: String, actual: String, source: String)
    case unverified(path: String)
    case invalidManifest(path: String, problem: String)
    case signatureInvalid(path: String, problem: String)
    case keyFile(path: String, problem: String)
    case missingKey(String)
    case authenticationFailed(path: String)
    case invalidContainer(path: String, problem: String)
    case invalidToken(path: String, problem: String)
    case invalidDigest(String)
    /// An OpenSSF Model Signing signature (or the model it covers) that does not verify or cannot be made.
    case modelSignature(path: String, problem: String)

    public var description: String {
        switch self {
        case .digestMismatch(let path, let expected, let actual, let source):
            return "refusing \(path): its SHA-256 is \(actual), but \(source) expects \(expected). The file was changed, "
                + "corrupted or replaced; restore it, or if the change is intended, update the manifest (bulwark manifest create)"
        case .unverified(let path):
            return "refusing \(path): it has no entry in a manifest beside it and no --expect-sha256 was given. Create one "
                + "(bulwark manifest create DIR), pass --expect-sha256 HEX, or accept the risk with --allow-unverified"
        case .invalidManifest(let path, let problem):
            return "\(path) is not a usable manifest: \(problem)"
        case .signatureInvalid(let path, let problem):
            return "refusing the manifest \(path): \(problem)"
        case .keyFile(let path, let problem):
            return "key file \(path): \(problem)"
        case .missingKey(let problem):
            return problem
        case .authenticationFailed(let path):
            return "\(path) failed authentication: the key is wrong or the file was modified (a tampered byte is never decrypted)"
        case .invalidContainer(let path, let problem):
            return "\(path) is not a valid Bulwark encrypted file: \(problem)"
        case .invalidToken(let path, let problem):
            return "\(path) is not a valid Fernet token: \(problem)"
        case .invalidDigest(let text):
            return "'\(text)' is not a SHA-256 digest (64 hexadecimal characters)"
        case .modelSignature(let path, let problem):
            return "model signature \(path): \(problem)"
        }
    }
}

/// Why the service cannot start, or a key file or configuration cannot be used. Each message names
/// the problem and the fix.
public enum ServeError: Error, CustomStringConvertible, Equatable {
    case keyFilePermissions(path: String, mode: UInt32)
    case keyFileOwner(path: String)
    case invalidKeyFile(path: String, reason: String)
    case unknownKey(String)
    case duplicateKeyName(String)
    case invalidConfiguration(String)
    case insecureHTTPOnPublicAddress(String)
    case auditLogBroken(path: String, reason: String)
    case cannotStart(String)
    /// The inference queue is full or the service is stopping (HTTP 503).
    case overloaded(String)

    public var description: String {
        switch self {
        case .keyFilePermissions(let path, let mode):
            return "\(path) has mode \(String(mode & 0o777, radix: 8)): an API-key file must not be readable or writable by group or others; run chmod 600 \(path)"
        case .keyFileOwner(let path):
            return "\(path) belongs to another user: an API-key file must belong to the user that runs the service"
        case .invalidKeyFile(let path, let reason):
            return "\(path) is not a valid API-key file: \(reason) (create one with bulwark serve keys add)"
        case .unknownKey(let name):
            return "no key is named '\(name)' (bulwark serve keys list shows the names)"
        case .duplicateKeyName(let name):
            return "a key named '\(name)' exists already: choose another name, or revoke it first"
        case .invalidConfiguration(let reason):
            return reason
        case .insecureHTTPOnPublicAddress(let host):
            return "--insecure-http serves keys and inputs in clear text, so it is allowed on a loopback address only (127.0.0.1, ::1, localhost), not on \(host); give --tls-cert and --tls-key instead"
        case .auditLogBroken(let path, let reason):
            return "the audit log \(path) does not verify (\(reason)); the service will not append to a broken chain. Move it and \(path).head away (and keep them as evidence) to start a new one"
        case .cannotStart(let reason), .overloaded(let reason):
            return reason
        }
    }
}

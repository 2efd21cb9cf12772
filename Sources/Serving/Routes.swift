#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import HTTPTypes

/// Every route of the service and who may use it: the one place the role policy lives. The
/// responder matches each request against this table before anything else, and a test walks the
/// whole matrix of routes × roles.
public enum Routes {
    public struct Rule: Sendable {
        public let method: HTTPRequest.Method
        /// The pattern, with `{name}` for a path parameter.
        public let pattern: String
        /// Roles allowed; nil for a public route (no key needed).
        public let roles: Set<Role>?
        /// Whether the key's rate limit applies (the public probes are not limited).
        public var rateLimited: Bool { roles != nil }
    }

    public static let predict = "/v1/models/{name}/predict"
    public static let reload = "/v1/models/{name}/reload"
    public static let models = "/v1/models"
    public static let metrics = "/metrics"
    public static let audit = "/v1/audit"
    public static let health = "/healthz"
    public static let ready = "/readyz"

    public static let policy: [Rule] = [
        Rule(method: .post, pattern: predict, roles: [.predictor, .admin]),
        Rule(method: .get, pattern: models, roles: [.admin, .predictor, .auditor]),
        Rule(method: .post, pattern: reload, roles: [.admin]),
        Rule(method: .get, pattern: metrics, roles: [.auditor, .admin]),
        Rule(method: .get, pattern: audit, roles: [.auditor, .admin]),
        Rule(method: .get, pattern: health, roles: nil),
        Rule(method: .get, pattern: ready, roles: nil),
    ]

    /// What a request's path and method resolve to.
    public enum Match: Equatable {
        case rule(Rule)
        /// The path exists with other methods (405, with these in `Allow`).
        case methodNotAllowed(pattern: String, allowed: [HTTPRequest.Method])
        case notFound
    }

    public static func match(method: HTTPRequest.Method, path: some StringProtocol) -> Match {
        let components = String(path).split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        var allowed: [HTTPRequest.Method] = []
        var pattern: String?
        for rule in policy where matches(rule.pattern, components) {
            // HEAD is answered like GET by HTTP semantics; it is not listed separately.
            if rule.method == method || (method == .head && rule.method == .get) { return .rule(rule) }
            allowed.append(rule.method)
            pattern = rule.pattern
        }
        guard let pattern else { return .notFound }
        return .methodNotAllowed(pattern: pattern, allowed: allowed)
    }

    private static func matches(_ pattern: String, _ components: ArraySlice<Substring>) -> Bool {
        let parts = pattern.split(separator: "/").map { $0 }
        guard parts.count == components.count else { return false }
        for (part, component) in zip(parts, components) {
            if part.hasPrefix("{") {
                guard !component.isEmpty else { return false }
            } else if part != component {
                return false
            }
        }
        return true
    }

    /// "allowed for admin and predictor keys", for 403 messages.
    static func rolesText(for pattern: String) -> String {
        let roles = policy.filter { $0.pattern == pattern }.compactMap(\.roles).flatMap { $0 }
        let names = Role.allCases.filter { roles.contains($0) }.map(\.rawValue)
        return names.isEmpty ? "public" : "allowed for \(names.joined(separator: " and ")) keys"
    }
}

extension Routes.Rule: Equatable {
    public static func == (a: Self, b: Self) -> Bool { a.method == b.method && a.pattern == b.pattern }
}
#endif

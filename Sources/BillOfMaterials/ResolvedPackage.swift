import Foundation

/// A Swift package as SwiftPM resolved it for this build (from Package.resolved, by
/// ResolvedDependenciesPlugin).
public struct ResolvedPackage: Sendable, Equatable {
    public let identity: String
    public let location: String
    public let version: String?
    public let revision: String

    /// The repository's path without scheme and `.git`: `github.com/apple/swift-crypto`.
    var repositoryPath: String {
        var path = location
        for scheme in ["https://", "http://", "ssh://", "git@"] where path.hasPrefix(scheme) { path.removeFirst(scheme.count) }
        if path.hasSuffix(".git") { path.removeLast(4) }
        return path.replacingOccurrences(of: ":", with: "/")
    }

    /// Its package URL (purl-spec's `swift` type): `pkg:swift/github.com/apple/swift-crypto@4.5.2`.
    public var purl: String {
        var components = repositoryPath.split(separator: "/").map(String.init)
        let name = components.popLast() ?? identity
        return "pkg:swift/" + (components + [name]).map(PackageURL.encode).joined(separator: "/") + "@" + PackageURL.encode(version ?? revision)
    }

    public var component: CycloneDX.Component {
        var component = CycloneDX.Component(type: "library", bomRef: purl, name: PackageURL.lastComponent(of: repositoryPath) ?? identity,
                                            version: version ?? revision)
        component.purl = purl
        if location.hasPrefix("http") { component.externalReferences = [.init(type: "vcs", url: location)] }
        component.properties = [.init("bulwark:swiftpm:revision", revision)]
        return component
    }
}

/// Package URL (purl) text rules.
enum PackageURL {
    /// Percent-encodes everything but letters, digits and `.-_~:` (so `+` becomes `%2B`).
    static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: ".-_~:")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    static func lastComponent(of path: String) -> String? {
        path.split(separator: "/").last.map(String.init)
    }
}

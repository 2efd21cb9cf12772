import Foundation
import TensorCore

/// Bulwark's own software bill of materials: the application, the Swift packages it was built
/// with (exact resolved versions), and the system libraries it links.
public enum SoftwareBOM {
    public static let applicationReference = "bulwark@\(BulwarkVersion.current)"

    /// The application as a component (`withReference: false` for `metadata.tools`, where CycloneDX
    /// wants no second use of the same bom-ref).
    public static func application(withReference: Bool = true) -> CycloneDX.Component {
        var component = CycloneDX.Component(type: "application", bomRef: withReference ? applicationReference : nil, name: "bulwark",
                                            version: BulwarkVersion.current,
                                            description: "Adversarial-robustness testbed: train, attack, evaluate and gate dense networks")
        component.properties = [.init("bulwark:swiftpm:resolved", ResolvedPackage.resolved.isEmpty
            ? "unknown: built without a Package.resolved"
            : "the Swift packages SwiftPM resolved for this build; a build without the Serve trait does not link the HTTPS service's (Hummingbird, SwiftNIO, AsyncHTTPClient and theirs)")]
        return component
    }

    /// The libraries: resolved Swift packages, then the linked C libraries.
    public static func libraries(system: [SystemLibraries.Library] = SystemLibraries.linked()) -> [CycloneDX.Component] {
        ResolvedPackage.resolved.map(\.component) + system.map { library in
            let package = library.debianPackage
            var component = CycloneDX.Component(type: "library", bomRef: package?.purl ?? "system:\(library.name)@\(library.version)",
                                                name: package?.name ?? library.name, version: package?.version ?? library.version)
            component.purl = package?.purl
            component.description = library.name
            component.properties = [.init("bulwark:runtime_version", library.version), .init("bulwark:runtime_version_source", library.versionSource)]
                + (library.path.map { [.init("bulwark:loaded_from", $0)] } ?? [])
            return component
        }
    }

    /// `bulwark sbom --self`: Bulwark as the subject.
    public static func document() -> CycloneDX.Document {
        let libraries = libraries()
        return CycloneDX.Document(
            metadata: CycloneDX.Metadata(tool: application(withReference: false), component: application()),
            components: libraries,
            dependencies: [CycloneDX.Dependency(ref: applicationReference, dependsOn: libraries.compactMap(\.bomRef))])
    }
}

import Foundation
import PackagePlugin

/// Build-tool plugin: turns the package's Package.resolved (the exact versions SwiftPM resolved for
/// this build) into Swift source, so `bulwark sbom` can list the Swift packages it was built with.
/// Without a Package.resolved (Bulwark built as another package's dependency), the list is empty
/// and the bill of materials says so.
@main
struct ResolvedDependenciesPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let resolved = context.package.directoryURL.appending(path: "Package.resolved")
        let output = context.pluginWorkDirectoryURL.appending(path: "ResolvedDependencies.swift")
        let exists = FileManager.default.fileExists(atPath: resolved.path)
        return [.buildCommand(displayName: "Listing the resolved Swift packages for the bill of materials",
                              executable: try context.tool(named: "ResolvedDependenciesTool").url,
                              arguments: [resolved.path, output.path],
                              inputFiles: exists ? [resolved] : [],
                              outputFiles: [output])]
    }
}

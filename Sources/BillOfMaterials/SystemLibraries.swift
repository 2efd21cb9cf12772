import CBLAS
import CZlib
import Foundation

/// The C libraries Bulwark links (OpenBLAS, LAPACKE, zlib), with the versions they report at run
/// time and, on Debian-family systems, the package each loaded file belongs to (from
/// /proc/self/maps and dpkg-query).
public enum SystemLibraries {
    public struct Library: Sendable {
        public var name: String
        public var version: String
        /// Where the version comes from.
        public var versionSource: String
        public var debianPackage: DebianPackage?
        public var path: String?
    }

    public struct DebianPackage: Sendable, Equatable {
        public var name: String
        public var version: String
        public var architecture: String
        public var distribution: String?
        /// The purl namespace: the distribution's vendor (`debian`, `ubuntu`), from /etc/os-release's ID.
        public var vendor: String = "debian"

        public var purl: String {
            var purl = "pkg:deb/\(PackageURL.encode(vendor))/\(PackageURL.encode(name))@\(PackageURL.encode(version))?arch=\(architecture)"
            if let distribution { purl += "&distro=\(distribution)" }
            return purl
        }
    }

    /// OpenBLAS's version from `openblas_get_config()` ("OpenBLAS 0.3.21 DYNAMIC_ARCH …").
    static var openBLASVersion: String {
        guard let config = openblas_get_config() else { return "unknown" }
        let words = String(cString: config).split(separator: " ")
        return words.count > 1 ? String(words[1]) : "unknown"
    }

    /// LAPACK's version from `LAPACKE_ilaver`.
    static var lapackVersion: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        LAPACKE_ilaver(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }

    static var zlibVersion: String { String(cString: CZlib.zlibVersion()) }

    /// The three libraries, each with its Debian package where one can be found.
    public static func linked() -> [Library] {
        // /proc files report a size of 0, so read to the end rather than by size.
        let maps = FileHandle(forReadingAtPath: "/proc/self/maps").map { String(decoding: $0.readDataToEndOfFile(), as: UTF8.self) } ?? ""
        let loaded = Set(maps.split(separator: "\n").compactMap { line -> String? in
            guard let slash = line.firstIndex(of: "/") else { return nil }
            return String(line[slash...])
        })
        func path(containing fragment: String) -> String? { loaded.sorted().first { PackageURL.lastComponent(of: $0)?.hasPrefix(fragment) == true } }
        let libraries = [
            Library(name: "OpenBLAS", version: openBLASVersion, versionSource: "openblas_get_config()", path: path(containing: "libopenblas")),
            Library(name: "LAPACK (LAPACKE)", version: lapackVersion, versionSource: "LAPACKE_ilaver()", path: path(containing: "liblapacke")),
            Library(name: "zlib", version: zlibVersion, versionSource: "zlibVersion()", path: path(containing: "libz.so")),
        ]
        let distribution = osRelease("VERSION_CODENAME"), vendor = osRelease("ID")?.lowercased() ?? "debian"
        return libraries.map { library in
            var library = library
            if let path = library.path { library.debianPackage = debianPackage(owning: path, distribution: distribution) }
            library.debianPackage?.vendor = vendor
            return library
        }
    }

    /// A field of /etc/os-release (`ID`, `VERSION_CODENAME`).
    static func osRelease(_ field: String) -> String? {
        guard let text = FileHandle(forReadingAtPath: "/etc/os-release").map({ String(decoding: $0.readDataToEndOfFile(), as: UTF8.self) }) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(field + "=") {
            let value = line.dropFirst(field.count + 1).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            return value.isEmpty ? nil : value
        }
        return nil
    }

    /// The Debian package that installed `path`, via `dpkg-query -S` and `-W` (nil without dpkg).
    static func debianPackage(owning path: String, distribution: String?) -> DebianPackage? {
        // With merged /usr, a library loaded from /usr/lib may be registered under /lib, and the other way round.
        let aliases = [path] + (path.hasPrefix("/usr/lib/") ? [String(path.dropFirst(4))] : path.hasPrefix("/lib/") ? ["/usr" + path] : [])
        guard let owner = aliases.lazy.compactMap({ run(["dpkg-query", "-S", $0]) }).first, let colon = owner.firstIndex(of: ":") else { return nil }
        let qualified = String(owner[..<colon])  // "libopenblas0-pthread:amd64"
        guard let fields = run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Architecture}", qualified]) else { return nil }
        let parts = fields.split(separator: "\t").map(String.init)
        guard parts.count == 3 else { return nil }
        return DebianPackage(name: parts[0], version: parts[1], architecture: parts[2], distribution: distribution)
    }

    static func run(_ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The directory and the name of a path, by plain string splitting. Foundation's `NSString` path
/// methods trap on some one-character paths on Linux (`bulwark keys new-data-key --out k` crashed
/// in `deletingLastPathComponent`), so Bulwark does not use them.
public enum PathText {
    /// The directory part: "." for a bare name, "/" for a name at the root. Trailing slashes of
    /// `path` are ignored.
    public static func directory(of path: String) -> String {
        let trimmed = trimmingTrailingSlashes(path)
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        let directory = String(trimmed[..<slash])
        return directory.isEmpty ? "/" : directory
    }

    /// The last component (the whole path if it has no slash).
    public static func name(of path: String) -> String {
        let trimmed = trimmingTrailingSlashes(path)
        guard let slash = trimmed.lastIndex(of: "/") else { return trimmed }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    private static func trimmingTrailingSlashes(_ path: String) -> String {
        var result = Substring(path)
        while result.count > 1, result.hasSuffix("/") { result = result.dropLast() }
        return String(result)
    }
}

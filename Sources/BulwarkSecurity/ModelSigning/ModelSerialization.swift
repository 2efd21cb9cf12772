import Crypto
import Foundation
import Glibc
import _FileSystem

/// How OpenSSF Model Signing (OMS v1.0, `ossf/model-signing-spec` §6) turns a model, a file or a
/// directory, into a list of named digests: one per file (`files`) or one per fixed-size range of
/// each file (`shards`), hashed with SHA-256.
///
/// Names are POSIX paths relative to the model's root; a model that is a single file has the one
/// resource `.`, as the reference tool `model_signing` writes it. Files are listed in the
/// reference tool's order (path component by component), the order the root digest is computed in.
public struct ModelSerialization: Equatable, Sendable {
    public enum Method: Equatable, Sendable {
        case files
        /// Ranges `[0, size)`, `[size, 2·size)`, … of every non-empty file, named `path:start:end`.
        case shards(size: Int)
    }

    /// The reference tool's shard size.
    public static let defaultShardSize = 1_000_000_000
    /// The paths the reference tool ignores at the top of a model by default.
    public static let gitPaths = [".git", ".gitattributes", ".github", ".gitignore"]

    public var method: Method
    /// If false (the default), a symbolic link anywhere in the model is an error; if true, a link to
    /// a file is hashed through to its target and named by the link's own path.
    public var allowSymlinks: Bool
    /// Paths relative to the model's root left out, with everything below them.
    public var ignorePaths: [String]

    public init(method: Method = .files, allowSymlinks: Bool = false, ignorePaths: [String] = []) {
        self.method = method
        self.allowSymlinks = allowSymlinks
        self.ignorePaths = ignorePaths
    }

    /// One named digest.
    public struct Resource: Equatable, Sendable {
        public var name: String
        public var algorithm: String
        /// Lowercase hex.
        public var digest: String

        public init(name: String, algorithm: String = "sha256", digest: String) {
            self.name = name
            self.algorithm = algorithm
            self.digest = digest
        }
    }

    /// The subject digest of a list of resources: SHA-256 over their raw digests, concatenated in
    /// the listed order (OMS §6.5.1).
    public static func rootDigest(of resources: [Resource]) -> String? {
        var hasher = SHA256()
        for resource in resources {
            guard let raw = hexBytes(resource.digest) else { return nil }
            hasher.update(data: raw)
        }
        return FileDigest.hex(hasher.finalize())
    }

    // MARK: - Serializing a model

    /// The resources of the model at `modelPath` (a directory or a single file).
    /// - Parameter alsoIgnore: absolute or relative paths left out besides `ignorePaths` (the
    ///   signature file, when it lies inside the model); paths outside the model are dropped.
    /// - Throws: `SecurityError.modelSignature` for a symlink that is not allowed, a file that is
    ///   not a regular file, or an unreadable path.
    public func resources(of modelPath: String, alsoIgnore: [String] = [], ignoreGitPaths: Bool = true) throws -> [Resource] {
        var info = stat()
        guard lstat(modelPath, &info) == 0 else {
            throw SecurityError.modelSignature(path: modelPath, problem: "the model cannot be read (\(String(cString: strerror(errno))))")
        }
        if (info.st_mode & S_IFMT) == S_IFLNK {
            guard allowSymlinks else {
                throw SecurityError.modelSignature(path: modelPath, problem: "the model is a symbolic link; give its target, or pass --allow-symlinks")
            }
            guard stat(modelPath, &info) == 0 else {
                throw SecurityError.modelSignature(path: modelPath, problem: "the model is a dangling symbolic link")
            }
        }
        if (info.st_mode & S_IFMT) == S_IFREG {
            return try digests(ofFile: modelPath, named: ".")
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw SecurityError.modelSignature(path: modelPath, problem: "the model is neither a file nor a directory")
        }
        let root = Self.absolute(modelPath)
        // Paths are compared as bytes: Swift's String equality would treat canonically equivalent
        // names (NFC and NFD "café", "K" and KELVIN SIGN) as one, and the file system does not.
        var ignored = Set(ignorePaths.map { ByteName(Self.normalised($0)) })
        if ignoreGitPaths { ignored.formUnion(Self.gitPaths.map(ByteName.init)) }
        for path in alsoIgnore {
            let absolute = Self.absolute(path)
            if absolute.hasPrefix(root + "/") { ignored.insert(ByteName(String(absolute.dropFirst(root.count + 1)))) }
        }
        var files: [[String]] = []
        try walk(root: modelPath, relative: [], ignored: ignored, into: &files)
        files.sort { $0.lexicographicallyPrecedes($1) { Array($0.unicodeScalars.map(\.value)).lexicographicallyPrecedes($1.unicodeScalars.map(\.value)) } }
        var resources: [Resource] = []
        for components in files {
            let name = components.joined(separator: "/")
            resources += try digests(ofFile: modelPath + "/" + name, named: name)
        }
        return resources
    }

    private func walk(root: String, relative: [String], ignored: Set<ByteName>, into files: inout [[String]]) throws {
        let directory = ([root] + relative).joined(separator: "/")
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw SecurityError.modelSignature(path: directory, problem: "the directory cannot be read (\(error.localizedDescription))")
        }
        for name in names {
            let components = relative + [name]
            let relativeName = components.joined(separator: "/")
            if ignored.contains(where: { $0.isEqualOrAncestor(of: ByteName(relativeName)) }) { continue }
            let path = directory + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else {
                throw SecurityError.modelSignature(path: path, problem: "it cannot be read (\(String(cString: strerror(errno))))")
            }
            switch info.st_mode & S_IFMT {
            case S_IFDIR:
                try walk(root: root, relative: components, ignored: ignored, into: &files)
            case S_IFREG:
                files.append(components)
            case S_IFLNK:
                guard allowSymlinks else {
                    throw SecurityError.modelSignature(path: path, problem: "it is a symbolic link, which the signature does not allow; "
                                                       + "remove it, ignore it (--ignore-paths \(relativeName)), or pass --allow-symlinks")
                }
                guard stat(path, &info) == 0 else {
                    throw SecurityError.modelSignature(path: path, problem: "it is a dangling symbolic link; remove it or ignore it (--ignore-paths \(relativeName))")
                }
                // A link to a file is hashed through, as by the reference tool. Anything else is refused
                // (the reference tool skips links to directories; neither hashes what is behind one).
                guard (info.st_mode & S_IFMT) == S_IFREG else {
                    throw SecurityError.modelSignature(path: path, problem: "it is a symbolic link to \((info.st_mode & S_IFMT) == S_IFDIR ? "a directory" : "something other than a file"), "
                                                       + "which a signature cannot cover; remove it or ignore it (--ignore-paths \(relativeName))")
                }
                files.append(components)
            default:
                throw SecurityError.modelSignature(path: path, problem: "it is not a regular file (a FIFO, socket or device); remove it or ignore it (--ignore-paths \(relativeName))")
            }
        }
    }

    /// The resources of one file: its digest, or its shards' digests.
    func digests(ofFile path: String, named name: String) throws -> [Resource] {
        switch method {
        case .files:
            return [Resource(name: name, digest: try FileDigest.sha256(path: path))]
        case .shards(let size):
            var hasher = ShardHasher(name: name, size: size)
            try FileReader.forEachChunk(of: path) { hasher.update($0) }
            return hasher.finish()
        }
    }

    /// Digests of consecutive `size`-byte ranges of a stream of bytes, named `name:start:end`.
    public struct ShardHasher {
        let name: String
        let size: Int
        var hasher = SHA256()
        var start = 0, offset = 0
        var resources: [Resource] = []

        public init(name: String, size: Int) {
            precondition(size > 0, "a shard size is positive")
            self.name = name
            self.size = size
        }

        public mutating func update(_ chunk: UnsafeRawBufferPointer) {
            var rest = chunk[...]
            while !rest.isEmpty {
                let take = min(rest.count, start + size - offset)
                hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: rest.prefix(take)))
                offset += take
                rest = rest.dropFirst(take)
                if offset - start == size { close() }
            }
        }

        private mutating func close() {
            resources.append(Resource(name: "\(name):\(start):\(offset)", digest: FileDigest.hex(hasher.finalize())))
            hasher = SHA256()
            start = offset
        }

        /// The shards' resources (none for an empty file).
        public mutating func finish() -> [Resource] {
            if offset > start { close() }
            return resources
        }
    }

    // MARK: - Helpers

    /// A path compared by its UTF-8 bytes, as the file system compares names.
    struct ByteName: Hashable {
        let bytes: [UInt8]
        init(_ text: String) { bytes = Array(text.utf8) }

        /// True if `other` is this path or lies below it.
        func isEqualOrAncestor(of other: ByteName) -> Bool {
            other.bytes == bytes || (other.bytes.count > bytes.count && other.bytes.starts(with: bytes) && other.bytes[bytes.count] == UInt8(ascii: "/"))
        }
    }

    static func normalised(_ path: String) -> String {
        var text = path
        while text.hasPrefix("./") { text.removeFirst(2) }
        while text.count > 1 && text.hasSuffix("/") { text.removeLast() }
        return text
    }

    static func absolute(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        guard text.count.isMultiple(of: 2), text.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.count / 2)
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            guard let byte = UInt8(text[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }
}

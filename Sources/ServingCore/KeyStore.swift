import Crypto
import Foundation
import Glibc
import NeuralNet
import BulwarkSecurity
import _FileSystem

/// One entry of the API-key file: who a key belongs to, what it may do, how fast, and what it
/// sees. The secret itself is never stored, only its SHA-256.
public struct KeyEntry: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var role: Role
    public var sha256: String
    /// Requests per second the key's token bucket refills with.
    public var rate: Double
    /// The bucket's size: how many requests may come at once after a quiet spell.
    public var burst: Int
    public var output: OutputPolicy
    public var created: String
    public var revoked: Bool

    public init(id: String, name: String, role: Role, sha256: String, rate: Double, burst: Int, output: OutputPolicy,
                created: String, revoked: Bool = false) {
        (self.id, self.name, self.role, self.sha256, self.rate, self.burst, self.output, self.created, self.revoked) =
            (id, name, role, sha256, rate, burst, output, created, revoked)
    }
}

/// The API-key file (`--api-keys`): JSON, mode 0600, owned by the service's user, changed only by
/// `bulwark serve keys` (under a lock, atomically).
public struct KeyFile: Codable, Sendable, Equatable {
    public static let currentVersion = 1
    public var version: Int
    public var keys: [KeyEntry]

    public init(keys: [KeyEntry] = []) {
        version = Self.currentVersion
        self.keys = keys
    }

    /// Default limits of a new key: a key without a limit is a scraping tool.
    public static let defaultRate = 20.0
    public static let defaultBurst = 40
    /// Requests per second a key may be given (a slower key waits at most 1,000 s for a token).
    public static let rateRange = 0.001...1_000_000.0
    public static let burstRange = 1...1_000_000

    /// Largest key file read (a million keys is far beyond any real deployment).
    static let sizeLimit = 64 << 20

    /// Reads and checks the file: a regular file, mode 0600 or stricter, owned by this user.
    /// - Throws: `ServeError` naming the problem and the fix, or `FileSystemError`.
    public static func read(_ path: String) throws -> KeyFile {
        let fd = try FileReader.openRegular(path)
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw ServeError.invalidKeyFile(path: path, reason: String(cString: strerror(errno))) }
        guard info.st_mode & 0o077 == 0 else { throw ServeError.keyFilePermissions(path: path, mode: UInt32(info.st_mode)) }
        guard info.st_uid == geteuid() else { throw ServeError.keyFileOwner(path: path) }
        guard info.st_size <= sizeLimit else { throw ServeError.invalidKeyFile(path: path, reason: "larger than \(sizeLimit >> 20) MiB") }
        // Read through the descriptor whose mode and owner were checked, not the path again.
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size) + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes[count...].withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw ServeError.invalidKeyFile(path: path, reason: String(cString: strerror(errno))) }
            if n == 0 { break }
            count += n
        }
        guard count <= Int(info.st_size) else { throw ServeError.invalidKeyFile(path: path, reason: "it grew while being read; try again") }
        return try decode(Array(bytes.prefix(count)), path: path)
    }

    /// Parses and validates a key file's bytes (strict JSON: no unknown fields, no repeated keys).
    public static func decode(_ bytes: [UInt8], path: String) throws -> KeyFile {
        let file: KeyFile
        do {
            file = try StrictJSON.decodeRejectingUnknownFields(KeyFile.self, from: bytes)
        } catch {
            throw ServeError.invalidKeyFile(path: path, reason: decodingErrorText(error))
        }
        try file.validate(path: path)
        return file
    }

    func validate(path: String) throws {
        guard version == Self.currentVersion else {
            throw ServeError.invalidKeyFile(path: path, reason: "version \(version) is not \(Self.currentVersion) (written by another Bulwark version)")
        }
        var ids = Set<String>(), names = Set<String>()
        for (index, key) in keys.enumerated() {
            let at = "keys[\(index)]"
            guard Base64.urlSafeDecode(key.id)?.count == 6, key.id.utf8.count == 8 else { throw ServeError.invalidKeyFile(path: path, reason: "\(at).id is not a key id") }
            guard key.sha256.utf8.count == 64, Manifest.isHexDigest(key.sha256) else { throw ServeError.invalidKeyFile(path: path, reason: "\(at).sha256 is not a hex SHA-256") }
            guard Self.rateRange.contains(key.rate), Self.burstRange.contains(key.burst) else {
                throw ServeError.invalidKeyFile(path: path, reason: "\(at) needs a rate from \(Self.rateRange.lowerBound) to \(Int(Self.rateRange.upperBound)) per second and a burst from 1 to \(Self.burstRange.upperBound)")
            }
            guard ids.insert(key.id).inserted else { throw ServeError.invalidKeyFile(path: path, reason: "\(at).id is repeated") }
            guard names.insert(key.name).inserted else { throw ServeError.invalidKeyFile(path: path, reason: "\(at).name '\(displayable(key.name))' is repeated") }
        }
    }

    /// Reads, changes and rewrites the file under an exclusive lock (a `.lock` file beside it), so
    /// two `keys` commands never lose each other's change. A missing file starts empty.
    public static func modify<Result>(_ path: String, _ change: (inout KeyFile) throws -> Result) throws -> Result {
        let lockPath = PathText.directory(of: path) + "/." + PathText.name(of: path) + ".lock"
        let lockFD = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw FileSystemError.cannotWrite(path: lockPath, reason: String(cString: strerror(errno))) }
        defer { close(lockFD) }
        guard flock(lockFD, LOCK_EX) == 0 else { throw FileSystemError.cannotWrite(path: lockPath, reason: String(cString: strerror(errno))) }
        defer { flock(lockFD, LOCK_UN) }
        var file = access(path, F_OK) == 0 ? try read(path) : KeyFile()
        let result = try change(&file)
        try file.validate(path: path)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(Array(try encoder.encode(file)) + [0x0A], to: path, permissions: 0o600)
        return result
    }
}

/// The keys the running service accepts, looked up by id, with secrets compared in constant time.
public struct KeyTable: Sendable {
    private let entries: [String: (entry: KeyEntry, digest: [UInt8])]

    public init(_ file: KeyFile) {
        var entries: [String: (entry: KeyEntry, digest: [UInt8])] = [:]
        for key in file.keys where !key.revoked {
            entries[key.id] = (key, Self.bytes(ofHex: key.sha256))
        }
        self.entries = entries
    }

    public var count: Int { entries.count }

    /// The entry of a presented key, or nil if it is unknown, revoked or wrong. The secret's digest
    /// is compared in time independent of where it differs, and an unknown id costs a comparison
    /// too, so timing tells an attacker nothing about ids or secrets.
    public func authenticate(_ key: APIKey) -> KeyEntry? {
        let presented = Array(SHA256.hash(data: Data(key.secret.utf8)))
        guard let found = entries[key.id] else {
            _ = Self.constantTimeEqual(presented, Self.dummyDigest)
            return nil
        }
        return Self.constantTimeEqual(presented, found.digest) ? found.entry : nil
    }

    private static let dummyDigest = [UInt8](repeating: 0xA5, count: 32)

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    private static func bytes(ofHex hex: String) -> [UInt8] {
        var result: [UInt8] = []
        var iterator = hex.utf8.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            result.append(UInt8(hexDigit(high) << 4 | hexDigit(low)))
        }
        return result
    }

    private static func hexDigit(_ c: UInt8) -> UInt8 {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        default: 0
        }
    }
}

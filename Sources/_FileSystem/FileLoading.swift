/// Reads whole files for parsers. Implementations may check integrity or decrypt on the way, so
/// parsers only ever see bytes that passed those checks (`BulwarkSecurity.VerifyingFileLoader`).
public protocol FileLoading {
    /// The contents of `path`, refusing files larger than `limit` bytes.
    func load(_ path: String, limit: Int) throws -> [UInt8]
}

/// Reads files as they are, without checks.
public struct PlainFileLoader: FileLoading {
    public init() {}

    public func load(_ path: String, limit: Int) throws -> [UInt8] {
        try FileReader.readAll(path, limit: limit)
    }
}

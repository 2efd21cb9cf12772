import Crypto
import Foundation
import _FileSystem

/// Envelope encryption (format 2 of Bulwark's encrypted files): the data is encrypted once under a
/// random data key, and the header holds that key wrapped for each recipient (X-Wing public keys)
/// and key-encryption key (a file, an environment variable, or a KMS behind a command), as age and
/// cloud KMS envelope encryption do. Rotating a key-encryption key, or changing who may open a
/// file, rewrites the header only: the encrypted data is copied unchanged.
///
/// ```
/// fixed header (15 bytes)  "BWENC" | 0x02 | 0x01 AES-256-GCM | log2(chunk size) | nonce prefix (7 bytes)
/// key block length (u32, big-endian), key block (`KeyStanza.encode`: count, then stanzas)
/// header MAC (32 bytes)    HMAC-SHA256 under HKDF(data key, "… header mac") of everything before it
/// chunks                   as in format 1 (`EncryptedContainer`), under HKDF(data key, salt = fixed header, "… payload"),
///                          authenticating the fixed header only, so the key block can change
/// ```
/// The header MAC binds the key block to the data key (like age's header MAC): a stanza added,
/// dropped or edited by someone without the key is detected before any chunk is decrypted.
public enum EnvelopeEncryption {
    public static let maximumStanzas = 64
    public static let maximumKeyBlock = 1 << 20
    static let macSize = 32

    /// True if `bytes` starts a format 2 file.
    public static func isEnvelope(_ bytes: some Collection<UInt8>) -> Bool {
        EncryptedContainer.isEncrypted(bytes) && bytes.count > 5 && Array(bytes.prefix(6))[5] == 2
    }

    /// The parsed header of a format 2 file.
    struct Prefix {
        let header: EncryptedContainer.Header
        let keyBlock: [UInt8]
        let stanzas: [KeyStanza]
        let mac: [UInt8]
        /// Bytes from the start of the file to the first chunk.
        var size: Int { EncryptedContainer.headerSize + 4 + keyBlock.count + EnvelopeEncryption.macSize }
    }

    static func readPrefix(_ path: String) throws -> Prefix {
        let head = try FileReader.readPrefix(path, count: EncryptedContainer.headerSize + 4)
        let length = head.count == EncryptedContainer.headerSize + 4 ? KeyStanza.bigEndian(head.suffix(4)) : 0
        guard length <= maximumKeyBlock else {
            throw SecurityError.invalidContainer(path: path, problem: "its key block claims \(length) bytes (at most \(maximumKeyBlock))")
        }
        return try parsePrefix(try FileReader.readPrefix(path, count: EncryptedContainer.headerSize + 4 + length + macSize), source: path)
    }

    static func parsePrefix(_ bytes: [UInt8], source: String) throws -> Prefix {
        func fail(_ problem: String) -> SecurityError { .invalidContainer(path: source, problem: problem) }
        let header = try EncryptedContainer.Header(parsing: bytes, source: source)
        guard header.version == 2 else { throw fail("it is format \(header.version), not an envelope (format 2)") }
        let start = EncryptedContainer.headerSize
        guard bytes.count >= start + 4 else { throw fail("it is truncated before its key block") }
        let length = KeyStanza.bigEndian(bytes[start..<(start + 4)])
        guard length <= maximumKeyBlock else { throw fail("its key block claims \(length) bytes (at most \(maximumKeyBlock))") }
        guard bytes.count >= start + 4 + length + macSize else { throw fail("it is truncated inside its key block") }
        let keyBlock = Array(bytes[(start + 4)..<(start + 4 + length)])
        let stanzas = try KeyStanza.decode(keyBlock[...], fail: fail)
        return Prefix(header: header, keyBlock: keyBlock, stanzas: stanzas, mac: Array(bytes[(start + 4 + length)..<(start + 4 + length + macSize)]))
    }

    // MARK: - Keys

    static func payloadKey(_ dataKey: [UInt8], header: EncryptedContainer.Header) throws -> DataKey {
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: dataKey), salt: header.bytes,
                                         info: Array("bulwark envelope v2 payload".utf8), outputByteCount: 32)
        return try DataKey(bytes: key.withUnsafeBytes { Array($0) })
    }

    static func headerMAC(_ dataKey: [UInt8], header: EncryptedContainer.Header, keyBlock: [UInt8]) -> [UInt8] {
        let key = macKey(dataKey, header: header)
        return Array(HMAC<SHA256>.authenticationCode(for: prelude(header: header, keyBlock: keyBlock, mac: []), using: key))
    }

    static func macKey(_ dataKey: [UInt8], header: EncryptedContainer.Header) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: dataKey), salt: header.bytes,
                               info: Array("bulwark envelope v2 header mac".utf8), outputByteCount: 32)
    }

    /// Compares the header MAC in constant time.
    static func isValidMAC(_ dataKey: [UInt8], prefix: Prefix) -> Bool {
        let key = macKey(dataKey, header: prefix.header)
        return HMAC<SHA256>.isValidAuthenticationCode(prefix.mac, authenticating: prelude(header: prefix.header, keyBlock: prefix.keyBlock, mac: []), using: key)
    }

    /// Length, key block and MAC: what follows the fixed header.
    static func prelude(header: EncryptedContainer.Header, keyBlock: [UInt8], mac: [UInt8]) -> [UInt8] {
        header.bytes + withUnsafeBytes(of: UInt32(keyBlock.count).bigEndian, Array.init) + keyBlock + mac
    }

    /// Wraps `dataKey` for every wrapper: the key block and its MAC.
    static func wrapAll(_ dataKey: [UInt8], for wrappers: [KeyWrapper], header: EncryptedContainer.Header) throws -> [UInt8] {
        guard !wrappers.isEmpty else { throw SecurityError.missingKey("give at least one --recipient, --kek-file, --kek-env or --kek-command") }
        guard wrappers.count <= maximumStanzas else { throw SecurityError.missingKey("at most \(maximumStanzas) recipients and key-encryption keys per file") }
        let keyBlock = KeyStanza.encode(try wrappers.map { try KeyStanza.wrap(dataKey, for: $0, fixedHeader: header.bytes) })
        let mac = headerMAC(dataKey, header: header, keyBlock: keyBlock)
        return Array(prelude(header: header, keyBlock: keyBlock, mac: mac).dropFirst(EncryptedContainer.headerSize))
    }

    /// The data key, from the first stanza an unwrapper opens whose key also checks the header MAC.
    /// - Throws: `SecurityError.missingKey` listing who the file opens for, if none does;
    ///   `.authenticationFailed` if a stanza opens but the header was modified.
    static func openDataKey(_ prefix: Prefix, unwrappers: [KeyUnwrapper], source: String) throws -> [UInt8] {
        var opened = false
        var commandError: (any Error)?
        for unwrapper in unwrappers {
            for stanza in prefix.stanzas {
                let candidate: [UInt8]?
                do {
                    candidate = try stanza.unwrap(with: unwrapper, fixedHeader: prefix.header.bytes)
                } catch {
                    // A KMS that refuses this stanza may not be the one for it: try the others first.
                    commandError = commandError ?? error
                    continue
                }
                guard let candidate else { continue }
                opened = true
                if candidate.count == 32, isValidMAC(candidate, prefix: prefix) { return candidate }
            }
        }
        if opened { throw SecurityError.authenticationFailed(path: source) }
        if let commandError { throw commandError }
        let holders = prefix.stanzas.map { stanza in
            switch stanza.kind {
            case .recipient: "recipient \(displayable(stanza.label, limit: 20))"
            case .keyEncryptionKey: "key-encryption key \(displayable(stanza.label, limit: 20))"
            case .command: "a key-encryption command"
            }
        }
        let given = unwrappers.isEmpty ? "no key was given" : "given: " + unwrappers.map(\.summary).joined(separator: ", ")
        throw SecurityError.missingKey("\(source) is encrypted for \(holders.joined(separator: ", ")); \(given). "
                                       + "Give a matching --identity, --kek-file, --kek-env or --kek-command")
    }

    // MARK: - Files

    /// Encrypts `input` into `output` (atomically) for every wrapper.
    public static func encryptFile(_ input: String, to output: String, for wrappers: [KeyWrapper],
                                   chunkSize: Int = EncryptedContainer.defaultChunkSize) throws {
        let header = EncryptedContainer.Header(chunkSize: chunkSize, version: 2)
        let dataKey = DataKey.generate().bytes
        // Wrapping (which may call a KMS) happens before the output is opened.
        let prelude = try wrapAll(dataKey, for: wrappers, header: header)
        try EncryptedContainer.encryptFile(input, to: output, key: try payloadKey(dataKey, header: header), header: header, prelude: prelude)
    }

    /// Decrypts `input` into `output` (mode 0600); the output appears only if every chunk authenticates.
    public static func decryptFile(_ input: String, to output: String, unwrappers: [KeyUnwrapper]) throws {
        let prefix = try readPrefix(input)
        let key = try payloadKey(try openDataKey(prefix, unwrappers: unwrappers, source: input), header: prefix.header)
        try AtomicFile.write(to: output, permissions: 0o600) { sink in
            var stream = try EncryptedContainer.DecryptionStream(key: key, source: input, version: 2)
            try stream.feed(prefix.header.bytes[...]) { try sink.write($0) }
            var skip = prefix.size
            try FileReader.forEachChunk(of: input) { raw in
                let drop = min(skip, raw.count)
                skip -= drop
                try stream.feed(ArraySlice(raw[drop...])) { try sink.write($0) }
            }
            try stream.finish { try sink.write($0) }
        }
    }

    /// Decrypts a whole format 2 file held in memory.
    public static func decrypt(_ bytes: [UInt8], unwrappers: [KeyUnwrapper], source: String) throws -> [UInt8] {
        let prefix = try parsePrefix(bytes, source: source)
        let key = try payloadKey(try openDataKey(prefix, unwrappers: unwrappers, source: source), header: prefix.header)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var stream = try EncryptedContainer.DecryptionStream(key: key, source: source, version: 2)
        try stream.feed(prefix.header.bytes[...]) { output.append(contentsOf: $0) }
        try stream.feed(bytes[prefix.size...]) { output.append(contentsOf: $0) }
        try stream.finish { output.append(contentsOf: $0) }
        return output
    }

    /// Re-wraps the data key of `path` for `newWrappers`, in place and atomically, after opening it
    /// with `unwrappers`: the encrypted chunks are copied byte for byte, never decrypted.
    public static func rewrapFile(_ path: String, unwrappers: [KeyUnwrapper], for newWrappers: [KeyWrapper]) throws {
        let prefix = try readPrefix(path)
        let dataKey = try openDataKey(prefix, unwrappers: unwrappers, source: path)
        let prelude = try wrapAll(dataKey, for: newWrappers, header: prefix.header)
        try AtomicFile.write(to: path, permissions: AtomicFile.currentPermissions(of: path)) { sink in
            try sink.write(prefix.header.bytes)
            try sink.write(prelude)
            var skip = prefix.size
            try FileReader.forEachChunk(of: path) { raw in
                let drop = min(skip, raw.count)
                skip -= drop
                if drop < raw.count { try sink.write(Array(raw[drop...])) }
            }
        }
    }

    /// Who a format 2 file opens for (its stanzas' kinds and labels).
    public static func stanzas(of path: String) throws -> [KeyStanza] {
        try readPrefix(path).stanzas
    }
}

import Crypto
import Foundation
import _FileSystem

/// Bulwark's encrypted file format: AES-256-GCM over fixed-size chunks, so files of any size are
/// encrypted and decrypted in bounded memory, with every chunk authenticated and their order and
/// number protected (the STREAM construction of Hoang, Reyhanitabar, Rogaway & Vizár, 2015, as in
/// Tink's streaming AEAD and age).
///
/// ```
/// header (15 bytes): "BWENC" | version 0x01 | algorithm 0x01 (AES-256-GCM) | log2(chunk size) | nonce prefix (7 random bytes)
/// chunk i:           AES-GCM(key, nonce = prefix ‖ i (u32 big-endian) ‖ last (0x00 or 0x01), aad = header)
///                    = ciphertext (chunk size bytes, fewer in the last chunk) ‖ tag (16 bytes)
/// ```
/// The last chunk is marked in its nonce, so cutting the file at a chunk boundary, dropping,
/// repeating or reordering chunks, or editing the header makes authentication fail. An empty input
/// is one empty last chunk. A wrong key or any changed byte is an authentication error, never
/// garbage output.
public enum EncryptedContainer {
    public static let magic: [UInt8] = Array("BWENC".utf8)
    public static let headerSize = 15
    public static let tagSize = 16
    public static let defaultChunkSize = 1 << 20
    static let chunkSizeExponents = 10...26

    /// True if `bytes` starts with the container's magic number.
    public static func isEncrypted(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.count >= magic.count && Array(bytes.prefix(magic.count)) == magic
    }

    struct Header {
        let bytes: [UInt8]
        let chunkSize: Int
        var noncePrefix: ArraySlice<UInt8> { bytes[8..<15] }
        /// 1: the data key is the key given; 2: the data key is wrapped in the header (`EnvelopeEncryption`).
        var version: UInt8 { bytes[5] }

        init(chunkSize: Int, version: UInt8 = 1) {
            var generator = SystemRandomNumberGenerator()
            let exponent = UInt8(chunkSize.trailingZeroBitCount)
            bytes = magic + [version, 1, exponent] + (0..<7).map { _ in UInt8.random(in: 0...255, using: &generator) }
            self.chunkSize = chunkSize
        }

        init(parsing data: some Collection<UInt8>, source: String) throws {
            let bytes = Array(data.prefix(EncryptedContainer.headerSize))
            func fail(_ problem: String) -> SecurityError { .invalidContainer(path: source, problem: problem) }
            guard bytes.count == EncryptedContainer.headerSize else { throw fail("it is shorter than the 15-byte header") }
            guard Array(bytes[0..<5]) == magic else { throw fail("the magic number is not BWENC") }
            guard bytes[5] == 1 || bytes[5] == 2 else { throw fail("format version \(bytes[5]) is not supported (this Bulwark reads versions 1 and 2)") }
            guard bytes[6] == 1 else { throw fail("algorithm \(bytes[6]) is not supported (1 = AES-256-GCM)") }
            guard chunkSizeExponents.contains(Int(bytes[7])) else { throw fail("chunk size 2^\(bytes[7]) is outside 2^10…2^26") }
            self.bytes = bytes
            chunkSize = 1 << Int(bytes[7])
        }

        func nonce(_ index: UInt32, last: Bool) throws -> AES.GCM.Nonce {
            let counter = withUnsafeBytes(of: index.bigEndian) { Array($0) }
            return try AES.GCM.Nonce(data: Array(noncePrefix) + counter + [last ? 1 : 0])
        }
    }

    // MARK: - In memory

    /// Encrypts `plaintext` into a complete container.
    public static func encrypt(_ plaintext: [UInt8], key: DataKey, chunkSize: Int = defaultChunkSize) throws -> [UInt8] {
        var output: [UInt8] = []
        try encrypt(chunks: chunked(plaintext, size: chunkSize), key: key, chunkSize: chunkSize) { output.append(contentsOf: $0) }
        return output
    }

    /// Decrypts a complete container held in memory.
    /// - Throws: `SecurityError.authenticationFailed` for a wrong key or tampering,
    ///   `SecurityError.invalidContainer` for a malformed file.
    public static func decrypt(_ data: [UInt8], key: DataKey, source: String) throws -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(data.count)
        var stream = try DecryptionStream(key: key, source: source)
        try stream.feed(data[...]) { output.append(contentsOf: $0) }
        try stream.finish { output.append(contentsOf: $0) }
        return output
    }

    // MARK: - Files (streaming, atomic output)

    /// Encrypts the file at `input` into `output` chunk by chunk (bounded memory, atomic write).
    public static func encryptFile(_ input: String, to output: String, key: DataKey, chunkSize: Int = defaultChunkSize) throws {
        precondition(chunkSizeExponents.contains(chunkSize.trailingZeroBitCount) && chunkSize.nonzeroBitCount == 1,
                     "chunk size must be a power of two between 2^10 and 2^26")
        try encryptFile(input, to: output, key: key, header: Header(chunkSize: chunkSize), prelude: [])
    }

    /// Encrypts with `header`, writing `prelude` (a version 2 key block) between it and the chunks.
    static func encryptFile(_ input: String, to output: String, key: DataKey, header: Header, prelude: [UInt8]) throws {
        let chunkSize = header.chunkSize
        try AtomicFile.write(to: output) { sink in
            var pending: [UInt8] = []
            try sink.write(header.bytes)
            try sink.write(prelude)
            var index: UInt32 = 0
            try FileReader.forEachChunk(of: input, chunkSize: chunkSize) { raw in
                pending.append(contentsOf: raw)
                // Keep at least one full chunk back: only at the end is it known which chunk is last.
                while pending.count > chunkSize {
                    try sink.write(seal(Array(pending[..<chunkSize]), header: header, index: index, last: false, key: key))
                    pending.removeFirst(chunkSize)
                    index += 1
                }
            }
            try sink.write(seal(pending, header: header, index: index, last: true, key: key))
        }
    }

    /// Decrypts the file at `input` into `output` (mode 0600) chunk by chunk. The output appears only
    /// if every chunk authenticates.
    public static func decryptFile(_ input: String, to output: String, key: DataKey) throws {
        try AtomicFile.write(to: output, permissions: 0o600) { sink in
            var stream = try DecryptionStream(key: key, source: input)
            try FileReader.forEachChunk(of: input) { raw in try stream.feed(ArraySlice(raw)) { try sink.write($0) } }
            try stream.finish { try sink.write($0) }
        }
    }

    /// Re-encrypts a container file under `newKey` in place (with the default chunk size), chunk by
    /// chunk: plaintext exists only in memory, one chunk at a time, and the file is replaced atomically.
    public static func reencryptFile(_ path: String, from oldKey: DataKey, to newKey: DataKey) throws {
        try AtomicFile.write(to: path, permissions: AtomicFile.currentPermissions(of: path)) { sink in
            var stream = try DecryptionStream(key: oldKey, source: path)
            var header: Header?
            var index: UInt32 = 0
            var pending: [UInt8] = []
            func emit(_ plaintext: [UInt8], final: Bool) throws {
                pending.append(contentsOf: plaintext)
                if header == nil {
                    header = Header(chunkSize: defaultChunkSize)
                    try sink.write(header!.bytes)
                }
                while pending.count > header!.chunkSize {
                    try sink.write(seal(Array(pending[..<header!.chunkSize]), header: header!, index: index, last: false, key: newKey))
                    pending.removeFirst(header!.chunkSize)
                    index += 1
                }
                if final { try sink.write(seal(pending, header: header!, index: index, last: true, key: newKey)) }
            }
            try FileReader.forEachChunk(of: path) { raw in try stream.feed(ArraySlice(raw)) { try emit($0, final: false) } }
            try stream.finish { try emit($0, final: true) }
        }
    }

    // MARK: - Chunks

    static func chunked(_ data: [UInt8], size: Int) -> [ArraySlice<UInt8>] {
        guard !data.isEmpty else { return [data[...]] }
        return stride(from: 0, to: data.count, by: size).map { data[$0..<min($0 + size, data.count)] }
    }

    static func encrypt(chunks: [ArraySlice<UInt8>], key: DataKey, chunkSize: Int, write: ([UInt8]) throws -> Void) throws {
        precondition(chunkSizeExponents.contains(chunkSize.trailingZeroBitCount) && chunkSize.nonzeroBitCount == 1,
                     "chunk size must be a power of two between 2^10 and 2^26")
        let header = Header(chunkSize: chunkSize)
        try write(header.bytes)
        for (index, chunk) in chunks.enumerated() {
            try write(seal(Array(chunk), header: header, index: UInt32(index), last: index == chunks.count - 1, key: key))
        }
    }

    static func seal(_ plaintext: [UInt8], header: Header, index: UInt32, last: Bool, key: DataKey) throws -> [UInt8] {
        let box = try AES.GCM.seal(plaintext, using: key.symmetricKey, nonce: try header.nonce(index, last: last),
                                   authenticating: header.bytes)
        return Array(box.ciphertext) + Array(box.tag)
    }

    /// Incremental decryption: bytes go in as they are read; each chunk is authenticated before its
    /// plaintext comes out. The last chunk is known only when the input ends.
    struct DecryptionStream {
        let key: DataKey
        let source: String
        /// The format version this stream decrypts: 2 after `EnvelopeEncryption` has unwrapped the key.
        let version: UInt8
        var header: Header?
        var buffer: [UInt8] = []
        var index: UInt32 = 0

        init(key: DataKey, source: String, version: UInt8 = 1) throws {
            self.key = key
            self.source = source
            self.version = version
        }

        /// Bytes before `start` in `buffer` are consumed.
        var start = 0

        mutating func feed(_ bytes: ArraySlice<UInt8>, output: ([UInt8]) throws -> Void) throws {
            if start > 0 && start >= buffer.count / 2 {
                buffer.removeFirst(start)
                start = 0
            }
            buffer.append(contentsOf: bytes)
            if header == nil {
                guard buffer.count >= headerSize else { return }
                header = try Header(parsing: buffer, source: source)
                guard header!.version == version else {
                    throw SecurityError.invalidContainer(path: source, problem: header!.version == 2
                        ? "it is encrypted to recipients or key-encryption keys (format 2), not with a data key; decrypt it with --identity, --kek-file, --kek-env or --kek-command"
                        : "it is encrypted with a data key (format 1); decrypt it with --key-file or $\(DataKey.environmentVariable)")
                }
                start = headerSize
            }
            let sealedSize = header!.chunkSize + tagSize
            // A full sealed chunk followed by more bytes is not the last one.
            while buffer.count - start > sealedSize {
                try output(open(Array(buffer[start..<(start + sealedSize)]), last: false))
                start += sealedSize
            }
        }

        mutating func finish(output: ([UInt8]) throws -> Void) throws {
            guard header != nil else {
                throw SecurityError.invalidContainer(path: source, problem: "it is shorter than the 15-byte header")
            }
            guard buffer.count - start >= tagSize else {
                throw SecurityError.invalidContainer(path: source, problem: "it is truncated (the last chunk is incomplete)")
            }
            try output(open(Array(buffer[start...]), last: true))
            buffer = []
            start = 0
        }

        mutating func open(_ sealed: [UInt8], last: Bool) throws -> [UInt8] {
            defer { index += 1 }
            guard index < UInt32.max else { throw SecurityError.invalidContainer(path: source, problem: "it has too many chunks") }
            do {
                let box = try AES.GCM.SealedBox(nonce: try header!.nonce(index, last: last),
                                                ciphertext: sealed[..<(sealed.count - tagSize)],
                                                tag: sealed[(sealed.count - tagSize)...])
                return Array(try AES.GCM.open(box, using: key.symmetricKey, authenticating: header!.bytes))
            } catch {
                throw SecurityError.authenticationFailed(path: source)
            }
        }
    }
}

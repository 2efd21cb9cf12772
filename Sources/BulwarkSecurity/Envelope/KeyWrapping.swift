import Crypto
import Foundation
import _FileSystem

/// Who can open an envelope-encrypted file: each wraps the file's random data key into one stanza
/// of the file's header (as in age's header), so one file can open for several recipients and
/// key-encryption keys, and the stanzas can be replaced without touching the encrypted data.
public enum KeyWrapper: Sendable {
    /// An X-Wing public key: HPKE (RFC 9180) base mode with X-Wing, HKDF-SHA256 and AES-256-GCM.
    case recipient(XWingMLKEM768X25519.PublicKey)
    /// A 32-byte key-encryption key from a file or an environment variable: AES-256-GCM.
    case keyEncryptionKey(DataKey)
    /// A key-encryption key behind a command (a KMS or an HSM).
    case command(KeyEncryptionCommand)
}

/// What can open an envelope-encrypted file: the private halves of `KeyWrapper`s.
public enum KeyUnwrapper: Sendable {
    /// An X-Wing private key (an identity).
    case identity(XWingMLKEM768X25519.PrivateKey)
    case keyEncryptionKey(DataKey)
    case command(KeyEncryptionCommand)

    /// What it is, for messages.
    var summary: String {
        switch self {
        case .identity(let key): "identity \(RecipientKeys.fingerprint(key.publicKey))"
        case .keyEncryptionKey(let key): "key-encryption key \(KeyStanza.identifier(of: key))"
        case .command(let command): "key-encryption command '\(displayable(command.command, limit: 60))'"
        }
    }
}

/// One wrapped copy of a file's data key.
///
/// ```
/// kind (1 byte: 1 X-Wing recipient, 2 key-encryption key, 3 key-encryption command)
/// label length (u16, big-endian) | label (UTF-8: whose key it is, a fingerprint or "command")
/// body length (u32, big-endian) | body
/// ```
/// Bodies: X-Wing, the HPKE encapsulated key (1,120 bytes) then the sealed data key (48 bytes);
/// key-encryption key, a 12-byte nonce then the data key sealed under a per-file subkey (48 bytes);
/// command, what it printed. The X-Wing and key-encryption-key stanzas are bound to the file's fixed
/// header (its nonce prefix) and their kind; a command's output is bound by the header MAC (and the
/// command receives the header as `BULWARK_KEK_CONTEXT`, for a KMS encryption context).
public struct KeyStanza: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case recipient = 1, keyEncryptionKey = 2, command = 3
    }

    public var kind: Kind
    public var label: String
    public var body: [UInt8]

    static let maximumLabel = 256
    static let maximumBody = KeyEncryptionCommand.maximumWrappedSize
    static let xwingEncapsulatedSize = 1120, sealedKeySize = 48, nonceSize = 12

    /// The identifier of a key-encryption key written in its stanzas: a hash, never the key.
    public static func identifier(of key: DataKey) -> String {
        String(FileDigest.sha256(Array("bulwark key-encryption key id\n".utf8) + key.bytes).prefix(16))
    }

    /// A key-encryption key's subkey for one file (HKDF over its fixed header), so no AES-GCM key
    /// seals more than one data key and random nonces never approach their collision bound.
    static func fileKey(_ key: DataKey, fixedHeader: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key.symmetricKey, salt: fixedHeader,
                               info: Array("bulwark envelope v2 key-encryption key".utf8), outputByteCount: 32)
    }

    static func context(_ kind: Kind, fixedHeader: [UInt8]) -> [UInt8] {
        Array("bulwark envelope v2 stanza \(kind.rawValue)\n".utf8) + fixedHeader
    }

    /// Wraps `dataKey` for `wrapper`.
    public static func wrap(_ dataKey: [UInt8], for wrapper: KeyWrapper, fixedHeader: [UInt8]) throws -> KeyStanza {
        switch wrapper {
        case .recipient(let publicKey):
            var sender = try HPKE.Sender(recipientKey: publicKey, ciphersuite: .XWingMLKEM768X25519_SHA256_AES_GCM_256,
                                         info: Data(context(.recipient, fixedHeader: fixedHeader)))
            let sealed = try sender.seal(dataKey)
            return KeyStanza(kind: .recipient, label: RecipientKeys.fingerprint(publicKey), body: Array(sender.encapsulatedKey) + Array(sealed))
        case .keyEncryptionKey(let key):
            let box = try AES.GCM.seal(dataKey, using: fileKey(key, fixedHeader: fixedHeader), authenticating: context(.keyEncryptionKey, fixedHeader: fixedHeader))
            return KeyStanza(kind: .keyEncryptionKey, label: identifier(of: key),
                             body: Array(box.nonce) + Array(box.ciphertext) + Array(box.tag))
        case .command(let command):
            let wrapped = try command.wrap(dataKey, context: fixedHeader)
            // A wrapped key that does not unwrap would make the file unreadable: check it now, while the plaintext is still there.
            if command.checksRoundTrip, try command.unwrap(wrapped, context: fixedHeader) != dataKey {
                throw command.failure("unwrap", "did not give back the key it wrapped, so a file encrypted with it could never be decrypted")
            }
            return KeyStanza(kind: .command, label: "command", body: wrapped)
        }
    }

    /// The data key, if `unwrapper` opens this stanza (nil if it is not for this unwrapper).
    /// - Throws: only for a command that fails (its error says why).
    public func unwrap(with unwrapper: KeyUnwrapper, fixedHeader: [UInt8]) throws -> [UInt8]? {
        switch (kind, unwrapper) {
        case (.recipient, .identity(let privateKey)):
            guard label == RecipientKeys.fingerprint(privateKey.publicKey), body.count == Self.xwingEncapsulatedSize + Self.sealedKeySize else { return nil }
            guard var recipient = try? HPKE.Recipient(privateKey: privateKey, ciphersuite: .XWingMLKEM768X25519_SHA256_AES_GCM_256,
                                                      info: Data(Self.context(.recipient, fixedHeader: fixedHeader)),
                                                      encapsulatedKey: Data(body.prefix(Self.xwingEncapsulatedSize))),
                  let key = try? recipient.open(Data(body.dropFirst(Self.xwingEncapsulatedSize))) else { return nil }
            return Array(key)
        case (.keyEncryptionKey, .keyEncryptionKey(let key)):
            guard label == Self.identifier(of: key), body.count == Self.nonceSize + Self.sealedKeySize,
                  let box = try? AES.GCM.SealedBox(combined: body) else { return nil }
            return (try? AES.GCM.open(box, using: Self.fileKey(key, fixedHeader: fixedHeader),
                                      authenticating: Self.context(.keyEncryptionKey, fixedHeader: fixedHeader))).map(Array.init)
        case (.command, .command(let command)):
            return try command.unwrap(body, context: fixedHeader)
        default:
            return nil
        }
    }

    // MARK: - Encoding

    /// An unsigned big-endian integer of up to 4 bytes (the header's lengths).
    static func bigEndian(_ bytes: some Collection<UInt8>) -> Int {
        Int(bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
    }

    static func encode(_ stanzas: [KeyStanza]) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(stanzas.count)]
        for stanza in stanzas {
            let label = Array(stanza.label.utf8)
            bytes.append(stanza.kind.rawValue)
            bytes += withUnsafeBytes(of: UInt16(label.count).bigEndian, Array.init) + label
            bytes += withUnsafeBytes(of: UInt32(stanza.body.count).bigEndian, Array.init) + stanza.body
        }
        return bytes
    }

    /// Parses a key block; every length is checked against what remains.
    static func decode(_ bytes: ArraySlice<UInt8>, fail: (String) -> SecurityError) throws -> [KeyStanza] {
        var rest = bytes
        func take(_ count: Int, _ what: String) throws -> ArraySlice<UInt8> {
            guard rest.count >= count else { throw fail("its key block is truncated (in \(what))") }
            defer { rest = rest.dropFirst(count) }
            return rest.prefix(count)
        }
        let count = Int(try take(1, "the stanza count").first!)
        guard (1...EnvelopeEncryption.maximumStanzas).contains(count) else {
            throw fail("its key block has \(count) stanzas (1 to \(EnvelopeEncryption.maximumStanzas) are valid)")
        }
        var stanzas: [KeyStanza] = []
        for index in 0..<count {
            let rawKind = try take(1, "stanza \(index)").first!
            guard let kind = Kind(rawValue: rawKind) else { throw fail("stanza \(index) has the unknown kind \(rawKind)") }
            let labelLength = bigEndian(try take(2, "stanza \(index)"))
            guard labelLength <= maximumLabel else { throw fail("stanza \(index)'s label is longer than \(maximumLabel) bytes") }
            guard let label = String(validating: try take(labelLength, "stanza \(index)'s label"), as: UTF8.self) else {
                throw fail("stanza \(index)'s label is not UTF-8")
            }
            let bodyLength = bigEndian(try take(4, "stanza \(index)"))
            guard bodyLength <= maximumBody else { throw fail("stanza \(index)'s body is longer than \(maximumBody) bytes") }
            stanzas.append(KeyStanza(kind: kind, label: label, body: Array(try take(bodyLength, "stanza \(index)'s body"))))
        }
        guard rest.isEmpty else { throw fail("its key block has \(rest.count) bytes after the last stanza") }
        return stanzas
    }
}

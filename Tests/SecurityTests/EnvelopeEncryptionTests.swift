import Crypto
import Foundation
import NeuralNet
import BulwarkSecurity
import Testing
import _TestSupport
import _FileSystem

/// A fake KMS for the key-encryption command: openssl's AES-256-CBC under a secret in the
/// environment, switched on BULWARK_KEK_OPERATION, as a KMS client script would be.
func fakeKMS(in directory: String, name: String = "kms.sh", body: String? = nil) throws -> String {
    let path = directory + "/" + name
    let script = body ?? """
        #!/bin/sh
        case "$BULWARK_KEK_OPERATION" in
          wrap) exec openssl enc -aes-256-cbc -pbkdf2 -salt -pass pass:fake-kms-secret ;;
          unwrap) exec openssl enc -d -aes-256-cbc -pbkdf2 -pass pass:fake-kms-secret ;;
        esac
        echo "unknown operation $BULWARK_KEK_OPERATION" >&2
        exit 9
        """
    try Data(script.utf8).write(to: URL(fileURLWithPath: path))
    chmod(path, 0o700)
    return path
}

@Suite("Envelope encryption: X-Wing recipients, key-encryption keys, KMS commands, re-wrapping")
struct EnvelopeEncryptionTests {
    let plaintext: [UInt8] = (0..<(3 << 20) + 123).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }

    func files(_ name: String = #function) throws -> (directory: String, input: String) {
        let directory = TestSupport.temporaryDirectory(name)
        try Data(plaintext).write(to: URL(fileURLWithPath: directory + "/plain.bin"))
        return (directory, directory + "/plain.bin")
    }

    func contents(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    @Test("a file encrypted to two X-Wing recipients opens with either identity and with no other; the error names who it is for")
    func recipients() throws {
        let (directory, input) = try files()
        let alice = try XWingMLKEM768X25519.PrivateKey.generate(), bob = try XWingMLKEM768X25519.PrivateKey.generate()
        let eve = try XWingMLKEM768X25519.PrivateKey.generate()
        try EnvelopeEncryption.encryptFile(input, to: directory + "/sealed", for: [.recipient(alice.publicKey), .recipient(bob.publicKey)])
        #expect(try EnvelopeEncryption.stanzas(of: directory + "/sealed").map(\.label) == [alice.publicKey, bob.publicKey].map(RecipientKeys.fingerprint))
        for identity in [alice, bob] {
            try EnvelopeEncryption.decryptFile(directory + "/sealed", to: directory + "/opened", unwrappers: [.identity(identity)])
            #expect(try contents(directory + "/opened") == plaintext)
            try FileManager.default.removeItem(atPath: directory + "/opened")
        }
        let error = #expect(throws: SecurityError.self) {
            try EnvelopeEncryption.decryptFile(directory + "/sealed", to: directory + "/opened", unwrappers: [.identity(eve)])
        }
        #expect("\(error!)".contains(RecipientKeys.fingerprint(alice.publicKey)) && "\(error!)".contains("--identity"))
        #expect(!FileManager.default.fileExists(atPath: directory + "/opened"))
        // In memory, as the verifying loader decrypts.
        #expect(try EnvelopeEncryption.decrypt(contents(directory + "/sealed"), unwrappers: [.identity(bob)], source: "sealed") == plaintext)
    }

    @Test("key-encryption keys: the right one opens, a wrong one is refused, and a data key is not accepted for the new format")
    func keyEncryptionKeys() throws {
        let (directory, input) = try files()
        let kek = DataKey.generate()
        try EnvelopeEncryption.encryptFile(input, to: directory + "/sealed", for: [.keyEncryptionKey(kek)])
        #expect(try EnvelopeEncryption.decrypt(contents(directory + "/sealed"), unwrappers: [.keyEncryptionKey(kek)], source: "s") == plaintext)
        #expect(throws: SecurityError.self) {
            try EnvelopeEncryption.decrypt(contents(directory + "/sealed"), unwrappers: [.keyEncryptionKey(DataKey.generate())], source: "s")
        }
        let error = #expect(throws: SecurityError.self) { try EncryptedContainer.decrypt(contents(directory + "/sealed"), key: kek, source: "s") }
        #expect("\(error!)".contains("format 2"))
        // And the old format's tools say what to use.
        #expect(throws: SecurityError.self) { try DataEncryption.rotate(directory + "/sealed", from: kek, to: DataKey.generate()) }
    }

    @Test("a KMS behind a command wraps and unwraps the data key; the wrapped key is opaque to Bulwark")
    func kmsCommand() throws {
        let (directory, input) = try files()
        let kms = KeyEncryptionCommand(command: try fakeKMS(in: directory))
        try EnvelopeEncryption.encryptFile(input, to: directory + "/sealed", for: [.command(kms)])
        let stanza = try EnvelopeEncryption.stanzas(of: directory + "/sealed")[0]
        #expect(stanza.kind == .command && stanza.body.starts(with: Array("Salted__".utf8)))
        try EnvelopeEncryption.decryptFile(directory + "/sealed", to: directory + "/opened", unwrappers: [.command(kms)])
        #expect(try contents(directory + "/opened") == plaintext)
    }

    @Test("a KMS command that fails, hangs, prints garbage or gives back another key is a clear error, and nothing is written or lost")
    func kmsFailures() throws {
        let (directory, input) = try files()
        try Data("precious".utf8).write(to: URL(fileURLWithPath: directory + "/existing"))
        let cases: [(script: String, timeout: Double, message: String)] = [
            ("#!/bin/sh\necho 'AccessDeniedException: not authorized to use key alias/models' >&2\nexit 3\n", 30, "exited with status 3: AccessDeniedException"),
            ("#!/bin/sh\nexec sleep 30\n", 0.5, "did not finish within 0.5 s"),
            // The shell waits for a child: the whole process group must be stopped, or the pipe stays open.
            ("#!/bin/sh\nsleep 30\n:\n", 0.5, "did not finish within 0.5 s"),
            ("#!/bin/sh\ncat >/dev/null\n", 30, "printed 0 bytes"),
            ("#!/bin/sh\ncase \"$BULWARK_KEK_OPERATION\" in wrap) cat ;; unwrap) echo garbage ;; esac\n", 30, "neither 32 raw bytes"),
            ("#!/bin/sh\ncase \"$BULWARK_KEK_OPERATION\" in wrap) cat ;; unwrap) head -c 32 /dev/urandom ;; esac\n", 30, "did not give back the key"),
        ]
        for (index, failure) in cases.enumerated() {
            let command = KeyEncryptionCommand(command: try fakeKMS(in: directory, name: "kms\(index).sh", body: failure.script), timeout: failure.timeout)
            let started = Date()
            let error = #expect(throws: SecurityError.self) {
                try EnvelopeEncryption.encryptFile(input, to: directory + "/existing", for: [.command(command)])
            }
            #expect("\(error!)".contains(failure.message), "\(String(describing: error))")
            #expect(Date().timeIntervalSince(started) < 10)
            #expect(try contents(directory + "/existing") == Array("precious".utf8))
        }
        // Decryption through a failing command leaves no output either.
        let good = KeyEncryptionCommand(command: try fakeKMS(in: directory))
        try EnvelopeEncryption.encryptFile(input, to: directory + "/sealed", for: [.command(good)])
        let broken = KeyEncryptionCommand(command: try fakeKMS(in: directory, name: "broken.sh", body: "#!/bin/sh\nexit 1\n"))
        #expect(throws: SecurityError.self) {
            try EnvelopeEncryption.decryptFile(directory + "/sealed", to: directory + "/opened", unwrappers: [.command(broken)])
        }
        #expect(!FileManager.default.fileExists(atPath: directory + "/opened"))
    }

    @Test("the command does not see Bulwark's secrets, gets the file's header as context, may leave a background process, and can skip the round-trip check")
    func commandEnvironment() throws {
        let (directory, input) = try files()
        let log = directory + "/env.log"
        let script = """
            #!/bin/sh
            env > \(log)
            sleep 20 &
            case "$BULWARK_KEK_OPERATION" in
              wrap) exec openssl enc -aes-256-cbc -pbkdf2 -salt -pass pass:k ;;
              unwrap) exit 7 ;;
            esac
            """
        // The environment is given rather than set on this process, whose other tests run in parallel.
        var environment = ProcessInfo.processInfo.environment
        environment["TEST_KEK_SECRET"] = "do-not-leak"
        environment[DataKey.environmentVariable] = "do-not-leak-either"
        let command = KeyEncryptionCommand(command: try fakeKMS(in: directory, name: "env.sh", body: script), checksRoundTrip: false,
                                           hiddenVariables: ["TEST_KEK_SECRET"], environment: environment)
        let started = Date()
        // Encrypt-only: the command cannot unwrap (exit 7), and with the check off encryption still works.
        try EnvelopeEncryption.encryptFile(input, to: directory + "/sealed", for: [.command(command)])
        #expect(Date().timeIntervalSince(started) < 10)
        let seen = try String(contentsOfFile: log, encoding: .utf8)
        #expect(!seen.contains("do-not-leak") && seen.contains("BULWARK_KEK_OPERATION=wrap"))
        let header = try contents(directory + "/sealed").prefix(15).map { String(format: "%02x", $0) }.joined()
        #expect(seen.contains("BULWARK_KEK_CONTEXT=\(header)"))
        // With the check on, the same command is refused before anything is written.
        let checked = KeyEncryptionCommand(command: command.command)
        #expect(throws: SecurityError.self) { try EnvelopeEncryption.encryptFile(input, to: directory + "/checked", for: [.command(checked)]) }
        #expect(!FileManager.default.fileExists(atPath: directory + "/checked"))
    }

    @Test("a KMS command that fails does not stop another key holder from opening the file")
    func failingCommandThenIdentity() throws {
        let (directory, input) = try files()
        let identity = try XWingMLKEM768X25519.PrivateKey.generate()
        let kms = KeyEncryptionCommand(command: try fakeKMS(in: directory))
        try EnvelopeEncryption.encryptFile(input, to: directory + "/sealed", for: [.command(kms), .recipient(identity.publicKey)])
        let broken = KeyEncryptionCommand(command: try fakeKMS(in: directory, name: "broken.sh", body: "#!/bin/sh\necho 'kms down' >&2\nexit 1\n"))
        #expect(try EnvelopeEncryption.decrypt(contents(directory + "/sealed"), unwrappers: [.command(broken), .identity(identity)], source: "s") == plaintext)
        let error = #expect(throws: SecurityError.self) {
            try EnvelopeEncryption.decrypt(contents(directory + "/sealed"), unwrappers: [.command(broken)], source: "s")
        }
        #expect("\(error!)".contains("kms down"))
    }

    @Test("re-wrapping rotates the key-encryption key without re-encrypting: the chunks are byte-identical, the old key no longer opens")
    func rewrap() throws {
        let (directory, input) = try files()
        let old = DataKey.generate(), new = DataKey.generate()
        let recipient = try XWingMLKEM768X25519.PrivateKey.generate()
        let sealed = directory + "/sealed"
        try EnvelopeEncryption.encryptFile(input, to: sealed, for: [.keyEncryptionKey(old)])
        chmod(sealed, 0o600)
        let before = try contents(sealed)
        // A wrong current key changes nothing.
        #expect(throws: SecurityError.self) { try EnvelopeEncryption.rewrapFile(sealed, unwrappers: [.keyEncryptionKey(new)], for: [.keyEncryptionKey(new)]) }
        #expect(try contents(sealed) == before)

        try EnvelopeEncryption.rewrapFile(sealed, unwrappers: [.keyEncryptionKey(old)], for: [.keyEncryptionKey(new), .recipient(recipient.publicKey)])
        let after = try contents(sealed)
        let chunkBytes = before.count - 15 - 4 - Int(before[15..<19].reduce(0) { $0 << 8 | UInt32($1) }) - 32
        #expect(Array(after.suffix(chunkBytes)) == Array(before.suffix(chunkBytes)))
        #expect(after.count > before.count)
        #expect(throws: SecurityError.self) { try EnvelopeEncryption.decrypt(after, unwrappers: [.keyEncryptionKey(old)], source: "s") }
        #expect(try EnvelopeEncryption.decrypt(after, unwrappers: [.keyEncryptionKey(new)], source: "s") == plaintext)
        #expect(try EnvelopeEncryption.decrypt(after, unwrappers: [.identity(recipient)], source: "s") == plaintext)
        // The file keeps its mode.
        #expect(AtomicFile.currentPermissions(of: sealed) == 0o600)
    }

    @Test("a tampered header is refused: a dropped or edited stanza, the MAC, a stanza from another file, hostile lengths; a flipped chunk byte too")
    func tampering() throws {
        let (directory, input) = try files()
        let alice = try XWingMLKEM768X25519.PrivateKey.generate(), kek = DataKey.generate()
        try EnvelopeEncryption.encryptFile(input, to: directory + "/sealed", for: [.recipient(alice.publicKey), .keyEncryptionKey(kek)])
        try EnvelopeEncryption.encryptFile(input, to: directory + "/other", for: [.keyEncryptionKey(kek)])
        let original = try contents(directory + "/sealed"), other = try contents(directory + "/other")
        let blockLength = Int(original[15..<19].reduce(0) { $0 << 8 | UInt32($1) })
        func refused(_ bytes: [UInt8], _ what: String) {
            #expect(throws: SecurityError.self, "\(what)") {
                try EnvelopeEncryption.decrypt(bytes, unwrappers: [.identity(alice), .keyEncryptionKey(kek)], source: "s")
            }
        }
        // Edit a byte in the X-Wing stanza, in the KEK stanza, in the MAC.
        for offset in [19 + 40, 19 + blockLength - 5, 19 + blockLength + 3] {
            var bytes = original
            bytes[offset] ^= 1
            refused(bytes, "byte \(offset)")
        }
        // Drop the X-Wing stanza (the KEK holder would still open it, but the MAC binds the key block).
        let stanzas = try EnvelopeEncryption.stanzas(of: directory + "/sealed")
        func rebuilt(_ keep: [KeyStanza], from file: [UInt8]) -> [UInt8] {
            var block: [UInt8] = [UInt8(keep.count)]
            for stanza in keep {
                block.append(stanza.kind.rawValue)
                block += [UInt8(stanza.label.utf8.count >> 8), UInt8(stanza.label.utf8.count & 0xFF)] + Array(stanza.label.utf8)
                block += withUnsafeBytes(of: UInt32(stanza.body.count).bigEndian, Array.init) + stanza.body
            }
            let fileBlock = Int(file[15..<19].reduce(0) { $0 << 8 | UInt32($1) })
            return Array(file[..<15]) + withUnsafeBytes(of: UInt32(block.count).bigEndian, Array.init) + block + Array(file[(19 + fileBlock)...])
        }
        refused(rebuilt([stanzas[1]], from: original), "dropped stanza")
        // The KEK stanza of another file (another data key) spliced in.
        let otherStanza = try EnvelopeEncryption.stanzas(of: directory + "/other")[0]
        refused(rebuilt([stanzas[0], otherStanza], from: original), "spliced stanza")
        refused(rebuilt([otherStanza], from: original), "another file's only stanza")
        _ = other
        // Hostile lengths.
        var bytes = original
        bytes.replaceSubrange(15..<19, with: [0xFF, 0xFF, 0xFF, 0xFF])
        refused(bytes, "huge key block")
        bytes = original
        bytes[19] = 0
        refused(bytes, "zero stanzas")
        refused(Array(original.prefix(30)), "truncated")
        // A chunk byte.
        bytes = original
        bytes[bytes.count - 100] ^= 1
        let error = #expect(throws: SecurityError.self) { try EnvelopeEncryption.decrypt(bytes, unwrappers: [.keyEncryptionKey(kek)], source: "s") }
        #expect(error == .authenticationFailed(path: "s"))
    }

    @Test("the verifying loader opens an envelope-encrypted model with an identity, and says what is missing without one")
    func verifyingLoader() throws {
        let directory = TestSupport.temporaryDirectory()
        let network = Sequential(spec: try ModelSpec.parse("784-8-10"), seed: 4)
        try ModelFile.save(network, to: directory + "/plain.safetensors")
        let identity = try XWingMLKEM768X25519.PrivateKey.generate()
        try EnvelopeEncryption.encryptFile(directory + "/plain.safetensors", to: directory + "/model.safetensors", for: [.recipient(identity.publicKey)])
        let digest = try FileDigest.sha256(path: directory + "/model.safetensors")
        let loader = VerifyingFileLoader(expectedDigests: [directory + "/model.safetensors": digest])
        let error = #expect(throws: SecurityError.self) { try ModelFile.load(contentsOf: directory + "/model.safetensors", loader: loader) }
        #expect("\(error!)".contains("no key was given"))
        loader.keyUnwrappers = [.identity(identity)]
        let loaded = try ModelFile.load(contentsOf: directory + "/model.safetensors", loader: loader)
        #expect(loaded.network.spec == network.spec)
    }
}

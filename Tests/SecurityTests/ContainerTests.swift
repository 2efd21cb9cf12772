import Foundation
import BulwarkSecurity
import Testing
import _TestSupport

@Suite("Encrypted container (AES-256-GCM, chunked)")
struct ContainerTests {
    static let chunk = 1024

    func bytes(_ count: Int, seed: UInt8 = 1) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) } }

    @Test("round trip at every size around the chunk boundaries", arguments: [0, 1, 1023, 1024, 1025, 3072, 5000])
    func roundTrip(size: Int) throws {
        let key = DataKey.generate()
        let plaintext = bytes(size)
        let sealed = try EncryptedContainer.encrypt(plaintext, key: key, chunkSize: Self.chunk)
        let chunks = max(1, (size + Self.chunk - 1) / Self.chunk)
        #expect(sealed.count == EncryptedContainer.headerSize + size + 16 * chunks)
        #expect(try EncryptedContainer.decrypt(sealed, key: key, source: "x") == plaintext)
        #expect(EncryptedContainer.isEncrypted(sealed))
    }

    @Test("a wrong key, any flipped byte, truncation, reordering or a dropped chunk is refused")
    func tampering() throws {
        let key = DataKey.generate()
        let sealed = try EncryptedContainer.encrypt(bytes(3000), key: key, chunkSize: Self.chunk)
        func refused(_ data: [UInt8], key: DataKey = key) -> Bool {
            (try? EncryptedContainer.decrypt(data, key: key, source: "x")) == nil
        }
        #expect(refused(sealed, key: DataKey.generate()))
        for position in [0, 7, 9, 15, 100, 1039, 1040, 2100, sealed.count - 1] {
            var flipped = sealed
            flipped[position] ^= 0x40
            #expect(refused(flipped), "byte \(position)")
        }
        let sealedChunk = Self.chunk + 16, header = EncryptedContainer.headerSize
        #expect(refused(Array(sealed.prefix(header + sealedChunk))))      // cut after the first chunk
        #expect(refused(Array(sealed.prefix(header + 2 * sealedChunk))))  // cut after the second
        #expect(refused(Array(sealed.dropLast(1))))
        var swapped = sealed
        swapped.replaceSubrange(header..<(header + sealedChunk), with: sealed[(header + sealedChunk)..<(header + 2 * sealedChunk)])
        swapped.replaceSubrange((header + sealedChunk)..<(header + 2 * sealedChunk), with: sealed[header..<(header + sealedChunk)])
        #expect(refused(swapped))
        var dropped = sealed
        dropped.removeSubrange(header..<(header + sealedChunk))
        #expect(refused(dropped))
        #expect(throws: SecurityError.self) { try EncryptedContainer.decrypt(Array(sealed.prefix(10)), key: key, source: "x") }
    }

    @Test("files: streaming encryption matches, decryption is private, rotation needs the new key")
    func files() throws {
        let directory = TestSupport.temporaryDirectory()
        let plaintext = bytes(3 << 20)  // three default-size chunks
        try Data(plaintext).write(to: URL(fileURLWithPath: directory + "/plain"))
        let key = DataKey.generate(), newKey = DataKey.generate()
        try DataEncryption.encrypt(directory + "/plain", to: directory + "/sealed", key: key, format: .container)
        try DataEncryption.decrypt(directory + "/sealed", to: directory + "/opened", key: key)
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/opened")) == Data(plaintext))
        let mode = (try FileManager.default.attributesOfItem(atPath: directory + "/opened")[.posixPermissions] as! NSNumber).intValue
        #expect(mode == 0o600)

        try DataEncryption.rotate(directory + "/sealed", from: key, to: newKey)
        #expect(throws: SecurityError.self) { try DataEncryption.decrypt(directory + "/sealed", to: directory + "/x", key: key) }
        try DataEncryption.decrypt(directory + "/sealed", to: directory + "/reopened", key: newKey)
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/reopened")) == Data(plaintext))
        #expect(!FileManager.default.fileExists(atPath: directory + "/x"))

        try DataEncryption.encrypt(directory + "/plain", to: directory + "/token", key: key, format: .fernet)
        try DataEncryption.rotate(directory + "/token", from: key, to: newKey)
        try DataEncryption.decrypt(directory + "/token", to: directory + "/fernet-opened", key: newKey)
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/fernet-opened")) == Data(plaintext))
    }
}

@Suite("Key files")
struct KeyFileTests {
    @Test("keys readable by others are refused with the fix; private keys load")
    func permissions() throws {
        let directory = TestSupport.temporaryDirectory()
        let path = directory + "/data.key"
        try DataKey.generate().write(to: path)
        _ = try DataKey.load(path: path)
        chmod(path, 0o644)
        let error = #expect(throws: SecurityError.self) { try DataKey.load(path: path) }
        #expect("\(error!)".contains("chmod 600"))
        chmod(path, 0o600)
        try "not a key".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: SecurityError.self) { try DataKey.load(path: path) }
        // A key from Python's Fernet.generate_key() works as is.
        try "93vzX6O_kB2Xvp-qdF4fW5_ecEKMDNnocwuyuxv31pc=\n".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(try DataKey.load(path: path).bytes.count == 32)
        let environment = try DataKey.resolve(keyFile: nil, environment: [DataKey.environmentVariable: "93vzX6O_kB2Xvp-qdF4fW5_ecEKMDNnocwuyuxv31pc="])
        #expect(environment == (try DataKey.load(path: path)))
    }

    @Test("signing keys: generated with private permissions, never overwritten")
    func signingKeys() throws {
        let directory = TestSupport.temporaryDirectory() + "/keys"
        let (privateKey, publicKey) = try SigningKeys.generate(into: directory)
        let mode = (try FileManager.default.attributesOfItem(atPath: privateKey)[.posixPermissions] as! NSNumber).intValue
        #expect(mode == 0o600)
        #expect(try SigningKeys.loadPublicKey(publicKey).sameKey(as: SigningKeys.loadPrivateKey(privateKey).publicKey))
        #expect(throws: SecurityError.self) { try SigningKeys.generate(into: directory) }
    }
}

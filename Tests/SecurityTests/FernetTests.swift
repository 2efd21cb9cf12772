import Foundation
import BulwarkSecurity
import Testing

@Suite("Fernet (Python cryptography compatible)")
struct FernetTests {
    struct Vectors: Decodable {
        struct Case: Decodable {
            let token: String
            let now: String
            let src: String?
            let secret: String
            let iv: [UInt8]?
            let ttl_sec: UInt64?
            let desc: String?
        }
        let generate: [Case]
        let verify: [Case]
        let invalid: [Case]
    }

    static let vectors: Vectors = {
        let url = Bundle.module.url(forResource: "Fixtures/fernet-spec-vectors", withExtension: "json")!
        return try! JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url))
    }()

    static func date(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return ISO8601DateFormatter().date(from: text) ?? formatter.date(from: text)!
    }

    static func key(_ secret: String) throws -> DataKey { try DataKey(bytes: Base64.urlSafeDecode(secret)!) }

    @Test("the specification's generate vectors: same key, time and IV give the same token")
    func generate() throws {
        for v in Self.vectors.generate {
            let token = try Fernet.encrypt(Array(v.src!.utf8), key: Self.key(v.secret), now: Self.date(v.now), iv: v.iv)
            #expect(token == v.token)
        }
    }

    @Test("the specification's verify vectors decrypt")
    func verify() throws {
        for v in Self.vectors.verify {
            let plaintext = try Fernet.decrypt(v.token, key: Self.key(v.secret), ttl: v.ttl_sec, now: Self.date(v.now))
            #expect(String(decoding: plaintext, as: UTF8.self) == v.src)
        }
    }

    @Test("the specification's invalid vectors are all refused", arguments: vectors.invalid.map(\.desc!))
    func invalid(description: String) throws {
        let v = Self.vectors.invalid.first { $0.desc == description }!
        #expect(throws: SecurityError.self) {
            try Fernet.decrypt(v.token, key: Self.key(v.secret), ttl: v.ttl_sec, now: Self.date(v.now))
        }
    }

    @Test("a token made by Python's cryptography.fernet decrypts with its Fernet.generate_key() key")
    func pythonToken() throws {
        struct Fixture: Decodable { let key: String; let token: String; let plaintext_hex: String }
        let url = Bundle.module.url(forResource: "Fixtures/python-fernet", withExtension: "json")!
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        let plaintext = try Fernet.decrypt(fixture.token, key: Self.key(fixture.key))
        let expected = stride(from: 0, to: fixture.plaintext_hex.count, by: 2).map { i -> UInt8 in
            let start = fixture.plaintext_hex.index(fixture.plaintext_hex.startIndex, offsetBy: i)
            return UInt8(fixture.plaintext_hex[start..<fixture.plaintext_hex.index(start, offsetBy: 2)], radix: 16)!
        }
        #expect(plaintext == expected)
        // A wrong key is an authentication error, not garbage.
        #expect(throws: SecurityError.self) { try Fernet.decrypt(fixture.token, key: DataKey.generate()) }
    }

    @Test("round trip with a random IV; a flipped byte is refused")
    func roundTrip() throws {
        let key = DataKey.generate()
        let message = Array("attack at dawn".utf8)
        let token = try Fernet.encrypt(message, key: key)
        #expect(try Fernet.decrypt(token, key: key, ttl: 60) == message)
        var bytes = Base64.urlSafeDecode(token)!
        bytes[30] ^= 1
        #expect(throws: SecurityError.self) { try Fernet.decrypt(Base64.urlSafeEncode(bytes), key: key) }
    }
}

/// True if `python3` with the `cryptography` package is on this machine.
let pythonCryptographyAvailable: Bool = {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", "import cryptography.fernet"]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}()

@Suite("Fernet interoperability with Python")
struct FernetPythonTests {
    @Test("Python's cryptography.fernet decrypts a token Bulwark made", .enabled(if: pythonCryptographyAvailable))
    func pythonDecryptsBulwark() throws {
        let key = DataKey.generate()
        let message = Array("made by Bulwark \u{1F6E1}".utf8)
        let token = try Fernet.encrypt(message, key: key)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import sys; from cryptography.fernet import Fernet; "
                             + "sys.stdout.buffer.write(Fernet(sys.argv[1].encode()).decrypt(sys.argv[2].encode(), ttl=60))",
                             key.text, token]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect([UInt8](data) == message)
    }
}

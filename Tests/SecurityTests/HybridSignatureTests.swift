import Crypto
import Foundation
import BulwarkSecurity
import Testing
import _TestSupport

@Suite("Manifest signatures: Ed25519, P-256, ML-DSA-65 and the Ed25519 + ML-DSA-65 hybrid")
struct HybridSignatureTests {
    func signedManifest(_ algorithm: SigningAlgorithm, _ name: String = #function) throws -> (directory: String, key: SigningPrivateKey) {
        let directory = TestSupport.temporaryDirectory(name + algorithm.optionName)
        try Data("weights".utf8).write(to: URL(fileURLWithPath: directory + "/model.bin"))
        let keys = try SigningKeys.generate(into: directory + "/.keys", algorithm: algorithm)
        let key = try SigningKeys.loadPrivateKey(keys.privateKey)
        #expect(key.algorithm == algorithm)
        #expect(try SigningKeys.loadPublicKey(keys.publicKey).sameKey(as: key.publicKey))
        var manifest = try Manifest.create(directory: directory)
        try manifest.sign(with: key)
        try manifest.write(directory: directory)
        return (directory, key)
    }

    /// Rewrites the manifest's signature block.
    func editSignature(_ directory: String, _ edit: (inout Manifest.Signature) -> Void) throws {
        var manifest = try Manifest.load(directory: directory)!
        edit(&manifest.signature!)
        try manifest.write(directory: directory)
    }

    @Test("every algorithm: keys from bulwark keys generate sign a manifest that verifies with the trusted key; another key or an edit is refused",
          arguments: SigningAlgorithm.allCases)
    func roundTrip(algorithm: SigningAlgorithm) throws {
        let (directory, key) = try signedManifest(algorithm)
        let result = try Manifest.load(directory: directory)!.verify(directory: directory, trustedKey: key.publicKey)
        #expect(result.ok && result.signer == key.publicKey.fingerprint)
        let stranger = try SigningPrivateKey.generate(algorithm).publicKey
        #expect(throws: SecurityError.self) { try Manifest.load(directory: directory)!.verify(directory: directory, trustedKey: stranger) }
        var edited = try Manifest.load(directory: directory)!
        edited.files["model.bin"]!.size += 1
        try edited.write(directory: directory)
        let error = #expect(throws: SecurityError.self) { try Manifest.load(directory: directory)!.verify(directory: directory, trustedKey: nil) }
        #expect("\(error!)".contains("modified after signing"))
    }

    @Test("sizes: Ed25519 32/64 bytes, P-256 65/64, ML-DSA-65 1,952/3,309, the hybrid the sum of Ed25519's and ML-DSA-65's")
    func sizes() throws {
        let expected: [SigningAlgorithm: (publicKey: Int, signature: Int)] = [
            .ed25519: (32, 64), .p256: (65, 64), .mldsa65: (1952, 3309), .hybrid: (1984, 3373),
        ]
        for algorithm in SigningAlgorithm.allCases {
            let key = try SigningPrivateKey.generate(algorithm)
            #expect(key.publicKey.rawRepresentation.count == expected[algorithm]!.publicKey)
            #expect(try key.signature(for: Array("m".utf8)).count == expected[algorithm]!.signature)
        }
    }

    @Test("a hybrid signature needs both halves: a broken Ed25519 half or a broken ML-DSA half is refused")
    func bothHalves() throws {
        let (directory, key) = try signedManifest(.hybrid)
        let original = try Manifest.load(directory: directory)!.signature!
        for offset in [10, 64 + 100] {
            try editSignature(directory) { signature in
                var value = Data(base64Encoded: original.value)!
                value[offset] ^= 1
                signature.value = value.base64EncodedString()
            }
            #expect(throws: SecurityError.self, "flipped byte \(offset)") {
                try Manifest.load(directory: directory)!.verify(directory: directory, trustedKey: key.publicKey)
            }
        }
    }

    @Test("downgrade: the hybrid's Ed25519 half passed off as a plain Ed25519 signature is refused, and a hybrid key accepts only hybrid signatures")
    func noDowngrade() throws {
        let (directory, key) = try signedManifest(.hybrid)
        guard case .hybrid(let classical, _) = key else { Issue.record("not a hybrid key"); return }
        let original = try Manifest.load(directory: directory)!.signature!
        try editSignature(directory) { signature in
            signature.algorithm = "ed25519"
            signature.publicKey = Data(base64Encoded: original.publicKey)!.prefix(32).base64EncodedString()
            signature.value = Data(base64Encoded: original.value)!.prefix(64).base64EncodedString()
        }
        // The half was made over the hybrid's labelled message, so it is not an Ed25519 signature of the manifest.
        let stripped = #expect(throws: SecurityError.self) { try Manifest.load(directory: directory)!.verify(directory: directory, trustedKey: nil) }
        #expect("\(stripped!)".contains("modified after signing"))

        // The same Ed25519 key signing alone is refused under the trusted hybrid key.
        var manifest = try Manifest.load(directory: directory)!
        try manifest.sign(with: .ed25519(classical))
        try manifest.write(directory: directory)
        let downgraded = #expect(throws: SecurityError.self) {
            try Manifest.load(directory: directory)!.verify(directory: directory, trustedKey: key.publicKey)
        }
        #expect("\(downgraded!)".contains("not by the trusted key") && "\(downgraded!)".contains("(ed25519+ml-dsa-65)"))
    }

    @Test("key files: an unknown algorithm, a PEM key or a truncated hybrid key is refused, naming the problem")
    func badKeyFiles() throws {
        let directory = TestSupport.temporaryDirectory()
        let path = directory + "/k.pub"
        try Data(#"{"algorithm": "rsa", "public_key": "AAAA"}"#.utf8).write(to: URL(fileURLWithPath: path))
        var error = #expect(throws: SecurityError.self) { try SigningKeys.loadPublicKey(path) }
        #expect("\(error!)".contains("'rsa' is not one of"))
        try Data("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".utf8).write(to: URL(fileURLWithPath: path))
        error = #expect(throws: SecurityError.self) { try SigningKeys.loadPublicKey(path) }
        #expect("\(error!)".contains("OMS"))
        let full = try SigningPrivateKey.generate(.hybrid).publicKey.rawRepresentation
        try Data(#"{"algorithm": "ed25519+ml-dsa-65", "public_key": "\#(full.prefix(1000).base64EncodedString())"}"#.utf8).write(to: URL(fileURLWithPath: path))
        error = #expect(throws: SecurityError.self) { try SigningKeys.loadPublicKey(path) }
        #expect("\(error!)".contains("no valid ed25519+ml-dsa-65 public key"))
    }
}

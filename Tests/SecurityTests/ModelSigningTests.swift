import Crypto
import Foundation
import NeuralNet
import BulwarkSecurity
import Testing
import _TestSupport

/// A small model directory: two files at the top, one below, a top-level .gitignore (left out by default).
func makeModelDirectory(_ name: String = #function) throws -> String {
    let directory = TestSupport.temporaryDirectory(name) + "/model"
    try FileManager.default.createDirectory(atPath: directory + "/sub", withIntermediateDirectories: true)
    try Data("{\"layers\": [784, 10]}".utf8).write(to: URL(fileURLWithPath: directory + "/config.json"))
    try Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }).write(to: URL(fileURLWithPath: directory + "/weights.bin"))
    try Data("tokens\n".utf8).write(to: URL(fileURLWithPath: directory + "/sub/vocab.txt"))
    try Data("*.tmp\n".utf8).write(to: URL(fileURLWithPath: directory + "/.gitignore"))
    return directory
}

func rewrite(_ path: String, _ edit: (inout Data) -> Void) throws {
    var data = try Data(contentsOf: URL(fileURLWithPath: path))
    edit(&data)
    try data.write(to: URL(fileURLWithPath: path))
}

/// Re-encodes a bundle after `edit` changes its JSON object.
func editBundle(_ path: String, _ edit: (inout [String: Any]) -> Void) throws {
    var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    edit(&object)
    try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
}

/// Flips one bit of the bundle's DER signature, `fromEnd` bytes before its end.
func flipSignatureByte(_ path: String, fromEnd: Int) throws {
    try editBundle(path) { bundle in
        var envelope = bundle["dsseEnvelope"] as! [String: Any]
        var signatures = envelope["signatures"] as! [[String: Any]]
        var der = Data(base64Encoded: signatures[0]["sig"] as! String)!
        der[der.count - fromEnd] ^= 1
        signatures[0]["sig"] = der.base64EncodedString()
        envelope["signatures"] = signatures
        bundle["dsseEnvelope"] = envelope
    }
}

/// Replaces the bundle's payload by `edit(statement)`, keeping the old signature.
func editPayload(_ path: String, _ edit: (inout [String: Any]) -> Void) throws {
    try editBundle(path) { bundle in
        var envelope = bundle["dsseEnvelope"] as! [String: Any]
        var statement = try! JSONSerialization.jsonObject(with: Data(base64Encoded: envelope["payload"] as! String)!) as! [String: Any]
        edit(&statement)
        envelope["payload"] = try! JSONSerialization.data(withJSONObject: statement).base64EncodedString()
        bundle["dsseEnvelope"] = envelope
    }
}

@Suite("OpenSSF Model Signing (OMS v1.0) with ECDSA keys")
struct ModelSigningTests {
    let key = ECDSAPrivateKey.p256(P256.Signing.PrivateKey())

    @Test("sign then verify on P-256, P-384 and P-521: every file listed in the reference tool's order, git paths and the signature left out")
    func roundTrip() throws {
        for key in [ECDSAPrivateKey.p256(.init()), .p384(.init()), .p521(.init())] {
            let model = try makeModelDirectory()
            let signature = model + "/model.sig"
            let statement = try ModelSigning.sign(model: model, key: key, signaturePath: signature)
            #expect(statement.resources.map(\.name) == ["config.json", "sub/vocab.txt", "weights.bin"])
            #expect(statement.serialization.ignorePaths == [".git", ".gitattributes", ".github", ".gitignore", "model.sig"])
            #expect(statement.rootDigest == ModelSerialization.rootDigest(of: statement.resources))
            let result = try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey)
            #expect(result.ok && result.verified.count == 3)
        }
    }

    @Test("the bundle has exactly the reference tool's fields; the signature is DER over DSSE's PAE; the hint is the SHA-256 of the PEM key")
    func bundleShape() throws {
        let model = try makeModelDirectory()
        try ModelSigning.sign(model: model, key: key, signaturePath: model + "/model.sig")
        let bundle = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model + "/model.sig"))) as! [String: Any]
        #expect(Set(bundle.keys) == ["mediaType", "verificationMaterial", "dsseEnvelope"])
        #expect(bundle["mediaType"] as? String == "application/vnd.dev.sigstore.bundle.v0.3+json")
        let material = bundle["verificationMaterial"] as! [String: Any]
        #expect((material["publicKey"] as? [String: String]) == ["hint": key.publicKey.hint])
        #expect((material["tlogEntries"] as? [Any])?.isEmpty == true)
        let envelope = bundle["dsseEnvelope"] as! [String: Any]
        let signatures = envelope["signatures"] as! [[String: String]]
        #expect(signatures.count == 1 && signatures[0]["keyid"] == "")
        let payload = Data(base64Encoded: envelope["payload"] as! String)!
        let pae = Data("DSSEv1 28 application/vnd.in-toto+json \(payload.count) ".utf8) + payload
        let der = Data(base64Encoded: signatures[0]["sig"]!)!
        #expect(der.first == 0x30)
        guard case .p256(let publicKey) = key.publicKey else { return }
        #expect(publicKey.isValidSignature(try P256.Signing.ECDSASignature(derRepresentation: der), for: pae))
        // The hint: SHA-256 of the PEM text with 64-character lines and a final newline.
        #expect(key.publicKey.pemText.hasSuffix("\n-----END PUBLIC KEY-----\n"))
        #expect(key.publicKey.hint == SHA256.hash(data: Data(key.publicKey.pemText.utf8)).map { String(format: "%02x", $0) }.joined())
    }

    @Test("a changed byte, an added file, a deleted file fail verification, naming each file")
    func tamperedModel() throws {
        let model = try makeModelDirectory()
        let signature = model + "/model.sig"
        try ModelSigning.sign(model: model, key: key, signaturePath: signature)
        try rewrite(model + "/weights.bin") { $0[2500] ^= 1 }
        var result = try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey)
        #expect(!result.ok && result.mismatched.map(\.name) == ["weights.bin"])

        try rewrite(model + "/weights.bin") { $0[2500] ^= 1 }
        try Data("new".utf8).write(to: URL(fileURLWithPath: model + "/sub/extra.py"))
        result = try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey)
        #expect(!result.ok && result.unsigned == ["sub/extra.py"] && result.mismatched.isEmpty)
        #expect(try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey, ignoreUnsignedFiles: true).ok)
        #expect(try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey, ignorePaths: ["sub/extra.py"]).ok)

        try FileManager.default.removeItem(atPath: model + "/sub/extra.py")
        try FileManager.default.removeItem(atPath: model + "/config.json")
        result = try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey)
        #expect(!result.ok && result.missing == ["config.json"])
    }

    @Test("an edited bundle is refused: a digest in the payload, a signature byte, the hint, another key, an unknown field, a certificate")
    func tamperedBundle() throws {
        let model = try makeModelDirectory()
        let signature = model + "/model.sig"
        try ModelSigning.sign(model: model, key: key, signaturePath: signature)
        let original = try Data(contentsOf: URL(fileURLWithPath: signature))
        func refused(_ fragment: String, _ edit: () throws -> Void) throws {
            try original.write(to: URL(fileURLWithPath: signature))
            try edit()
            let error = #expect(throws: SecurityError.self) {
                try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey)
            }
            #expect("\(error.map { "\($0)" } ?? "")".contains(fragment), "expected '\(fragment)' in \(String(describing: error))")
        }
        try refused("does not verify") {
            try editPayload(signature) { statement in
                var predicate = statement["predicate"] as! [String: Any]
                var resources = predicate["resources"] as! [[String: Any]]
                resources[0]["digest"] = String(repeating: "0", count: 64)
                predicate["resources"] = resources
                statement["predicate"] = predicate
            }
        }
        try refused("does not verify") {
            try flipSignatureByte(signature, fromEnd: 3)
        }
        try refused("not the trusted key") {
            try editBundle(signature) { $0["verificationMaterial"] = ["publicKey": ["hint": String(repeating: "ab", count: 32)], "tlogEntries": []] }
        }
        try refused("unknown field") { try editBundle(signature) { $0["extra"] = 1 } }
        try refused("certificate") {
            try editBundle(signature) { $0["verificationMaterial"] = ["certificate": ["rawBytes": "AA=="], "tlogEntries": []] }
        }
        try refused("exactly one signature") {
            try editBundle(signature) { bundle in
                var envelope = bundle["dsseEnvelope"] as! [String: Any]
                let signatures = envelope["signatures"] as! [[String: Any]]
                envelope["signatures"] = signatures + signatures
                bundle["dsseEnvelope"] = envelope
            }
        }
        try refused("empty") { try Data().write(to: URL(fileURLWithPath: signature)) }
        try refused("not valid JSON") { try Data("{\"mediaType\": 1, \"mediaType\": 2}".utf8).write(to: URL(fileURLWithPath: signature)) }

        // Another signer's key: the hint names it, and without a hint the signature fails.
        let stranger = ECDSAPrivateKey.p256(.init()).publicKey
        try original.write(to: URL(fileURLWithPath: signature))
        #expect(throws: SecurityError.self) { try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: stranger) }
        try editBundle(signature) { $0["verificationMaterial"] = ["publicKey": [String: String](), "tlogEntries": []] }
        #expect(throws: SecurityError.self) { try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: stranger) }
        #expect(try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey).ok)
    }

    @Test("a statement re-signed by the key holder is still checked: a root digest that does not match the resources, a wrong predicate type")
    func inconsistentStatement() throws {
        let model = try makeModelDirectory()
        let signature = model + "/model.sig"
        try ModelSigning.sign(model: model, key: key, signaturePath: signature)
        func resign(_ edit: (inout [String: Any]) -> Void) throws { try self.resign(signature, edit) }
        try resign { statement in statement["subject"] = [["name": "model", "digest": ["sha256": String(repeating: "1", count: 64)]]] }
        var error = #expect(throws: SecurityError.self) { try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey) }
        #expect("\(error!)".contains("not the digest of its resources"))

        try ModelSigning.sign(model: model, key: key, signaturePath: signature)
        try resign { statement in statement["predicateType"] = "https://example.com/wrong-predicate/v1.0" }
        error = #expect(throws: SecurityError.self) { try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey) }
        #expect("\(error!)".contains("predicate type"))

        try ModelSigning.sign(model: model, key: key, signaturePath: signature)
        try resign { statement in
            var predicate = statement["predicate"] as! [String: Any]
            var resources = predicate["resources"] as! [[String: Any]]
            resources[0]["name"] = "../outside"
            predicate["resources"] = resources
            statement["predicate"] = predicate
        }
        error = #expect(throws: SecurityError.self) { try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey) }
        #expect("\(error!)".contains("not a plain relative path"))
    }

    @Test("shard serialization: ranges of the shard size named path:start:end; verifies, and a changed byte fails only its shard")
    func shards() throws {
        let model = try makeModelDirectory()
        let signature = model + "/model.sig"
        let statement = try ModelSigning.sign(model: model, key: key, serialization: .init(method: .shards(size: 2048)), signaturePath: signature)
        #expect(statement.resources.map(\.name) == ["config.json:0:21", "sub/vocab.txt:0:7", "weights.bin:0:2048", "weights.bin:2048:4096", "weights.bin:4096:5000"])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: model + "/weights.bin"))
        #expect(statement.resources[3].digest == SHA256.hash(data: bytes[2048..<4096]).map { String(format: "%02x", $0) }.joined())
        #expect(try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey).ok)
        try rewrite(model + "/weights.bin") { $0[3000] ^= 1 }
        let result = try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey)
        #expect(result.mismatched.map(\.name) == ["weights.bin:2048:4096"])
    }

    /// Replaces the bundle's statement by `edit(statement)` and signs it again with `key`.
    func resign(_ signature: String, _ edit: (inout [String: Any]) -> Void) throws {
        try editPayload(signature, edit)
        var bundle = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: signature))) as! [String: Any]
        var envelope = bundle["dsseEnvelope"] as! [String: Any]
        let payload = Data(base64Encoded: envelope["payload"] as! String)!
        let der = try key.signature(for: SigstoreBundle.preAuthenticationEncoding(payload: payload))
        envelope["signatures"] = [["sig": der.base64EncodedString(), "keyid": ""]]
        bundle["dsseEnvelope"] = envelope
        try JSONSerialization.data(withJSONObject: bundle).write(to: URL(fileURLWithPath: signature))
    }

    @Test("a single-file model is the resource '.'; a signature naming it by its base name (as the spec says) verifies too")
    func singleFile() throws {
        let model = try makeModelDirectory() + "/weights.bin"
        let signature = model + ".sig"
        let statement = try ModelSigning.sign(model: model, key: key, signaturePath: signature)
        #expect(statement.resources.map(\.name) == ["."] && statement.serialization.ignorePaths.isEmpty)
        #expect(try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey).ok)
        try resign(signature) { statement in
            var predicate = statement["predicate"] as! [String: Any]
            var resources = predicate["resources"] as! [[String: Any]]
            resources[0]["name"] = "weights.bin"
            predicate["resources"] = resources
            statement["predicate"] = predicate
        }
        let byName = try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey)
        #expect(byName.ok && byName.verified == ["weights.bin"])
        try rewrite(model) { $0[0] ^= 1 }
        #expect(try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey).mismatched.map(\.name) == ["weights.bin"])
    }

    @Test("names are compared as bytes: a file whose name is canonically equivalent to a signed one (NFC/NFD, KELVIN SIGN) is an unsigned file, not the signed one")
    func unicodeEquivalentNames() throws {
        let model = try makeModelDirectory()
        try Data("real".utf8).write(to: URL(fileURLWithPath: model + "/Kernel.bin"))
        try Data("caf\u{E9}".utf8).write(to: URL(fileURLWithPath: model + "/caf\u{E9}.bin"))
        let signature = model + "/model.sig"
        try ModelSigning.sign(model: model, key: key, signaturePath: signature)
        // KELVIN SIGN (U+212A) + "ernel.bin", and "cafe" + COMBINING ACUTE: different bytes, equal Swift Strings.
        try Data("evil".utf8).write(to: URL(fileURLWithPath: model + "/\u{212A}ernel.bin"))
        try Data("evil".utf8).write(to: URL(fileURLWithPath: model + "/cafe\u{301}.bin"))
        let result = try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey)
        #expect(!result.ok && result.unsigned.count == 2 && result.mismatched.isEmpty && result.missing.isEmpty)
        #expect(result.verified.contains("Kernel.bin") && result.verified.contains("caf\u{E9}.bin"))
    }

    @Test("shards: data appended to a signed file fails even with ignoreUnsignedFiles; an empty unlisted file is refused by the loader")
    func appendedShard() throws {
        let model = try makeModelDirectory()
        try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: model + "/w.bin"))
        let signature = model + "/model.sig"
        try ModelSigning.sign(model: model, key: key, serialization: .init(method: .shards(size: 4096)), signaturePath: signature)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: model + "/w.bin"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("MALICIOUS".utf8))
        try handle.close()
        let result = try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key.publicKey, ignoreUnsignedFiles: true)
        #expect(!result.ok && result.mismatched.map(\.name) == ["w.bin:4096:4105"])

        try Data().write(to: URL(fileURLWithPath: model + "/empty.safetensors"))
        let error = #expect(throws: SecurityError.self) {
            try VerifyingFileLoader(modelSigningKey: key.publicKey).load(model + "/empty.safetensors", limit: 1 << 20)
        }
        #expect("\(error!)".contains("is empty"))
    }

    @Test("symbolic links are refused unless allowed; allowed, a link to a file is hashed through under its own name")
    func symlinks() throws {
        let model = try makeModelDirectory()
        try FileManager.default.createSymbolicLink(atPath: model + "/alias.bin", withDestinationPath: "weights.bin")
        let error = #expect(throws: SecurityError.self) { try ModelSigning.sign(model: model, key: key, signaturePath: model + "/model.sig") }
        #expect("\(error!)".contains("--allow-symlinks"))
        let statement = try ModelSigning.sign(model: model, key: key, serialization: .init(allowSymlinks: true), signaturePath: model + "/model.sig")
        let digests = Dictionary(uniqueKeysWithValues: statement.resources.map { ($0.name, $0.digest) })
        #expect(digests["alias.bin"] == digests["weights.bin"])
        #expect(try ModelSigning.verify(model: model, signaturePath: model + "/model.sig", trustedKey: key.publicKey).ok)
        // A link to a directory or to a device is never hashed through: refused, even when links are allowed.
        for (name, target) in [("linked-dir", model + "/sub"), ("null", "/dev/null")] {
            try FileManager.default.createSymbolicLink(atPath: model + "/" + name, withDestinationPath: target)
            let refused = #expect(throws: SecurityError.self) {
                try ModelSigning.verify(model: model, signaturePath: model + "/model.sig", trustedKey: key.publicKey)
            }
            #expect("\(refused!)".contains("symbolic link to"))
            try FileManager.default.removeItem(atPath: model + "/" + name)
        }
    }

    @Test("the verifying loader accepts a file listed in an OMS signature beside it, and refuses a changed, unlisted or unsigned one")
    func verifyingLoader() throws {
        let model = try makeModelDirectory()
        try ModelFile.save(Sequential(spec: try ModelSpec.parse("784-8-10"), seed: 1), to: model + "/net.safetensors")
        let loader = VerifyingFileLoader(modelSigningKey: key.publicKey)
        let missing = #expect(throws: SecurityError.self) { try ModelFile.load(contentsOf: model + "/net.safetensors", loader: loader) }
        #expect("\(missing!)".contains("bulwark sign"))
        try ModelSigning.sign(model: model, key: key, signaturePath: model + "/model.sig")
        _ = try ModelFile.load(contentsOf: model + "/net.safetensors", loader: loader)

        let stranger = VerifyingFileLoader(modelSigningKey: ECDSAPrivateKey.p384(.init()).publicKey)
        #expect(throws: SecurityError.self) { try ModelFile.load(contentsOf: model + "/net.safetensors", loader: stranger) }

        try ModelFile.save(Sequential(spec: try ModelSpec.parse("784-8-10"), seed: 2), to: model + "/other.safetensors")
        let unlisted = #expect(throws: SecurityError.self) { try ModelFile.load(contentsOf: model + "/other.safetensors", loader: loader) }
        #expect("\(unlisted!)".contains("does not list other.safetensors"))

        try rewrite(model + "/net.safetensors") { $0[4000] ^= 1 }
        let changed = #expect(throws: SecurityError.self) { try ModelFile.load(contentsOf: model + "/net.safetensors", loader: loader) }
        guard case .digestMismatch = changed else { Issue.record("expected a digest mismatch, got \(String(describing: changed))"); return }

        // Shard signatures are checked shard by shard.
        try ModelFile.save(Sequential(spec: try ModelSpec.parse("784-8-10"), seed: 1), to: model + "/net.safetensors")
        try ModelSigning.sign(model: model, key: key, serialization: .init(method: .shards(size: 4096)), signaturePath: model + "/model.sig")
        _ = try ModelFile.load(contentsOf: model + "/net.safetensors", loader: loader)
        try rewrite(model + "/net.safetensors") { $0[5000] ^= 1 }
        #expect(throws: SecurityError.self) { try ModelFile.load(contentsOf: model + "/net.safetensors", loader: loader) }
    }
}

import Crypto
import Foundation
import BulwarkSecurity
import Testing
import _TestSupport

/// The committed OMS fixtures: `oms/` made by `model_signing` 1.1.1 (scripts/make-oms-fixtures.py),
/// `oms-spec-vectors/` and `oms-legacy/` copied from ossf/model-signing-spec and
/// sigstore/model-transparency (see their PROVENANCE.md).
enum OMSFixtures {
    static let root = Bundle.module.resourceURL!.appendingPathComponent("Fixtures").path

    static func path(_ relative: String) -> String { root + "/" + relative }

    static func publicKey(_ relative: String) throws -> ECDSAPublicKey { try ECDSAPublicKey.load(path(relative)) }

    /// A fixture's private key; the committed file is world-readable, so it is parsed directly
    /// rather than through `load`, which refuses such files.
    static func privateKey(_ relative: String) throws -> ECDSAPrivateKey {
        try ECDSAPrivateKey(pem: String(contentsOfFile: path(relative), encoding: .utf8), source: relative)
    }

    /// A writable copy of a fixture directory (or file) and its signature.
    static func copy(_ model: String, signature: String, _ name: String = #function) throws -> (model: String, signature: String) {
        let directory = TestSupport.temporaryDirectory(name)
        let modelCopy = directory + "/" + URL(fileURLWithPath: model).lastPathComponent
        try FileManager.default.copyItem(atPath: path(model), toPath: modelCopy)
        try FileManager.default.copyItem(atPath: path(signature), toPath: directory + "/model.sig")
        return (modelCopy, directory + "/model.sig")
    }
}

/// True if the reference tool `model_signing` (PyPI `model-signing`) runs here.
let pythonModelSigningAvailable: Bool = {
    (try? runPython(["-m", "model_signing", "--version"]).status) == 0
}()

/// Runs `python3 ARGS`, returning the exit status and what it printed.
func runPython(_ arguments: [String], in directory: String? = nil) throws -> (status: Int32, output: String) {
    try TestSupport.run(["python3"] + arguments, in: directory)
}

@Suite("OMS interoperability: the reference tool's signatures, the spec's test vectors")
struct ModelSigningInteropTests {
    @Test("directories and a file signed by model_signing sign key verify in Bulwark (P-256, P-384, ignore_paths, '.')")
    func referenceSignaturesVerify() throws {
        let p256 = try ModelSigning.verify(model: OMSFixtures.path("oms/model-p256"), signaturePath: OMSFixtures.path("oms/model-p256.sig"),
                                           trustedKey: OMSFixtures.publicKey("oms/keys/p256-public.pem"))
        #expect(p256.ok && p256.verified == [".hidden", "config.json", "sub/tokenizer.txt", "sub.txt", "weights.bin"])
        let p384 = try ModelSigning.verify(model: OMSFixtures.path("oms/model-p384"), signaturePath: OMSFixtures.path("oms/model-p384.sig"),
                                           trustedKey: OMSFixtures.publicKey("oms/keys/p384-public.pem"))
        #expect(p384.ok && p384.statement.serialization.ignorePaths.contains("ignore-me"))
        let single = try ModelSigning.verify(model: OMSFixtures.path("oms/single-file/weights.bin"), signaturePath: OMSFixtures.path("oms/single-file.sig"),
                                             trustedKey: OMSFixtures.publicKey("oms/keys/p256-public.pem"))
        #expect(single.ok && single.verified == ["."])
        // The P-256 key does not verify the P-384 signature.
        #expect(throws: SecurityError.self) {
            try ModelSigning.verify(model: OMSFixtures.path("oms/model-p384"), signaturePath: OMSFixtures.path("oms/model-p384.sig"),
                                    trustedKey: OMSFixtures.publicKey("oms/keys/p256-public.pem"))
        }
    }

    @Test("Bulwark serializes the reference tool's model exactly: same names, order, digests and root digest")
    func sameSerialization() throws {
        let reference = try ModelSigning.checkSignature(bundle: Array(Data(contentsOf: URL(fileURLWithPath: OMSFixtures.path("oms/model-p256.sig")))),
                                                        source: "model-p256.sig", trustedKey: OMSFixtures.publicKey("oms/keys/p256-public.pem"))
        let copy = try OMSFixtures.copy("oms/model-p256", signature: "oms/model-p256.sig")
        let ours = try ModelSigning.sign(model: copy.model, key: OMSFixtures.privateKey("oms/keys/p256-private.pem"), signaturePath: copy.signature)
        #expect(ours.resources == reference.resources)
        #expect(ours.rootDigest == reference.rootDigest && ours.rootDigest == "5db4b5617c1ef66c994b6d07d31693482c0267db9195386ccf51fa4f82609f9d")
        #expect(try OMSFixtures.publicKey("oms/keys/p256-public.pem").hint == "c706943d207ed73db7570cd1eaf5ce190a8ead95d702f0302de316c429fd9d86")
    }

    @Test("a reference-signed model with a changed byte, an added or a deleted file is refused")
    func referenceSignaturesTampered() throws {
        let key = try OMSFixtures.publicKey("oms/keys/p256-public.pem")
        var copy = try OMSFixtures.copy("oms/model-p256", signature: "oms/model-p256.sig")
        try rewrite(copy.model + "/weights.bin") { $0[7] ^= 0x80 }
        #expect(try ModelSigning.verify(model: copy.model, signaturePath: copy.signature, trustedKey: key).mismatched.map(\.name) == ["weights.bin"])
        copy = try OMSFixtures.copy("oms/model-p256", signature: "oms/model-p256.sig", "added")
        try Data("x".utf8).write(to: URL(fileURLWithPath: copy.model + "/sub/new.txt"))
        #expect(try ModelSigning.verify(model: copy.model, signaturePath: copy.signature, trustedKey: key).unsigned == ["sub/new.txt"])
        copy = try OMSFixtures.copy("oms/model-p256", signature: "oms/model-p256.sig", "deleted")
        try FileManager.default.removeItem(atPath: copy.model + "/.hidden")
        #expect(try ModelSigning.verify(model: copy.model, signaturePath: copy.signature, trustedKey: key).missing == [".hidden"])
    }

    @Test("spec test vectors: the valid key bundle verifies; every invalid one is refused, naming why")
    func specVectors() throws {
        let key = try OMSFixtures.publicKey("oms-spec-vectors/signing-key-pub.pem")
        #expect(key.hint == "e8450dec4eb99dae995da9af1bc2cc9f76ed669ee2e744f57abba763df3e3f8e")
        let valid = try ModelSigning.verify(model: OMSFixtures.path("oms-spec-vectors/model"),
                                            signaturePath: OMSFixtures.path("oms-spec-vectors/valid/key.bundle.json"), trustedKey: key)
        #expect(valid.ok && valid.verified == ["signme-1", "signme-2"])
        // What each vector exercises here: `missing-tlog-entries` and the valid certificate and Sigstore
        // vectors are refused as certificate bundles (Bulwark verifies key bundles only, like
        // `model_signing verify key`); `wrong-predicate` reuses the key vector's signature over a changed
        // payload, so it fails at the signature (the predicate check itself is tested in
        // ModelSigningTests.inconsistentStatement, on a statement re-signed by the key holder).
        let refusals = [
            "invalid/empty.bundle.json": "empty",
            "invalid/missing-envelope.bundle.json": "no dsseEnvelope",
            "invalid/missing-verification-material.bundle.json": "no verificationMaterial",
            "invalid/missing-tlog-entries.bundle.json": "certificate",
            "invalid-payload/wrong-predicate.bundle.json": "does not verify",
            "valid/certificate.bundle.json": "certificate",
            "valid/sigstore.bundle.json": "certificate",
        ]
        for (vector, reason) in refusals.sorted(by: { $0.key < $1.key }) {
            let error = #expect(throws: SecurityError.self, "\(vector)") {
                try ModelSigning.verify(model: OMSFixtures.path("oms-spec-vectors/model"),
                                        signaturePath: OMSFixtures.path("oms-spec-vectors/" + vector), trustedKey: key)
            }
            #expect(error.map { "\($0)".contains(reason) } == true, "\(vector): \(String(describing: error))")
        }
    }

    @Test("bundles of model_signing 1.0.1 (rawBytes key, keyid null) and 0.3.1 (a single file) verify")
    func legacyBundles() throws {
        let key = try OMSFixtures.publicKey("oms-legacy/signing-key-pub.pem")
        let v101 = try ModelSigning.verify(model: OMSFixtures.path("oms-legacy/v1.0.1-elliptic-key"),
                                           signaturePath: OMSFixtures.path("oms-legacy/v1.0.1-elliptic-key/model.sig"),
                                           trustedKey: key, ignorePaths: ["ignore-me"])
        #expect(v101.ok && v101.verified == ["signme-1", "signme-2"])
        let v031 = try ModelSigning.verify(model: OMSFixtures.path("oms-legacy/v0.3.1-elliptic-key/signme-1"),
                                           signaturePath: OMSFixtures.path("oms-legacy/v0.3.1-elliptic-key/model.sig"), trustedKey: key)
        #expect(v031.ok && v031.verified == ["."])
        // The embedded key must be the trusted one.
        let stranger = ECDSAPrivateKey.p384(.init()).publicKey
        let error = #expect(throws: SecurityError.self) {
            try ModelSigning.verify(model: OMSFixtures.path("oms-legacy/v0.3.1-elliptic-key/signme-1"),
                                    signaturePath: OMSFixtures.path("oms-legacy/v0.3.1-elliptic-key/model.sig"), trustedKey: stranger)
        }
        #expect("\(error!)".contains("other than the trusted key"))
    }

    @Test("model_signing verify key accepts what Bulwark signs, and refuses it after a changed byte, an added file or an edited bundle",
          .enabled(if: pythonModelSigningAvailable))
    func pythonVerifiesBulwark() throws {
        let key = try OMSFixtures.privateKey("oms/keys/p384-private.pem")
        let model = try makeModelDirectory()
        let directory = URL(fileURLWithPath: model).deletingLastPathComponent().path
        let signature = directory + "/model.sig", publicKey = OMSFixtures.path("oms/keys/p384-public.pem")
        func pythonVerify() throws -> (status: Int32, output: String) {
            try runPython(["-m", "model_signing", "verify", "key", model, "--signature", signature, "--public_key", publicKey], in: directory)
        }
        for serialization in [ModelSerialization(), ModelSerialization(ignorePaths: ["sub/vocab.txt"])] {
            try ModelSigning.sign(model: model, key: key, serialization: serialization, signaturePath: signature)
            let accepted = try pythonVerify()
            #expect(accepted.status == 0, "\(accepted.output)")
        }
        // A signature inside the model is left out by both.
        try ModelSigning.sign(model: model, key: key, signaturePath: model + "/model.sig")
        let inside = try runPython(["-m", "model_signing", "verify", "key", model, "--signature", model + "/model.sig", "--public_key", publicKey], in: directory)
        #expect(inside.status == 0, "\(inside.output)")

        try ModelSigning.sign(model: model, key: key, signaturePath: signature)
        try rewrite(model + "/weights.bin") { $0[100] ^= 1 }
        var refused = try pythonVerify()
        #expect(refused.status == 1 && refused.output.contains("Hash mismatch"), "\(refused.output)")
        try rewrite(model + "/weights.bin") { $0[100] ^= 1 }
        #expect(try pythonVerify().status == 0)

        try Data("x".utf8).write(to: URL(fileURLWithPath: model + "/added.txt"))
        refused = try pythonVerify()
        #expect(refused.status == 1 && refused.output.contains("Extra files"), "\(refused.output)")
        try FileManager.default.removeItem(atPath: model + "/added.txt")

        try editPayload(signature) { statement in statement["subject"] = [["name": "model", "digest": ["sha256": String(repeating: "0", count: 64)]]] }
        refused = try pythonVerify()
        #expect(refused.status == 1, "\(refused.output)")
    }

    @Test("model_signing sign key output made now verifies in Bulwark, and a tampered copy is refused by both", .enabled(if: pythonModelSigningAvailable))
    func bulwarkVerifiesPython() throws {
        let model = try makeModelDirectory()
        let directory = URL(fileURLWithPath: model).deletingLastPathComponent().path
        let signature = directory + "/python.sig"
        let signed = try runPython(["-m", "model_signing", "sign", "key", model, "--private_key", OMSFixtures.path("oms/keys/p256-private.pem"),
                                    "--signature", signature, "--ignore-paths", model + "/sub"], in: directory)
        try #require(signed.status == 0, "\(signed.output)")
        let key = try OMSFixtures.publicKey("oms/keys/p256-public.pem")
        let result = try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key)
        #expect(result.ok && result.verified == ["config.json", "weights.bin"])
        try flipSignatureByte(signature, fromEnd: 1)
        #expect(throws: SecurityError.self) { try ModelSigning.verify(model: model, signaturePath: signature, trustedKey: key) }
        let python = try runPython(["-m", "model_signing", "verify", "key", model, "--signature", signature,
                                    "--public_key", OMSFixtures.path("oms/keys/p256-public.pem")], in: directory)
        #expect(python.status == 1)
    }
}

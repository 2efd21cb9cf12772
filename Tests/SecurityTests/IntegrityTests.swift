import Crypto
import Datasets
import Foundation
import NeuralNet
import BulwarkSecurity
import Testing
import _TestSupport

@Suite("Manifests, signatures and verified loading")
struct IntegrityTests {
    /// A directory with a model and a copy of the sample's test split, and a manifest of both.
    func fixture() throws -> String {
        let directory = TestSupport.temporaryDirectory()
        try ModelFile.save(Sequential(spec: try ModelSpec.parse("784-8-10"), seed: 1), to: directory + "/model.safetensors")
        for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
            try FileManager.default.copyItem(atPath: TestSupport.sampleDirectory + "/" + name, toPath: directory + "/" + name)
        }
        try Manifest.create(directory: directory).write(directory: directory)
        return directory
    }

    func flipByte(_ path: String, at offset: Int) throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[offset] ^= 0x01
        try data.write(to: URL(fileURLWithPath: path))
    }

    @Test("verified files load; one flipped byte in a model or a dataset is refused before parsing")
    func flippedByte() throws {
        let directory = try fixture()
        let loader = VerifyingFileLoader()
        _ = try ModelFile.load(contentsOf: directory + "/model.safetensors", loader: loader)
        #expect(try MNISTFormat.load(directory: directory, split: .test, loader: loader).count == 1000)

        // Flip a byte inside a weight: the file would still parse, so only the digest can catch it.
        try flipByte(directory + "/model.safetensors", at: 4000)
        let error = #expect(throws: SecurityError.self) { try ModelFile.load(contentsOf: directory + "/model.safetensors", loader: VerifyingFileLoader()) }
        guard case .digestMismatch(let path, let expected, let actual, _) = error else {
            Issue.record("expected a digest mismatch, got \(String(describing: error))")
            return
        }
        #expect(path.hasSuffix("model.safetensors") && expected != actual && "\(error!)".contains(actual))

        try flipByte(directory + "/t10k-labels-idx1-ubyte.gz", at: 100)
        #expect(throws: SecurityError.self) { try MNISTFormat.load(directory: directory, split: .test, loader: VerifyingFileLoader()) }
    }

    @Test("--expect-sha256 overrides the manifest; unverified files need --allow-unverified, which warns")
    func expectationsAndOptOut() throws {
        let directory = TestSupport.temporaryDirectory()
        let path = directory + "/model.safetensors"
        try ModelFile.save(Sequential(spec: try ModelSpec.parse("784-8-10"), seed: 1), to: path)
        #expect(throws: SecurityError.unverified(path: path)) { try ModelFile.load(contentsOf: path, loader: VerifyingFileLoader()) }
        let digest = try FileDigest.sha256(path: path)
        _ = try ModelFile.load(contentsOf: path, loader: VerifyingFileLoader(expectedDigests: [path: digest]))
        #expect(throws: SecurityError.self) {
            try ModelFile.load(contentsOf: path, loader: VerifyingFileLoader(expectedDigests: [path: String(repeating: "0", count: 64)]))
        }
        var warnings: [String] = []
        _ = try ModelFile.load(contentsOf: path, loader: VerifyingFileLoader(allowUnverified: true, warn: { warnings.append($0) }))
        #expect(warnings.count == 1 && warnings[0].contains("without verification"))
    }

    @Test("a signed manifest verifies; a wrong key, an unsigned manifest under a trusted key, or an edit after signing is refused")
    func signatures() throws {
        let directory = try fixture()
        let keys = try SigningKeys.generate(into: directory + "/.keys")
        let privateKey = try SigningKeys.loadPrivateKey(keys.privateKey)
        let trusted = privateKey.publicKey
        #expect(throws: SecurityError.self) { try Manifest.load(directory: directory)!.verify(directory: directory, trustedKey: trusted) }

        var manifest = try Manifest.load(directory: directory)!
        try manifest.sign(with: privateKey)
        try manifest.write(directory: directory)
        let result = try Manifest.load(directory: directory)!.verify(directory: directory, trustedKey: trusted)
        #expect(result.ok && result.signer == trusted.fingerprint && result.verified.count == 3)
        _ = try ModelFile.load(contentsOf: directory + "/model.safetensors", loader: VerifyingFileLoader(trustedKey: trusted))

        let stranger = try SigningPrivateKey.generate(.ed25519).publicKey
        #expect(throws: SecurityError.self) { try Manifest.load(directory: directory)!.verify(directory: directory, trustedKey: stranger) }
        #expect(throws: SecurityError.self) {
            try ModelFile.load(contentsOf: directory + "/model.safetensors", loader: VerifyingFileLoader(trustedKey: stranger))
        }

        // Someone swaps a digest in the signed manifest to match a tampered model.
        var edited = try Manifest.load(directory: directory)!
        edited.files["model.safetensors"]!.sha256 = String(repeating: "a", count: 64)
        try edited.write(directory: directory)
        let error = #expect(throws: SecurityError.self) { try Manifest.load(directory: directory)!.verify(directory: directory, trustedKey: nil) }
        #expect("\(error!)".contains("modified after signing"))
    }

    @Test("encrypted models load only with the key, decrypted in memory")
    func encryptedModel() throws {
        let directory = TestSupport.temporaryDirectory()
        let plain = directory + "/plain.safetensors", sealed = directory + "/model.safetensors"
        let network = Sequential(spec: try ModelSpec.parse("784-8-10"), seed: 4)
        try ModelFile.save(network, to: plain)
        let key = DataKey.generate()
        try DataEncryption.encrypt(plain, to: sealed, key: key, format: .container)
        try Manifest.record(sealed)
        let loaded = try ModelFile.load(contentsOf: sealed, loader: VerifyingFileLoader(dataKey: key))
        #expect(loaded.network.parameters.array == network.parameters.array)
        let missing = #expect(throws: SecurityError.self) { try ModelFile.load(contentsOf: sealed, loader: VerifyingFileLoader()) }
        #expect("\(missing!)".contains("--key-file"))
        #expect(throws: SecurityError.self) { try ModelFile.load(contentsOf: sealed, loader: VerifyingFileLoader(dataKey: DataKey.generate())) }
    }

    @Test("manifests with paths leaving the directory are refused")
    func hostileManifest() throws {
        let directory = TestSupport.temporaryDirectory()
        for name in ["../etc/passwd", "/etc/passwd", "a/../../b", ""] {
            let json = #"{"schema":"bulwark-manifest/1","files":{"\#(name)":{"sha256":"\#(String(repeating: "0", count: 64))","size":1}}}"#
            try json.write(toFile: Manifest.path(in: directory), atomically: true, encoding: .utf8)
            #expect(throws: SecurityError.self) { try Manifest.load(directory: directory) }
        }
        try "{".write(toFile: Manifest.path(in: directory), atomically: true, encoding: .utf8)
        #expect(throws: SecurityError.self) { try Manifest.load(directory: directory) }
    }
}

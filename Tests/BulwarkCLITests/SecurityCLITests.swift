import Foundation
import Testing
import _TestSupport

@Suite("bulwark manifest, keys and data", .serialized)
struct SecurityCLITests {
    let sample = ["--data-dir", TestSupport.sampleDirectory]

    /// Trains a tiny model into a fresh directory (train writes the manifest entry).
    func model() throws -> (directory: String, path: String) {
        let directory = TestSupport.temporaryDirectory()
        let path = directory + "/m.safetensors"
        let train = try CLIRun(["train", "--model", "784-8-10", "--epochs", "1", "--limit", "300", "--out", path] + sample)
        #expect(train.status == 0, "\(train.stderr)")
        return (directory, path)
    }

    @Test("train records its outputs; a flipped byte is refused naming both digests; --expect-sha256 works")
    func verifyBeforeLoad() throws {
        let (directory, path) = try model()
        let manifest = try String(contentsOfFile: directory + "/bulwark-manifest.json", encoding: .utf8)
        #expect(manifest.contains("m.safetensors") && manifest.contains("m.checkpoint.safetensors"))
        #expect(try CLIRun(["eval", path] + sample).status == 0)

        let digest = try CLIRun(["inspect", path, "--json"]).jsonLines.first?["sha256"] as? String ?? ""
        #expect(try CLIRun(["eval", path, "--expect-sha256", digest] + sample).status == 0)
        let wrong = try CLIRun(["eval", path, "--expect-sha256", String(repeating: "0", count: 64)] + sample)
        #expect(wrong.status == 2 && wrong.stderr.contains("--expect-sha256 expects 0000"))
        #expect(try CLIRun(["eval", path, "--expect-sha256", "xyz"] + sample).stderr.contains("is not a SHA-256 digest"))

        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[5000] ^= 0x01
        try data.write(to: URL(fileURLWithPath: path))
        let tampered = try CLIRun(["eval", path] + sample)
        #expect(tampered.status == 2)
        #expect(tampered.stderr.contains("refusing \(path): its SHA-256 is") && tampered.stderr.contains(digest))
        let verify = try CLIRun(["manifest", "verify", directory])
        #expect(verify.status != 0 && verify.stdout.contains("MISMATCH  m.safetensors"))
    }

    @Test("keys generate, manifest sign and verify with a trusted key; tampering with the signed manifest is refused")
    func signing() throws {
        let (directory, path) = try model()
        let keys = TestSupport.temporaryDirectory() + "/keys"
        #expect(try CLIRun(["keys", "generate", "--out", keys]).status == 0)
        let sign = try CLIRun(["manifest", "sign", directory, "--key", keys + "/bulwark-signing.key"])
        #expect(sign.status == 0, "\(sign.stderr)")
        let verify = try CLIRun(["manifest", "verify", directory, "--public-key", keys + "/bulwark-signing.pub"])
        #expect(verify.status == 0 && verify.stdout.contains("signature valid, trusted key"))
        #expect(try CLIRun(["inspect", path, "--public-key", keys + "/bulwark-signing.pub"]).status == 0)
        // The sample data's manifest is unsigned, so a trusted key refuses it.
        #expect(try CLIRun(["eval", path, "--public-key", keys + "/bulwark-signing.pub"] + sample).stderr.contains("is not signed"))

        let otherKeys = TestSupport.temporaryDirectory() + "/other"
        _ = try CLIRun(["keys", "generate", "--out", otherKeys])
        let untrusted = try CLIRun(["eval", path, "--public-key", otherKeys + "/bulwark-signing.pub"] + sample)
        #expect(untrusted.status == 2 && untrusted.stderr.contains("not by the trusted key"))

        let manifestPath = directory + "/bulwark-manifest.json"
        let edited = try String(contentsOfFile: manifestPath, encoding: .utf8).replacingOccurrences(of: "\"size\" : ", with: "\"size\" : 1")
        try edited.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        let refused = try CLIRun(["eval", path] + sample)
        #expect(refused.status == 2 && refused.stderr.contains("modified after signing"))

        chmod(keys + "/bulwark-signing.key", 0o644)
        let loose = try CLIRun(["manifest", "sign", directory, "--key", keys + "/bulwark-signing.key"])
        #expect(loose.status != 0 && loose.stderr.contains("chmod 600"))
    }

    @Test("data encrypt/decrypt/rotate; encrypted models load with --key-file only")
    func encryption() throws {
        let (directory, path) = try model()
        let key = directory + "/data.key", newKey = directory + "/new.key"
        #expect(try CLIRun(["keys", "new-data-key", "--out", key]).status == 0)
        #expect(try CLIRun(["keys", "new-data-key", "--out", newKey]).status == 0)
        let sealed = directory + "/sealed.safetensors"
        #expect(try CLIRun(["data", "encrypt", "--key-file", key, path, sealed]).status == 0)
        #expect(try CLIRun(["eval", sealed, "--key-file", key] + sample).status == 0)
        let noKey = try CLIRun(["eval", sealed] + sample)
        #expect(noKey.status == 2 && noKey.stderr.contains("is encrypted"))
        let wrongKey = try CLIRun(["eval", sealed, "--key-file", newKey] + sample)
        #expect(wrongKey.status == 2 && wrongKey.stderr.contains("failed authentication"))

        #expect(try CLIRun(["keys", "rotate", "--key-file", key, "--new-key-file", newKey, sealed]).status == 0)
        #expect(try CLIRun(["eval", sealed, "--key-file", newKey] + sample).status == 0)
        #expect(try CLIRun(["eval", sealed, "--key-file", key] + sample).status == 2)

        let token = directory + "/token.fernet"
        #expect(try CLIRun(["data", "encrypt", "--format", "fernet", "--key-file", newKey, path, token]).status == 0)
        #expect(try CLIRun(["data", "decrypt", "--key-file", newKey, token, directory + "/plain.safetensors"]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: directory + "/plain.safetensors")) == Data(contentsOf: URL(fileURLWithPath: path)))
        let environment = try CLIRun(["data", "decrypt", token, directory + "/env.safetensors"],
                                     environment: ["BULWARK_DATA_KEY": try String(contentsOfFile: newKey, encoding: .utf8)])
        #expect(environment.status == 0)
        chmod(key, 0o640)
        let loose = try CLIRun(["data", "encrypt", "--key-file", key, path, directory + "/x"])
        #expect(loose.status != 0 && loose.stderr.contains("permissions are 640"))
    }
}

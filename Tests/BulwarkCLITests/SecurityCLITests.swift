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

    /// Copies the sample's test split beside the model, so one signature covers the model and its data.
    func withSampleData(_ directory: String) throws -> [String] {
        for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
            try FileManager.default.copyItem(atPath: TestSupport.sampleDirectory + "/" + name, toPath: directory + "/" + name)
        }
        return ["--data-dir", directory]
    }

    @Test("bulwark sign and verify (OMS): exit 0, 1 for a changed model, 2 for a wrong key; eval loads a model signed with model.sig given a PEM --public-key")
    func modelSigning() throws {
        let (directory, path) = try model()
        let sample = try withSampleData(directory)
        let keys = TestSupport.temporaryDirectory()
        let key = keys + "/key.pem", publicKey = keys + "/pub.pem"
        try Data(OMSKeys.privatePEM.utf8).write(to: URL(fileURLWithPath: key))
        chmod(key, 0o600)
        try Data(OMSKeys.publicPEM.utf8).write(to: URL(fileURLWithPath: publicKey))
        let sign = try CLIRun(["sign", directory, "--key", key])
        #expect(sign.status == 0 && sign.stdout.contains("signature \(directory)/model.sig"), "\(sign.stderr)")
        let verify = try CLIRun(["verify", directory, "--public-key", publicKey])
        #expect(verify.status == 0 && verify.stdout.contains("ok        m.safetensors") && verify.stdout.contains("signature valid"), "\(verify.stderr)")
        #expect(try CLIRun(["eval", path, "--public-key", publicKey] + sample).status == 0)

        // A command writing into the signed directory says the signature no longer matches.
        #expect(try CLIRun(["keys", "new-data-key", "--out", keys + "/data.key"]).status == 0)
        let stale = try CLIRun(["data", "encrypt", "--key-file", keys + "/data.key", path, directory + "/m.enc"])
        #expect(stale.status == 0 && stale.stderr.contains("model.sig no longer matches"), "\(stale.stderr)")
        try FileManager.default.removeItem(atPath: directory + "/m.enc")

        // Signing again replaces the signature; it never replaces a file Bulwark did not write.
        #expect(try CLIRun(["sign", directory, "--key", key]).status == 0)
        try Data("notes".utf8).write(to: URL(fileURLWithPath: keys + "/notes.txt"))
        let clobber = try CLIRun(["sign", directory, "--key", key, "--signature", keys + "/notes.txt"])
        #expect(clobber.status == 73 && clobber.stderr.contains("already holds a file Bulwark did not write"))

        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[5000] ^= 0x01
        try data.write(to: URL(fileURLWithPath: path))
        let changed = try CLIRun(["verify", directory, "--public-key", publicKey])
        #expect(changed.status == 1 && changed.stdout.contains("MISMATCH  m.safetensors"))
        let refused = try CLIRun(["eval", path, "--public-key", publicKey] + sample)
        #expect(refused.status == 2 && refused.stderr.contains("model.sig expects"), "\(refused.stderr)")

        let other = TestSupport.temporaryDirectory() + "/other.pem"
        try Data(OMSKeys.otherPublicPEM.utf8).write(to: URL(fileURLWithPath: other))
        let wrongKey = try CLIRun(["verify", directory, "--public-key", other])
        #expect(wrongKey.status == 2 && wrongKey.stderr.contains("not the trusted key"))
        chmod(key, 0o644)
        let loose = try CLIRun(["sign", directory, "--key", key])
        #expect(loose.status == 2 && loose.stderr.contains("chmod 600"))
        let usage = try CLIRun(["sign", directory, "--key", key, "--shard-size", "10"])
        #expect(usage.status == 64 && usage.stderr.contains("--shard-size applies only with --shards"))
    }

    @Test("hybrid keys: keys generate --algorithm hybrid, manifest sign, eval with the trusted hybrid key")
    func hybridManifest() throws {
        let (directory, path) = try model()
        let sample = try withSampleData(directory)
        #expect(try CLIRun(["manifest", "create", directory]).status == 0)
        let keys = TestSupport.temporaryDirectory() + "/keys"
        let generate = try CLIRun(["keys", "generate", "--algorithm", "hybrid", "--out", keys])
        #expect(generate.status == 0 && generate.stdout.contains("ed25519+ml-dsa-65"))
        #expect(try CLIRun(["manifest", "sign", directory, "--key", keys + "/bulwark-signing.key"]).status == 0)
        #expect(try CLIRun(["manifest", "verify", directory, "--public-key", keys + "/bulwark-signing.pub"]).status == 0)
        let eval = try CLIRun(["eval", path, "--public-key", keys + "/bulwark-signing.pub"] + sample)
        #expect(eval.status == 0, "\(eval.stderr)")
        #expect(try CLIRun(["keys", "generate", "--algorithm", "rsa", "--out", keys + "2"]).status == 64)
    }

    @Test("envelope encryption at the command line: recipients, a KMS command, keys rewrap, and eval with --identity")
    func envelopes() throws {
        let (directory, path) = try model()
        let alice = TestSupport.temporaryDirectory() + "/alice", bob = TestSupport.temporaryDirectory() + "/bob"
        #expect(try CLIRun(["keys", "generate", "--algorithm", "xwing", "--out", alice]).status == 0)
        #expect(try CLIRun(["keys", "generate", "--algorithm", "xwing", "--out", bob]).status == 0)
        let sealed = directory + "/sealed.safetensors"
        let encrypt = try CLIRun(["data", "encrypt", "--recipient", alice + "/bulwark-recipient.pub", path, sealed])
        #expect(encrypt.status == 0, "\(encrypt.stderr)")
        #expect(try CLIRun(["eval", sealed, "--identity", alice + "/bulwark-recipient.key"] + sample).status == 0)
        let stranger = try CLIRun(["eval", sealed, "--identity", bob + "/bulwark-recipient.key"] + sample)
        #expect(stranger.status == 2 && stranger.stderr.contains("is encrypted for recipient"))

        let kms = try fakeKMSCommand(in: directory)
        #expect(try CLIRun(["keys", "rewrap", "--identity", alice + "/bulwark-recipient.key", "--new-kek-command", kms,
                            "--new-recipient", bob + "/bulwark-recipient.pub", sealed]).status == 0)
        #expect(try CLIRun(["eval", sealed, "--kek-command", kms] + sample).status == 0)
        #expect(try CLIRun(["eval", sealed, "--identity", bob + "/bulwark-recipient.key"] + sample).status == 0)
        #expect(try CLIRun(["eval", sealed, "--identity", alice + "/bulwark-recipient.key"] + sample).status == 2)
        let opened = directory + "/opened.safetensors"
        #expect(try CLIRun(["data", "decrypt", "--kek-command", kms, sealed, opened]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: opened)) == Data(contentsOf: URL(fileURLWithPath: path)))

        let failing = try CLIRun(["data", "encrypt", "--kek-command", "echo 'kms: access denied' >&2; exit 5", path, directory + "/never"])
        #expect(failing.status == 2 && failing.stderr.contains("exited with status 5: kms: access denied"))
        #expect(!FileManager.default.fileExists(atPath: directory + "/never"))
        let both = try CLIRun(["data", "encrypt", "--key-file", directory + "/k", "--recipient", alice + "/bulwark-recipient.pub", path, directory + "/x"])
        #expect(both.status == 64 && both.stderr.contains("Give one or the other"))
        let identity = try CLIRun(["data", "encrypt", "--identity", alice + "/bulwark-recipient.key", path, directory + "/x"])
        #expect(identity.status == 64 && identity.stderr.contains("--recipient"))
        #expect(try CLIRun(["keys", "new-data-key", "--out", directory + "/k"]).status == 0)
        let rotate = try CLIRun(["keys", "rotate", "--key-file", directory + "/k", "--new-key-file", directory + "/k", sealed])
        #expect(rotate.status == 2 && rotate.stderr.contains("bulwark keys rewrap"), "\(rotate.stderr)")
        let noKey = try CLIRun(["data", "decrypt", sealed, directory + "/y"])
        #expect(noKey.status == 64 && noKey.stderr.contains("--identity"), "\(noKey.stderr)")
        #expect(try CLIRun(["data", "decrypt", "--kek-timeout", "5", "--key-file", directory + "/k", sealed, directory + "/y"]).status == 64)
    }

    @Test("sbom: a valid CycloneDX 1.6 ML-BOM of a shipped model (digests, card metrics, data, packages, system libraries); --self; a tampered model is refused")
    func billOfMaterials() throws {
        let directory = TestSupport.temporaryDirectory()
        let model = TestSupport.repositoryRoot + "/models/mlp-pgd.safetensors"
        let out = directory + "/bom.json"
        let result = try CLIRun(["sbom", model, "--out", out, "--data-dir", TestSupport.sampleDirectory])
        #expect(result.status == 0, "\(result.stderr)")
        let bom = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as! [String: Any]
        #expect(bom["bomFormat"] as? String == "CycloneDX" && bom["specVersion"] as? String == "1.6")
        let metadata = bom["metadata"] as! [String: Any]
        let component = metadata["component"] as! [String: Any]
        #expect(component["type"] as? String == "machine-learning-model")
        let digest = try CLIRun(["inspect", model, "--json"]).jsonLines.first?["sha256"] as? String
        #expect((component["hashes"] as? [[String: String]])?.first?["content"] == digest)
        let card = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: TestSupport.repositoryRoot + "/models/mlp-pgd.card.json"))) as! [String: Any]
        let modelCard = component["modelCard"] as! [String: Any]
        let metrics = (modelCard["quantitativeAnalysis"] as! [String: Any])["performanceMetrics"] as! [[String: Any]]
        #expect(metrics.count == 1 + (card["robust_accuracy"] as! [Any]).count + (card["certified_accuracy"] as? [Any] ?? []).count)
        #expect(metrics[0]["value"] as? String == String(format: "%.4f", (card["clean_accuracy"] as! [String: Any])["accuracy"] as! Double))
        let components = bom["components"] as! [[String: Any]]
        // The sample is not the data the model's card names: listed as data at hand, not as the model's datasets.
        let data = components.filter { $0["type"] as? String == "data" }
        #expect(data.compactMap { $0["bom-ref"] as? String } == ["data:fashion-mnist-sample-train", "data:fashion-mnist-sample-test"])
        let parameters = modelCard["modelParameters"] as! [String: Any]
        #expect(parameters["datasets"] == nil && result.stderr.contains("not the data"))
        #expect((data[0]["properties"] as? [[String: String]])?.first?["value"]?.contains("names other data") == true)
        if FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") {
            // The Debian data it was trained on: the model card lists it, each file with its Debian digest.
            #expect(try CLIRun(["sbom", model, "--out", directory + "/full.json"]).status == 0)
            let full = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/full.json"))) as! [String: Any]
            let fullCard = ((full["metadata"] as! [String: Any])["component"] as! [String: Any])["modelCard"] as! [String: Any]
            #expect(((fullCard["modelParameters"] as! [String: Any])["datasets"] as? [[String: String]])?.map { $0["ref"] } == ["data:fashion-mnist-train", "data:fashion-mnist-test"])
            let files = (full["components"] as! [[String: Any]]).filter { $0["type"] as? String == "data" }.flatMap { $0["components"] as! [[String: Any]] }
            let digests: [String] = files.compactMap { file in (file["hashes"] as? [[String: String]])?.first?["content"] }
            #expect(digests.contains("b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"))
        }
        let purls = components.compactMap { $0["purl"] as? String }
        #expect(purls.contains { $0.hasPrefix("pkg:swift/github.com/apple/swift-crypto@") })
        #expect(purls.contains { $0.hasPrefix("pkg:deb/debian/libopenblas") } || !FileManager.default.fileExists(atPath: "/usr/bin/dpkg-query"))
        #expect(components.contains { ($0["properties"] as? [[String: String]])?.contains { $0["value"] == "openblas_get_config()" } == true })

        // Verification comes first: a changed model is refused, nothing is written.
        let copy = directory + "/copy"
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: model, toPath: copy + "/m.safetensors")
        let unverified = try CLIRun(["sbom", copy + "/m.safetensors", "--no-data", "--out", copy + "/bom.json"])
        #expect(unverified.status == 2 && unverified.stderr.contains("--allow-unverified"))
        #expect(!FileManager.default.fileExists(atPath: copy + "/bom.json"))
        #expect(try CLIRun(["sbom"]).status == 64)
        #expect(try CLIRun(["sbom", model, "--self"]).status == 64)
    }

    @Test("sbom output validates against the committed CycloneDX 1.6 JSON schema (model and --self); a broken document does not",
          .enabled(if: pythonJSONSchemaAvailable))
    func billOfMaterialsSchema() throws {
        let directory = TestSupport.temporaryDirectory()
        #expect(try CLIRun(["sbom", TestSupport.repositoryRoot + "/models/mlp-crown-ibp.safetensors", "--out", directory + "/model.json",
                            "--data-dir", TestSupport.sampleDirectory]).status == 0)
        #expect(try CLIRun(["sbom", "--self", "--out", directory + "/self.json"]).status == 0)
        for document in ["model.json", "self.json"] {
            let validation = try runValidator(directory + "/" + document)
            #expect(validation.status == 0 && validation.output.contains("valid"), "\(document): \(validation.output)")
        }
        var broken = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/model.json"))) as! [String: Any]
        broken["bomFormat"] = nil
        var metadata = broken["metadata"] as! [String: Any], component = metadata["component"] as! [String: Any]
        component["type"] = "neural-network"
        metadata["component"] = component
        broken["metadata"] = metadata
        try JSONSerialization.data(withJSONObject: broken).write(to: URL(fileURLWithPath: directory + "/broken.json"))
        let refused = try runValidator(directory + "/broken.json")
        #expect(refused.status == 1 && refused.output.contains("'bomFormat' is a required property") && refused.output.contains("neural-network"), "\(refused.output)")
    }
}

/// True if python3 has jsonschema and referencing (for scripts/validate-cyclonedx.py).
let pythonJSONSchemaAvailable: Bool = (try? TestSupport.run(["python3", "-c", "import jsonschema, referencing"]).status) == 0

/// Validates a CycloneDX document against the committed 1.6 schema.
func runValidator(_ path: String) throws -> (status: Int32, output: String) {
    try TestSupport.run(["python3", TestSupport.repositoryRoot + "/scripts/validate-cyclonedx.py", path])
}

/// A fake KMS command for the CLI tests (openssl under a fixed passphrase).
func fakeKMSCommand(in directory: String) throws -> String {
    let path = directory + "/kms.sh"
    try Data("""
        #!/bin/sh
        case "$BULWARK_KEK_OPERATION" in
          wrap) exec openssl enc -aes-256-cbc -pbkdf2 -salt -pass pass:fake-kms ;;
          unwrap) exec openssl enc -d -aes-256-cbc -pbkdf2 -pass pass:fake-kms ;;
        esac
        exit 9
        """.utf8).write(to: URL(fileURLWithPath: path))
    chmod(path, 0o700)
    return path
}

/// Test-only P-256 keys for bulwark sign/verify (the scalars 0x0707…07 and 0x0909…09: never use them for anything else).
enum OMSKeys {
    static let privatePEM = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgBwcHBwcHBwcHBwcH
        BwcHBwcHBwcHBwcHBwcHBwcHBwehRANCAAQeGFMv1HVMAvMEHZx1zrM7g//YGsfO
        T+iCzLHJi8WJbqRsMRxOL/QN2Wo2U+bkVEXTLf5Ibs7XXHqQxqGIgcCj
        -----END PRIVATE KEY-----
        """
    static let publicPEM = """
        -----BEGIN PUBLIC KEY-----
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEHhhTL9R1TALzBB2cdc6zO4P/2BrH
        zk/ogsyxyYvFiW6kbDEcTi/0DdlqNlPm5FRF0y3+SG7O11x6kMahiIHAow==
        -----END PUBLIC KEY-----
        """
    static let otherPublicPEM = """
        -----BEGIN PUBLIC KEY-----
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEcTX6T9k6Cdzpi79oG0v89Q58DWNU
        5ir7C/8qNClheGXtTB8C3bkCPuVqVX5RXWqdxmwR8iCWDeWUM031iHdnJA==
        -----END PUBLIC KEY-----
        """
}

import Crypto
import Datasets
import Foundation
import HTMLReport
import TensorCore
import NeuralNet
import Robustness
import BulwarkSecurity
import ServingCore
import Threats

/// The parsers Bulwark exposes to files, as fuzz entry points: each takes arbitrary bytes and must
/// return (with or without an error) without crashing, hanging or exhausting memory. The libFuzzer
/// executables in Fuzz/ call these, and `swift test` replays the committed corpus through them.
public enum FuzzTargets {
    /// The target names, matching Fuzz/Corpus/<name>/.
    public static let all: [String: @Sendable ([UInt8]) -> Void] = [
        "safetensors": safetensors, "idx": idx, "csv": csv, "manifest": manifest, "container": container, "fernet": fernet,
        "config": config, "predict": predict, "keyfile": keyfile, "audit": audit, "servecfg": serveConfiguration,
        "membership": membershipConfiguration, "threatreport": threatReport, "modelsig": modelSignature,
    ]

    /// A fixed key, so that corpus entries can be valid encrypted files.
    public static let key: DataKey = {
        guard let key = try? DataKey(bytes: (0..<32).map { UInt8($0) }) else { preconditionFailure("32-byte key") }
        return key
    }()

    /// Decompressed or decrypted sizes are capped lower than in production so one input cannot
    /// exhaust the fuzzer's memory.
    static let outputLimit = 64 << 20

    /// safetensors header and data validation, then model reconstruction (declared or inferred
    /// architecture, size bounds, keys, shapes, dtype conversion, values) and one forward pass.
    public static func safetensors(_ bytes: [UInt8]) {
        guard let file = try? SafeTensors(bytes: bytes, source: "fuzz") else { return }
        guard let loaded = try? ModelFile.load(file, hiddenActivations: [.relu]) else { return }
        let inference = loaded.network.inferenceModel()
        _ = try? inference.logits(Tensor(zeros: [2, inference.inputWidth]))
    }

    /// Bench configurations: strict JSON decoding (typed attacks, recipes, goals) and validation.
    public static func config(_ bytes: [UInt8]) {
        _ = try? BenchConfiguration.decode(Data(bytes), source: "fuzz")
    }

    /// gzip (if compressed) and IDX validation.
    public static func idx(_ bytes: [UInt8]) {
        var data = bytes
        if Gzip.isCompressed(data) {
            guard let inflated = try? Gzip.decompress(data, source: "fuzz", limit: outputLimit) else { return }
            data = inflated
        }
        _ = try? IDXFile(bytes: data, source: "fuzz")
    }

    /// CSV parsing with both label positions.
    public static func csv(_ bytes: [UInt8]) {
        _ = try? CSVDataset.parse(bytes, source: "fuzz")
        _ = try? CSVDataset.parse(bytes, source: "fuzz", options: .init(labelColumn: -1))
    }

    /// Manifest JSON, entry validation and signature checking.
    public static func manifest(_ bytes: [UInt8]) {
        guard let manifest = try? Manifest.parse(bytes, source: "fuzz") else { return }
        _ = try? manifest.checkSignature(path: "fuzz", trustedKey: nil)
    }

    /// A fixed P-256 key for OMS signatures (so corpus entries can carry valid signatures).
    public static let modelSigningKey: ECDSAPrivateKey = {
        guard let key = try? P256.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 7, count: 32)) else { preconditionFailure("P-256 key") }
        return .p256(key)
    }()

    /// OpenSSF Model Signing bundles: the Sigstore bundle, the DSSE signature check, and the
    /// in-toto statement (read even when the signature fails, so the fuzzer reaches it).
    public static func modelSignature(_ bytes: [UInt8]) {
        _ = try? ModelSigning.checkSignature(bundle: bytes, source: "fuzz", trustedKey: modelSigningKey.publicKey)
        guard let bundle = try? SigstoreBundle.parse(bytes, source: "fuzz") else { return }
        _ = try? ModelStatement.parse(bundle.payload, source: "fuzz")
    }

    /// The chunked AES-GCM container: header, chunking, authentication; for format 2 (envelopes),
    /// the key block, its stanzas and header MAC, with the fixed key as a key-encryption key.
    public static func container(_ bytes: [UInt8]) {
        if EnvelopeEncryption.isEnvelope(bytes) {
            _ = try? EnvelopeEncryption.decrypt(bytes, unwrappers: [.keyEncryptionKey(key)], source: "fuzz")
        } else {
            _ = try? EncryptedContainer.decrypt(bytes, key: key, source: "fuzz")
        }
    }

    /// Fernet tokens: base64, length, HMAC, timestamps, padding.
    public static func fernet(_ bytes: [UInt8]) {
        _ = try? Fernet.decrypt(String(decoding: bytes, as: UTF8.self), key: key, ttl: 10 * 365 * 86_400, source: "fuzz")
    }

    // MARK: - bulwark serve

    /// Predict bodies, as JSON and as float32 rows (the first byte picks a narrow or a full-width
    /// parser, so short inputs reach row and value checks too).
    public static func predict(_ bytes: [UInt8]) {
        let parser = InputParser(width: bytes.first.map { $0 & 1 == 0 ? 3 : 784 } ?? 3, maxRows: 8)
        let body = Array(bytes.dropFirst())
        body.withUnsafeBytes { raw in
            _ = try? parser.parseJSON(raw)
            _ = try? parser.parseFloat32(raw)
        }
    }

    /// API-key files: strict JSON, roles, output policies (and what they release), ids, digests, limits.
    public static func keyfile(_ bytes: [UInt8]) {
        guard let file = try? KeyFile.decode(bytes, path: "fuzz") else { return }
        let table = KeyTable(file)
        var generator = RandomGenerator(seed: 1)
        for key in file.keys {
            _ = table.authenticate(APIKey(id: key.id, secret: key.sha256))
            // The key's output policy on ordinary, saturated and tied logits (parameters come from the file).
            for logits: [Float] in [[0.5, -1, 2], [80, -80, 0], [1, 1, 1]] {
                let answer = key.output.answer(logits: logits, generator: &generator)
                precondition(answer.probabilities?.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 } ?? true, "a policy released a non-probability")
            }
        }
    }

    /// Audit logs: line splitting, strict entries, the hash chain.
    public static func audit(_ bytes: [UInt8]) {
        _ = try? AuditVerifier.verify(bytes: bytes)
    }

    /// `bulwark serve --config` files.
    public static func serveConfiguration(_ bytes: [UInt8]) {
        _ = try? ServeConfiguration.Limits.decode(bytes, source: "fuzz")
    }

    /// `bulwark threat membership --config` files: strict JSON, recipes, validation.
    public static func membershipConfiguration(_ bytes: [UInt8]) {
        _ = try? MembershipConfiguration.decode(bytes, source: "fuzz")
    }

    /// Reports as `bulwark gate`, `report merge` and `report diff` read them: threat reports
    /// (`bulwark threat … --report`), bench reports, and the partial reports of sharded benches
    /// (merged with themselves, which must be refused or assemble without trapping); and the parts
    /// of sharded membership experiments (`threat membership --merge`).
    public static func threatReport(_ bytes: [UInt8]) {
        let data = Data(bytes)
        _ = try? ThreatReport.decode(data, source: "fuzz")
        if let report = try? BenchReport.decode(data, source: "fuzz") {
            _ = HTMLReport.render(report)  // the renderer takes reports from anywhere too
        }
        if let part = try? BenchPartialReport.decode(data, source: "fuzz") {
            _ = try? BenchPartialReport.merge([(source: "fuzz", report: part)])
        }
        if let part = try? MembershipPart.decode(data, source: "fuzz") {
            _ = part.models.map { $0.unit }
        }
    }
}

import Foundation
import _FileSystem

/// The signature file of OpenSSF Model Signing's key method: a Sigstore bundle (v0.3) holding a
/// DSSE envelope (one ECDSA signature over an in-toto statement) and a hint naming the public key.
///
/// ```json
/// {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
///  "verificationMaterial": {"publicKey": {"hint": "<hex SHA-256 of the PEM key>"}, "tlogEntries": []},
///  "dsseEnvelope": {"payload": "<base64 statement>", "payloadType": "application/vnd.in-toto+json",
///                   "signatures": [{"sig": "<base64 DER>", "keyid": ""}]}}
/// ```
/// Reading is strict (a key no version writes, a repeated key, a second signature or a certificate
/// is refused), and accepts what older reference-tool versions wrote: the key itself as
/// `publicKey.rawBytes` (base64 PEM) and a `keyid` of null.
public struct SigstoreBundle: Sendable, Equatable {
    public static let mediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
    public static let payloadType = "application/vnd.in-toto+json"
    public static let maximumSize = 64 << 20

    /// The hex SHA-256 of the signer's PEM public key, if the bundle names one that way.
    public var hint: String?
    /// The signer's PEM public key, as bundles before `model_signing` 1.1 carried it.
    public var embeddedPublicKeyPEM: String?
    /// The statement's bytes, exactly as signed.
    public var payload: Data
    /// The DER ECDSA signature of the DSSE pre-authentication encoding of `payload`.
    public var signature: Data

    public init(hint: String?, embeddedPublicKeyPEM: String? = nil, payload: Data, signature: Data) {
        self.hint = hint
        self.embeddedPublicKeyPEM = embeddedPublicKeyPEM
        self.payload = payload
        self.signature = signature
    }

    /// DSSE's pre-authentication encoding (PAE), the bytes that are signed:
    /// `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`, lengths in ASCII decimal.
    public static func preAuthenticationEncoding(payloadType: String = payloadType, payload: Data) -> Data {
        Data("DSSEv1 \(payloadType.utf8.count) \(payloadType) \(payload.count) ".utf8) + payload
    }

    /// The bundle's JSON, with exactly the fields the reference tool writes.
    public func encoded() throws -> Data {
        let bundle: [String: Any] = [
            "mediaType": Self.mediaType,
            "verificationMaterial": ["publicKey": ["hint": hint ?? ""], "tlogEntries": [Any]()],
            "dsseEnvelope": [
                "payload": payload.base64EncodedString(),
                "payloadType": Self.payloadType,
                "signatures": [["sig": signature.base64EncodedString(), "keyid": ""]],
            ],
        ]
        return try JSONSerialization.data(withJSONObject: bundle, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// Parses a bundle.
    /// - Throws: `SecurityError.modelSignature` naming `source` and the problem.
    public static func parse(_ bytes: [UInt8], source: String) throws -> SigstoreBundle {
        func fail(_ problem: String) -> SecurityError { .modelSignature(path: source, problem: problem) }
        guard !bytes.isEmpty else { throw fail("the signature file is empty") }
        guard bytes.count <= maximumSize else { throw fail("the signature file is larger than \(maximumSize) bytes") }
        do { try StrictJSON.validate(bytes) } catch { throw fail("it is not valid JSON (\(error))") }
        let reader = JSONObjectReader(source: source)
        let root = try reader.object(try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]), at: "$")
        if root["messageSignature"] != nil {
            throw fail("it holds a message signature, not a DSSE envelope; OMS signatures are DSSE envelopes over an in-toto statement")
        }
        try reader.onlyKeys(root, ["mediaType", "verificationMaterial", "dsseEnvelope"], at: "$")
        let mediaType = try reader.string(root, "mediaType", at: "$")
        guard mediaType.hasPrefix("application/vnd.dev.sigstore.bundle") else {
            throw fail("its mediaType '\(displayable(mediaType, limit: 80))' is not a Sigstore bundle's")
        }

        guard let materialValue = root["verificationMaterial"] else {
            throw fail("it has no verificationMaterial, so it does not say which key signed it")
        }
        let material = try reader.object(materialValue, at: "$.verificationMaterial")
        if material["certificate"] != nil || material["x509CertificateChain"] != nil {
            throw fail("it is signed with a certificate (Sigstore or PKI); Bulwark verifies signatures made with a key (model_signing sign key)")
        }
        try reader.onlyKeys(material, ["publicKey", "tlogEntries", "timestampVerificationData"], at: "$.verificationMaterial")
        if let entries = material["tlogEntries"] {
            guard entries is [Any] else { throw fail("$.verificationMaterial.tlogEntries is not a list") }
        }
        guard let publicKeyValue = material["publicKey"] else {
            throw fail("its verificationMaterial names no public key")
        }
        let publicKey = try reader.object(publicKeyValue, at: "$.verificationMaterial.publicKey")
        try reader.onlyKeys(publicKey, ["hint", "rawBytes", "keyDetails"], at: "$.verificationMaterial.publicKey")
        let hint = try publicKey["hint"].map { _ in try reader.string(publicKey, "hint", at: "$.verificationMaterial.publicKey") }
        var embedded: String?
        if publicKey["rawBytes"] != nil {
            let text = try reader.string(publicKey, "rawBytes", at: "$.verificationMaterial.publicKey")
            guard let raw = Data(base64Encoded: text), let pem = String(data: raw, encoding: .utf8) else {
                throw fail("$.verificationMaterial.publicKey.rawBytes is not the base64 of a PEM key")
            }
            embedded = pem
        }

        guard let envelopeValue = root["dsseEnvelope"] else { throw fail("it has no dsseEnvelope (the signed statement)") }
        let envelope = try reader.object(envelopeValue, at: "$.dsseEnvelope")
        try reader.onlyKeys(envelope, ["payload", "payloadType", "signatures"], at: "$.dsseEnvelope")
        let type = try reader.string(envelope, "payloadType", at: "$.dsseEnvelope")
        guard type == payloadType else {
            throw fail("its payloadType '\(displayable(type, limit: 80))' is not \(payloadType)")
        }
        guard let payload = Data(base64Encoded: try reader.string(envelope, "payload", at: "$.dsseEnvelope")) else {
            throw fail("$.dsseEnvelope.payload is not base64")
        }
        guard let signatures = envelope["signatures"] as? [Any], signatures.count == 1 else {
            throw fail("$.dsseEnvelope.signatures must hold exactly one signature")
        }
        let entry = try reader.object(signatures[0], at: "$.dsseEnvelope.signatures[0]")
        try reader.onlyKeys(entry, ["sig", "keyid"], at: "$.dsseEnvelope.signatures[0]")
        if let keyid = entry["keyid"], !(keyid is NSNull), !(keyid is String) {
            throw fail("$.dsseEnvelope.signatures[0].keyid is neither a string nor null")
        }
        guard let signature = Data(base64Encoded: try reader.string(entry, "sig", at: "$.dsseEnvelope.signatures[0]")), !signature.isEmpty else {
            throw fail("$.dsseEnvelope.signatures[0].sig is not base64")
        }
        return SigstoreBundle(hint: hint, embeddedPublicKeyPEM: embedded, payload: payload, signature: signature)
    }
}

/// Reads objects parsed by `JSONSerialization` strictly, with messages that name the JSON path.
struct JSONObjectReader {
    let source: String

    func fail(_ problem: String) -> SecurityError { .modelSignature(path: source, problem: problem) }

    func object(_ value: Any, at path: String) throws -> [String: Any] {
        guard let object = value as? [String: Any] else { throw fail("\(path) is not a JSON object") }
        return object
    }

    func onlyKeys(_ object: [String: Any], _ allowed: Set<String>, at path: String) throws {
        if let unknown = object.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw fail("\(path) has the unknown field \"\(displayable(unknown, limit: 60))\" (no OMS signer writes it; the file was edited or made by another tool)")
        }
    }

    func string(_ object: [String: Any], _ key: String, at path: String) throws -> String {
        guard let value = object[key] else { throw fail("\(path).\(key) is missing") }
        // JSONSerialization reads true/false as NSNumber; only real strings count.
        guard let text = value as? String, !(value is NSNumber) else { throw fail("\(path).\(key) is not a string") }
        return text
    }
}

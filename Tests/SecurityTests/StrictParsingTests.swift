import Crypto
import Foundation
@testable import NeuralNet
@testable import BulwarkSecurity
import Testing
import _FileSystem
import _TestSupport

/// JSON that a security decision rests on is read strictly, so every parser reads the same bytes
/// the same way: issue 14's parser-differential cases.
@Suite("Strict JSON: no parser differential")
struct StrictParsingTests {
    func violation(_ text: String, integerKeys: Set<String> = []) -> String {
        do { try StrictJSON.validate(Array(text.utf8), integerKeys: integerKeys); return "" } catch { return "\(error)" }
    }

    @Test("duplicate keys, fractions where integers belong, deep nesting and trailing text are refused, naming where")
    func validator() {
        #expect(violation(#"{"a": 1, "b": {"c": 2, "c": 3}}"#).contains(#"the key "c" appears twice in one object (JSON parsers disagree on which one counts) at $["b"]["c"]"#))
        #expect(violation(#"{"a": 1, "\u0061": 2}"#).contains("appears twice"), "an escaped spelling is the same key")
        #expect(violation(#"{"shape": [10.0]}"#, integerKeys: ["shape"]).contains(#""shape" must be an integer, written as one (got 10.0)"#))
        #expect(violation(#"{"size": 1e3}"#, integerKeys: ["size"]).contains("got 1e3"))
        #expect(violation(#"{"epsilon": 0.1, "size": 3, "list": [{"a": 1}, {"a": 2}]}"#, integerKeys: ["size"]) == "")
        #expect(violation(String(repeating: "[", count: 200) + String(repeating: "]", count: 200)).contains("nested deeper"))
        #expect(violation(#"{"a": 1} x"#).contains("unexpected text after"))
        #expect(violation(#"{"a": "\#u{1B}"}"#).contains("control character"))
        // Escapes are decoded as decoders do: one key, however it is spelled.
        #expect(violation(#"{"a\nb": 1, "a\u000ab": 2}"#).contains("appears twice"))
        #expect(violation(#"{"\ud83d\ude00": 1, "😀": 2}"#).contains("appears twice"))
        #expect(violation(#"{"\ud800": 1}"#).contains("lone surrogate"))
        // RFC 8259 numbers only.
        #expect(violation(#"{"a": 01}"#).contains("leading zero"))
        #expect(violation(#"{"a": 1.}"#).contains("decimal point"))
        #expect(violation(#"{"a": 1e}"#).contains("exponent has no digits"))
        #expect(violation(#"{"a": -0, "b": 1E+5, "c": -0.5e-3}"#) == "")
    }

    /// A signed manifest of one file, as its JSON text.
    func signedManifest() throws -> (text: String, key: SigningPublicKey) {
        let key = try SigningPrivateKey.generate(.ed25519)
        var manifest = Manifest(files: ["m.safetensors": .init(sha256: String(repeating: "a", count: 64), size: 27000, recipe: "r")])
        try manifest.sign(with: key)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (String(decoding: try encoder.encode(manifest), as: UTF8.self), key.publicKey)
    }

    @Test("any edit that changes a signed manifest's meaning for some parser is refused: fields, entries, duplicate keys, float sizes")
    func signedManifestEdits() throws {
        let (text, key) = try signedManifest()
        let parsed = try Manifest.parse(Array(text.utf8), source: "m")
        #expect(try parsed.checkSignature(path: "m", trustedKey: key) != nil)
        let edits = [
            text.replacingOccurrences(of: #"{"files""#, with: #"{"extra":1,"files""#),                        // a top-level field
            text.replacingOccurrences(of: #""recipe":"r""#, with: #""recipe":"r","mode":"x""#),              // a field in an entry
            text.replacingOccurrences(of: #""size":27000"#, with: #""size":27000.0"#),                      // a float size
            text.replacingOccurrences(of: #"{"m.safetensors":"#, with: #"{"m.safetensors":{"sha256":"00","size":1},"m.safetensors":"#),
            text.replacingOccurrences(of: #"{"files""#, with: #"{"files":{},"files""#),                       // a duplicate files object
        ]
        for edited in edits {
            #expect(edited != text)
            #expect(throws: SecurityError.self, "\(edited)") { _ = try Manifest.parse(Array(edited.utf8), source: "m") }
        }
    }

    @Test("model headers: duplicate metadata keys, float shapes and unknown tensor fields are refused")
    func modelHeaders() throws {
        let good = try SafeTensors.serialize([("w", .float32(shape: [2], values: [1, 2]))], metadata: ["format": "pt"])
        _ = try SafeTensors(bytes: good, source: "good")
        func header(_ json: String) -> [UInt8] {
            let bytes = Array(json.utf8)
            var length = UInt64(bytes.count).littleEndian
            return withUnsafeBytes(of: &length) { Array($0) } + bytes + [0, 0, 128, 63, 0, 0, 0, 64]
        }
        let hostile = [
            #"{"__metadata__":{"format":"pt","format":"evil"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            #"{"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#,
            #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"note":"x"}}"#,
            #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        ]
        for json in hostile {
            #expect(throws: (any Error).self, "\(json)") { _ = try SafeTensors(bytes: header(json), source: "hostile") }
        }
        _ = try SafeTensors(bytes: header(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#), source: "control")
    }

    @Test("the same bytes read by Python's json: every document Bulwark accepts has one meaning there too")
    func pythonAgrees() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else { return }
        let (text, _) = try signedManifest()
        let directory = TestSupport.temporaryDirectory("strict-python")
        let path = directory + "/m.json"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let script = """
        import json, sys
        def no_duplicates(pairs):
            keys = [k for k, _ in pairs]
            assert len(keys) == len(set(keys)), "duplicate"
            return dict(pairs)
        doc = json.load(open(sys.argv[1]), object_pairs_hook=no_duplicates)
        print(doc["files"]["m.safetensors"]["sha256"], doc["files"]["m.safetensors"]["size"])
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script, path]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let manifest = try Manifest.parse(Array(text.utf8), source: "m")
        let entry = try #require(manifest.files["m.safetensors"])
        #expect(process.terminationStatus == 0 && output.trimmingCharacters(in: .whitespacesAndNewlines) == "\(entry.sha256) \(entry.size)")
    }

    @Test("a Fernet token with a far-future timestamp is recognised as Fernet and refused for its timestamp")
    func farFutureFernet() throws {
        let key = DataKey.generate()
        for seconds in [Double(1 << 40), Double(1 << 62)] {
            let token = try Fernet.encrypt(Array("x".utf8), key: key, now: Date(timeIntervalSince1970: seconds))
            #expect(Fernet.isToken(Array(token.utf8)), "\(token.prefix(8))")
            #expect { try Fernet.decrypt(token, key: key, source: "t") } throws: { "\($0)".contains("future") }
        }
    }
}

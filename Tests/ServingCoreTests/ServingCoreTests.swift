import Crypto
import Foundation
import ServingCore
import TensorCore
import Testing
import _FileSystem
import _TestSupport

@Suite("Parsers, keys, limits and the audit chain")
struct UnitTests {
    func parse(_ text: String, width: Int = 3, maxRows: Int = 4) -> Result<PredictInput, InputProblem> {
        let parser = InputParser(width: width, maxRows: maxRows)
        return Array(text.utf8).withUnsafeBytes { bytes in Result { () throws(InputProblem) in try parser.parseJSON(bytes) } }
    }

    @Test("the JSON fast path accepts RFC 8259 numbers and whitespace, and classifies every error")
    func inputParser() {
        let good = parse(" {\n\"inputs\" : [ [0, 1e-1 ,0.25E+0],[1,0.0,5e-324] ] } ")
        guard case .success(let input) = good else { Issue.record("\(good)"); return }
        #expect(input.rows == 2 && input.values == [0, 0.1, 0.25, 1, 0, 0])
        let cases: [(String, Int, String?)] = [
            ("{\"inputs\": [[01, 0, 0]]}", 400, nil), ("{\"inputs\": [[.5, 0, 0]]}", 400, nil), ("{\"inputs\": [[0, 0, 0]]} x", 400, nil),
            ("{\"inputs\": [[0, 0, 0]],}", 400, nil), ("{\"inputs\": [[+1, 0, 0]]}", 400, nil), ("", 400, nil),
            ("{\"inputs\": [[0, 0, 0]], \"inputs\": [[0, 0, 0]]}", 400, nil),
            ("{\"in\\u0070uts\": [[0, 0, 0]]}", 422, nil), ("{\"inputs\": [[0, 0, null]]}", 422, "/inputs/0/2"),
            ("{\"inputs\": [[0, 0, 0, 0]]}", 422, "/inputs/0"), ("{\"inputs\": [[0, 0]]}", 422, "/inputs/0"),
            ("{\"inputs\": [[0,0,0],[0,0,0],[0,0,0],[0,0,0],[0,0,0]]}", 422, "/inputs"), ("{\"inputs\": {}}", 422, "/inputs"),
            ("{\"inputs\": [[0, 0, -0.5]]}", 422, "/inputs/0/2"), ("{\"inputs\": [[0, 0, 3.5e38]]}", 422, "/inputs/0/2"),
            ("{\"inputs\": [[0, 0, 1e39]]}", 422, "/inputs/0/2"), ("{\"a/b~\": 1}", 422, "/a~1b~0"),
        ]
        for (text, status, field) in cases {
            guard case .failure(let problem) = parse(text) else { Issue.record("accepted \(text)"); continue }
            #expect(problem.status == status, "\(text): \(problem)")
            if let field { #expect(problem.field == field, "\(text): \(problem)") }
        }
    }

    @Test("float32 bodies: whole rows only, finite values in [0, 1]")
    func float32Parser() throws {
        let parser = InputParser(width: 2, maxRows: 2)
        func bytes(_ values: [Float]) -> [UInt8] { values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } } }
        let input = try bytes([0, 1, 0.5, 0.25]).withUnsafeBytes { b throws(InputProblem) in try parser.parseFloat32(b) }
        #expect(input.rows == 2 && input.values == [0, 1, 0.5, 0.25])
        for bad in [bytes([0]), bytes([0, 1, 0, 1, 0, 1]), bytes([.infinity, 0]), bytes([0, 1.0001]), []] {
            #expect(throws: InputProblem.self) { try bad.withUnsafeBytes { b throws(InputProblem) in try parser.parseFloat32(b) } }
        }
    }

    @Test("API keys: the printed key parses back; a wrong secret, an unknown id or a revoked key authenticate as nobody")
    func apiKeys() {
        let key = APIKey.generate()
        #expect(key.text.count == 56)
        #expect(APIKey(parsing: Substring(key.text)) == key)
        for bad in ["", "bwk_", key.text + "x", String(key.text.dropLast()), key.text.replacingOccurrences(of: "bwk_", with: "bwq_"),
                    "bwk_" + String(repeating: "!", count: 52)] {
            #expect(APIKey(parsing: Substring(bad)) == nil, "\(bad)")
        }
        let other = APIKey.generate()
        let revoked = APIKey.generate()
        let table = KeyTable(KeyFile(keys: [
            KeyEntry(id: key.id, name: "a", role: .admin, sha256: key.secretDigest, rate: 1, burst: 1, output: .full, created: ""),
            KeyEntry(id: revoked.id, name: "r", role: .admin, sha256: revoked.secretDigest, rate: 1, burst: 1, output: .full, created: "", revoked: true),
        ]))
        #expect(table.authenticate(key)?.name == "a")
        #expect(table.authenticate(APIKey(id: key.id, secret: other.secret)) == nil)
        #expect(table.authenticate(other) == nil)
        #expect(table.authenticate(revoked) == nil)
    }

    @Test("configuration files: unknown fields and out-of-range limits are refused, naming the field")
    func limitsFile() throws {
        let directory = TestSupport.temporaryDirectory()
        let path = directory + "/serve.json"
        try Data(#"{"max_rows": 16, "batch_window_microseconds": 0}"#.utf8).write(to: URL(fileURLWithPath: path))
        let limits = try ServeConfiguration.Limits.read(path)
        #expect(limits.maxRows == 16 && limits.batchWindowMicroseconds == 0 && limits.maxQueueRows == 4096)
        for (text, field) in [(#"{"max_rowz": 16}"#, "max_rowz"), (#"{"max_rows": 0}"#, "max_rows"), (#"{"max_queue_rows": 1}"#, "max_queue_rows")] {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            #expect { try ServeConfiguration.Limits.read(path) } throws: { "\($0)".contains(field) }
        }
    }
}

@Suite("The audit log's hash chain")
struct AuditChainTests {
    /// A log of `count` entries written by the service's writer.
    func makeLog(_ count: Int, name: String = #function) throws -> String {
        let path = TestSupport.temporaryDirectory("audit-" + name) + "/audit.jsonl"
        let log = try AuditLog(path: path)
        for i in 0..<count { log.record("key_added", key: "k\(i)", detail: ["role": "admin"]) }
        log.flush()
        log.finish()
        return path
    }

    func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func write(_ lines: [String], to path: String) throws {
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
    }

    @Test("an intact log verifies; an edit, a deletion, an insertion or a swap is caught at the right line")
    func tampering() throws {
        let path = try makeLog(6)
        let original = try lines(path)
        #expect(try AuditVerifier.verify(path: path).count == 6)
        func failure(_ lines: [String]) throws -> AuditVerifier.Failure? {
            try write(lines, to: path)
            do { _ = try AuditVerifier.verify(path: path); return nil } catch let failure as AuditVerifier.Failure { return failure }
        }
        var edited = original
        edited[2] = edited[2].replacingOccurrences(of: "\"k2\"", with: "\"k9\"")
        #expect(try failure(edited)?.line == 4)  // line 3 edited: line 4's prev no longer matches
        var deleted = original
        deleted.remove(at: 3)
        #expect(try failure(deleted)?.line == 4)
        var swapped = original
        swapped.swapAt(1, 2)
        #expect(try failure(swapped)?.line == 2)
        var inserted = original
        inserted.insert(original[1], at: 2)
        #expect(try failure(inserted)?.line == 3)
        #expect(try failure(Array(original.dropFirst()))?.line == 1)
        var lastEdited = original
        lastEdited[5] = lastEdited[5].replacingOccurrences(of: "\"seq\":6", with: "\"seq\":7")
        #expect(try failure(lastEdited)?.line == 6)
        try write(original, to: path)
        try Data(Array(original.joined(separator: "\n").utf8.dropLast(3))).write(to: URL(fileURLWithPath: path))
        #expect(throws: AuditVerifier.Failure.self) { try AuditVerifier.verify(path: path) }  // cut mid-line
    }

    @Test("a cut tail is caught against a head recorded earlier; the writer resumes an intact chain and refuses a broken one")
    func headAndResume() throws {
        let path = try makeLog(4)
        let head = try AuditVerifier.verify(path: path).head
        let original = try lines(path)
        try write(Array(original.prefix(3)), to: path)
        #expect(throws: AuditVerifier.Failure.self) { try AuditVerifier.verify(path: path, expectHead: head) }
        try write(original, to: path)
        let log = try AuditLog(path: path)
        log.record("start")
        log.flush()
        log.finish()
        let resumed = try AuditVerifier.verify(path: path, expectHead: head)
        #expect(resumed.count == 5 && resumed.anchorLine == 4)
        var broken = try lines(path)
        broken[0] = broken[0].replacingOccurrences(of: "k0", with: "kX")
        try write(broken, to: path)
        #expect(throws: ServeError.self) { try AuditLog(path: path) }
    }

    @Test("with a chain key, a rewritten tail is caught even when every later link is recomputed; without the key the log does not verify")
    func keyedChain() throws {
        let path = TestSupport.temporaryDirectory() + "/audit.jsonl"
        let key = SymmetricKey(size: .bits256)
        let log = try AuditLog(path: path, chainKey: key)
        for i in 0..<4 { log.record("key_added", key: "k\(i)") }
        log.flush()
        log.finish()
        #expect(try AuditVerifier.verify(path: path, key: key).count == 4)
        #expect(throws: AuditVerifier.Failure.self) { try AuditVerifier.verify(path: path) }
        // An attacker edits line 2 and recomputes the links after it with plain SHA-256.
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[1] = lines[1].replacingOccurrences(of: "k1", with: "kX")
        for i in 2..<lines.count {
            var entry = try JSONDecoder().decode(AuditEntry.self, from: Data(lines[i].utf8))
            entry.prev = AuditVerifier.hash(lines[i - 1])
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            lines[i] = String(decoding: try encoder.encode(entry), as: UTF8.self)
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: path))
        #expect { try AuditVerifier.verify(path: path, key: key) } throws: { ($0 as? AuditVerifier.Failure)?.line == 3 }
    }

    @Test("a log cut below its recorded head (PATH.head) is refused at start")
    func recordedHead() throws {
        let path = try makeLog(5)
        let head = try JSONDecoder().decode(AuditLog.Head.self, from: Data(contentsOf: URL(fileURLWithPath: path + ".head")))
        #expect(head.seq == 5)
        let original = try lines(path)
        try write(Array(original.prefix(4)), to: path)
        #expect(throws: ServeError.self) { try AuditLog(path: path) }
        try write(original, to: path)
        let reopened = try AuditLog(path: path)
        reopened.finish()
    }

    @Test("a flood of denials becomes one counted line per second, not one write per request")
    func denialsAggregated() throws {
        let path = TestSupport.temporaryDirectory() + "/audit.jsonl"
        let log = try AuditLog(path: path)
        for _ in 0..<1000 { log.recordDenial(reason: "unknown", remote: "10.0.0.1", route: "/v1/models") }
        log.flush()
        log.finish()
        let entries = try lines(path)
        #expect(entries.count == 1)
        #expect(entries[0].contains("\"count\":1000"))
    }
}

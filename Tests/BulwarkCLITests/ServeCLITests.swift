#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import _TestSupport

/// `bulwark serve` and `bulwark audit` as an operator uses them: keys, refusals with exit codes, a
/// real start on a loopback port, SIGTERM, and the audit log checked and tampered with.
@Suite("bulwark serve and audit", .serialized)
struct ServeCLITests {
    @Test("keys add prints the key once and stores only its hash (mode 0600); list, revoke; a repeated name is refused")
    func keys() throws {
        let directory = TestSupport.temporaryDirectory()
        let file = directory + "/keys.json"
        let add = try CLIRun(["serve", "keys", "add", "--api-keys", file, "--name", "ci", "--role", "predictor", "--rate", "5", "--burst", "10"])
        #expect(add.status == 0, "\(add.stderr)")
        let key = add.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(key.hasPrefix("bwk_") && key.count == 56)
        let stored = try String(contentsOfFile: file, encoding: .utf8)
        #expect(!stored.contains(String(key.dropFirst(13))))  // the secret is not in the file
        let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let again = try CLIRun(["serve", "keys", "add", "--api-keys", file, "--name", "ci", "--role", "admin"])
        #expect(again.status == 2 && again.stderr.contains("exists already"))
        #expect(try CLIRun(["serve", "keys", "add", "--api-keys", file, "--name", "x", "--role", "root"]).status == 64)
        #expect(try CLIRun(["serve", "keys", "add", "--api-keys", file, "--name", "x", "--role", "admin", "--rate", "1e-300"]).status == 64)
        #expect(try CLIRun(["serve", "keys", "revoke", "--api-keys", file, "--name", "ci"]).status == 0)
        let list = try CLIRun(["serve", "keys", "list", "--api-keys", file, "--json"])
        #expect(list.jsonLines.first?["revoked"] as? Bool == true && list.jsonLines.first?["name"] as? String == "ci")
        chmod(file, 0o644)
        let open = try CLIRun(["serve", "keys", "list", "--api-keys", file])
        #expect(open.status == 2 && open.stderr.contains("chmod 600"))
    }

    @Test("unsafe or incomplete configurations are usage errors that name the fix")
    func refusals() throws {
        let directory = TestSupport.temporaryDirectory()
        _ = try CLIRun(["serve", "keys", "add", "--api-keys", directory + "/keys.json", "--name", "a", "--role", "admin"])
        let model = "m=models/mlp-standard.safetensors"
        let cases: [([String], String)] = [
            (["serve", "--model", model, "--api-keys", directory + "/keys.json", "--insecure-http", "--host", "0.0.0.0"], "loopback"),
            (["serve", "--model", model, "--api-keys", directory + "/keys.json"], "--tls-cert"),
            (["serve", "--model", "m", "--api-keys", directory + "/keys.json", "--insecure-http"], "NAME=PATH"),
            (["serve", "--model", model, "--model", model, "--api-keys", directory + "/keys.json", "--insecure-http"], "given twice"),
            (["serve", "--model", model, "--insecure-http"], "--api-keys"),
            (["serve", "--model", model, "--api-keys", directory + "/keys.json", "--insecure-http", "--audit-key", "k"], "--audit-log"),
        ]
        for (arguments, fragment) in cases {
            let run = try CLIRun(arguments)
            #expect(run.status == 64, "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains(fragment), "\(arguments): \(run.stderr)")
        }
    }

    @Test("a real start: the service answers on loopback, drains on SIGTERM (exit 0), and its audit log verifies until edited")
    func startStopAudit() throws {
        let directory = TestSupport.temporaryDirectory()
        let keys = directory + "/keys.json", audit = directory + "/audit.jsonl"
        let key = try CLIRun(["serve", "keys", "add", "--api-keys", keys, "--name", "a", "--role", "admin"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLIRun.executable)
        process.arguments = ["serve", "--model", "m=models/mlp-standard.safetensors", "--api-keys", keys, "--insecure-http",
                             "--port", "0", "--audit-log", audit]
        process.currentDirectoryURL = URL(fileURLWithPath: TestSupport.repositoryRoot)
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // The "listening" log line carries the port.
        var port: Int?
        var buffer = Data()
        let deadline = Date().addingTimeInterval(60)
        while port == nil, Date() < deadline {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            for line in String(decoding: buffer, as: UTF8.self).split(separator: "\n") {
                if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                   object["message"] as? String == "listening" { port = object["port"] as? Int }
            }
        }
        let bound = try #require(port, "\(String(decoding: buffer, as: UTF8.self))")
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(bound)/v1/models")!)
        request.setValue("Bearer " + key, forHTTPHeaderField: "Authorization")
        final class Answer: @unchecked Sendable { var value: (Int, Data)? }  // written before `done` is signalled
        let answer = Answer()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, response, _ in
            answer.value = ((response as? HTTPURLResponse)?.statusCode ?? 0, data ?? Data())
            done.signal()
        }.resume()
        done.wait()
        let (status, body) = try #require(answer.value)
        #expect(status == 200)
        #expect(String(decoding: body, as: UTF8.self).contains("\"sha256\""))
        process.terminate()  // SIGTERM
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let verify = try CLIRun(["audit", "verify", audit, "--json"])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.jsonLines.first?["lines"] as? Int == 2)  // start, stop
        var text = try String(contentsOfFile: audit, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"event\":\"start\"", with: "\"event\":\"boot\"")
        try text.write(toFile: audit, atomically: false, encoding: .utf8)
        let tampered = try CLIRun(["audit", "verify", audit])
        #expect(tampered.status == 1)
        #expect(tampered.stderr.contains("line 2"))
    }
}
#endif

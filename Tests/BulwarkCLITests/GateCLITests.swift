import Foundation
import Testing
import _TestSupport

@Suite("bulwark gate exit codes", .serialized)
struct GateCLITests {
    /// Writes a report made by `bulwark bench` on the sample with a tiny configuration, then edits it:
    /// `lost` clean-correct examples become wrong (value and per-example outcomes, consistently), or
    /// with `tamper` only the value changes.
    static func writeReport(_ directory: String, lost: Int = 0, tamper: Bool = false, n: Int? = nil) throws -> String {
        let base = directory + "/base.json"
        if !FileManager.default.fileExists(atPath: base) {
            let model = directory + "/m.safetensors"
            let train = try CLIRun(["train", "--model", "784-16-10", "--epochs", "1", "--limit", "500", "--out", model,
                                    "--data-dir", TestSupport.sampleDirectory])
            #expect(train.status == 0, "\(train.stderr)")
            let config = #"{"schema":"bulwark-bench-config/1","seed":0,"epsilons":[0,0.1],"dataset":{"name":"fashion-mnist","split":"test","n":200},"models":[{"name":"m","path":"m.safetensors"}],"attacks":[{"name":"FGSM","type":"fgsm","norm":"linf"},{"name":"PGD-5","type":"pgd","norm":"linf","steps":5}],"check_examples":50}"#
            try config.write(toFile: directory + "/bench.json", atomically: true, encoding: .utf8)
            let bench = try CLIRun(["bench", "--config", directory + "/bench.json", "--report", base, "--data-dir", TestSupport.sampleDirectory])
            #expect(bench.status == 0, "\(bench.stderr)")
            #expect(bench.stdout.contains("| m | **worst case** |"))
        }
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: base))) as! [String: Any]
        var models = json["models"] as! [[String: Any]]
        var metrics = models[0]["metrics"] as! [[String: Any]]  // the gate compares the metrics
        let index = metrics.firstIndex { $0["name"] as? String == "clean" }!
        var bytes = [UInt8](Data(base64Encoded: metrics[index]["outcomes"] as! String)!)
        let count = metrics[index]["n"] as! Int
        var cleared = 0
        for i in 0..<count where cleared < lost && !tamper && bytes[i / 8] & (1 << (i % 8)) != 0 {
            bytes[i / 8] &= ~(1 << (i % 8))
            cleared += 1
        }
        #expect(cleared == (tamper ? 0 : lost))
        metrics[index]["outcomes"] = Data(bytes).base64EncodedString()
        metrics[index]["value"] = (metrics[index]["value"] as! Double) - Double(lost) / Double(count)
        metrics[index]["ci95"] = nil  // the old interval need not contain the new value (the gate refuses such a report)
        models[0]["metrics"] = metrics
        json["models"] = models
        if let n { json["n"] = n }
        let path = directory + "/new-\(lost)-\(tamper)-\(n ?? 0).json"
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("0 within tolerance, 1 on a regression (with JUnit), 2 on unusable or incomparable input")
    func exitCodes() throws {
        let directory = TestSupport.temporaryDirectory()
        let same = try Self.writeReport(directory)
        let worse = try Self.writeReport(directory, lost: 10)
        let tampered = try Self.writeReport(directory, lost: 10, tamper: true)
        let otherN = try Self.writeReport(directory, n: 7)
        let base = directory + "/base.json"

        let pass = try CLIRun(["gate", "--baseline", base, "--report", same, "--max-drop", "0.01"])
        #expect(pass.status == 0, "\(pass.stdout)\(pass.stderr)")
        #expect(pass.stdout.contains("gate: passed"))

        let junit = directory + "/gate.xml"
        let fail = try CLIRun(["gate", "--baseline", base, "--report", worse, "--max-drop", "0.01", "--junit", junit])
        #expect(fail.status == 1, "\(fail.stderr)")
        #expect(fail.stdout.contains("**REGRESSION**"))
        #expect(try String(contentsOfFile: junit, encoding: .utf8).contains("<failure"))

        // A value that disagrees with the report's own per-example outcomes: an edited or corrupt report.
        let edited = try CLIRun(["gate", "--baseline", base, "--report", tampered])
        #expect(edited.status == 2 && edited.stderr.contains("outcomes"), "\(edited.stderr)")

        let incomparable = try CLIRun(["gate", "--baseline", base, "--report", otherN])
        // Its top-level n (7) contradicts its models' (200): refused as impossible before any comparison.
        #expect(incomparable.status == 2)
        #expect(incomparable.stderr.contains("impossible value") && incomparable.stderr.contains("the report 7"), "\(incomparable.stderr)")

        let missing = try CLIRun(["gate", "--baseline", base, "--report", directory + "/nope.json"])
        #expect(missing.status == 2 && missing.stderr.contains("cannot open"))

        try "not json".write(toFile: directory + "/garbage.json", atomically: true, encoding: .utf8)
        let garbage = try CLIRun(["gate", "--baseline", base, "--report", directory + "/garbage.json"])
        #expect(garbage.status == 2 && garbage.stderr.contains("not a usable Bulwark report"))

        let badDrop = try CLIRun(["gate", "--baseline", base, "--report", same, "--max-drop", "3"])
        #expect(badDrop.status == 64 && badDrop.stderr.contains("--max-drop"))
    }

    @Test("bench trains missing models only with --train-missing, records them in the manifest and evaluates them")
    func benchTrainsMissingModels() throws {
        let directory = TestSupport.temporaryDirectory()
        let recipe = #"{"architecture":"784-8-10","epochs":1,"seed":%d}"#
        let config = #"{"schema":"bulwark-bench-config/2","seed":0,"epsilons":[0,0.1],"dataset":{"name":"fashion-mnist","split":"test","n":100},"models":[{"name":"a","path":"models/a.safetensors","recipe":\#(String(format: recipe, 1))},{"name":"b","path":"models/b.safetensors","recipe":\#(String(format: recipe, 2))}],"attacks":[{"name":"FGSM","type":"fgsm","norm":"linf"}],"check_examples":20}"#
        try config.write(toFile: directory + "/bench.json", atomically: true, encoding: .utf8)
        let arguments = ["bench", "--config", directory + "/bench.json", "--report", directory + "/report.json", "--cards",
                         "--data-dir", TestSupport.sampleDirectory]
        let refused = try CLIRun(arguments)
        #expect(refused.status == 2 && refused.stderr.contains("'a' (") && refused.stderr.contains("1 epochs of cross-entropy")
                && refused.stderr.contains("--train-missing"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/models/a.safetensors"))
        let bench = try CLIRun(arguments + ["--train-missing"])
        #expect(bench.status == 0, "\(bench.stderr)")
        #expect(bench.stdout.contains("| a | FGSM |") && bench.stdout.contains("| b | FGSM |"))
        let verify = try CLIRun(["manifest", "verify", directory + "/models"])
        #expect(verify.status == 0 && verify.stdout.contains("ok        a.card.json") && verify.stdout.contains("ok        b.safetensors"))
        let card = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/models/a.card.json"))) as? [String: Any]
        #expect(card?["train_command"] as? String == "bulwark train --model 784-8-10 --epochs 1 --batch 128 --optimizer adam --lr 0.001 --seed 1 --out models/a.safetensors")
    }

    @Test("bench refuses a bad configuration with a clear message")
    func badConfig() throws {
        let directory = TestSupport.temporaryDirectory()
        try #"{"schema":"bulwark-bench-config/1","seed":0,"epsilons":[0.2,0.1],"dataset":{"name":"fashion-mnist","split":"test","n":10},"models":[{"name":"m","path":"m.safetensors"}],"attacks":[{"name":"F","type":"fgsm","norm":"linf"}]}"#
            .write(toFile: directory + "/bench.json", atomically: true, encoding: .utf8)
        let run = try CLIRun(["bench", "--config", directory + "/bench.json", "--data-dir", TestSupport.sampleDirectory])
        #expect(run.status != 0)
        #expect(run.stderr.contains("\"epsilons\" must be increasing"))
        try #"{"schema":"bulwark-bench-config/1","seed":0,"epsilons":[0,0.1],"dataset":{"name":"fashion-mnist","split":"test","n":10},"models":[{"name":"m","path":"m.safetensors"}],"attacks":[{"name":"F","type":"fgsm","norm":"linf"}]}"#
            .write(toFile: directory + "/bench2.json", atomically: true, encoding: .utf8)
        let missing = try CLIRun(["bench", "--config", directory + "/bench2.json", "--data-dir", TestSupport.sampleDirectory])
        #expect(missing.status == 2 && missing.stderr.contains("models are missing") && missing.stderr.contains("has no \"recipe\""))
    }
}

import Foundation
import Testing
import _TestSupport

@Suite("bulwark bench --shard and bulwark report merge|diff", .serialized)
struct ReportCLITests {
    @Test("two shards merge into the unsharded report (report diff: 0); bad shards, parts and reports get clear errors")
    func shardsMergeAndDiff() throws {
        let directory = TestSupport.temporaryDirectory()
        let model = directory + "/m.safetensors"
        let train = try CLIRun(["train", "--model", "784-16-10", "--epochs", "1", "--limit", "300", "--out", model,
                                "--data-dir", TestSupport.sampleDirectory])
        #expect(train.status == 0, "\(train.stderr)")
        let config = directory + "/bench.json"
        try #"{"schema":"bulwark-bench-config/2","seed":3,"epsilons":[0,0.1],"dataset":{"name":"fashion-mnist","split":"test","n":60},"models":[{"name":"m","path":"m.safetensors"}],"attacks":[{"name":"FGSM","type":"fgsm","norm":"linf"},{"name":"PGD-5","type":"pgd","norm":"linf","steps":5}],"check_examples":30}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let common = ["bench", "--config", config, "--data-dir", TestSupport.sampleDirectory, "--threads", "2"]
        let full = try CLIRun(common + ["--report", directory + "/full.json", "--html", directory + "/full.html"])
        #expect(full.status == 0, "\(full.stderr)")
        let page = try String(contentsOfFile: directory + "/full.html", encoding: .utf8)
        #expect(page.hasPrefix("<!DOCTYPE html>") && page.contains("<svg") && page.contains("m: accuracy under attack"))
        for index in 0..<2 {
            let part = try CLIRun(common + ["--shard", "\(index)/2", "--report", directory + "/part-\(index).json"])
            #expect(part.status == 0, "\(part.stderr)")
            #expect(part.stdout.contains("shard \(index)/2:"))
        }
        let merge = try CLIRun(["report", "merge", directory + "/part-1.json", directory + "/part-0.json", "--out", directory + "/merged.json"])
        #expect(merge.status == 0, "\(merge.stderr)")
        #expect(merge.stdout.contains("| m | **worst case** |") && merge.stdout.contains("merged 2 parts"))
        // The merged report renders like the unsharded one (report R --html P, or report html R --out P).
        let html = try CLIRun(["report", directory + "/merged.json", "--html", directory + "/merged.html"])
        #expect(html.status == 0, "\(html.stderr)")
        let merged = try String(contentsOfFile: directory + "/merged.html", encoding: .utf8)
        #expect(merged.components(separatedBy: "class=\"series\"").count == page.components(separatedBy: "class=\"series\"").count)
        let again = try CLIRun(["report", "html", directory + "/merged.json", "--out", directory + "/merged.html"])
        #expect(again.status == 0, "\(again.stderr)")  // replaces its own kind
        let notHTML = try CLIRun(["report", directory + "/merged.json", "--html", directory + "/page.txt"])
        #expect(notHTML.status == 64 && notHTML.stderr.contains(".html"), "\(notHTML.stderr)")
        let overModel = try CLIRun(["report", directory + "/merged.json", "--html", directory + "/bench.json"])
        #expect(overModel.status == 64, "\(overModel.stderr)")
        let missingReport = try CLIRun(["report", directory + "/nothing.json", "--html", directory + "/x.html"])
        #expect(missingReport.status == 2, "\(missingReport.stderr)")
        let same = try CLIRun(["report", "diff", directory + "/full.json", directory + "/merged.json"])
        #expect(same.status == 0 && same.stdout.contains("hold the same results"), "\(same.stdout)\(same.stderr)")
        let gate = try CLIRun(["gate", "--baseline", directory + "/full.json", "--report", directory + "/merged.json", "--max-drop", "0"])
        #expect(gate.status == 0, "\(gate.stdout)\(gate.stderr)")

        // A report with other results: diff exits 1 and names the field.
        let other = try CLIRun(common + ["--limit", "50", "--report", directory + "/other.json"])
        #expect(other.status == 0, "\(other.stderr)")
        let differ = try CLIRun(["report", "diff", directory + "/full.json", directory + "/other.json"])
        #expect(differ.status == 1 && differ.stdout.contains("$.configuration.dataset.n: 60 against 50"), "\(differ.stdout)\(differ.stderr)")

        // Usage errors (64) before any work; unusable parts (2).
        for (arguments, message) in [(["--shard", "2/2"], "0 ≤ I < N"), (["--shard", "one/2"], "I/N"),
                                     (["--shard", "0/2", "--cards"], "--cards needs the whole bench"),
                                     (["--shard", "0/2", "--strict"], "--strict applies to the merged report"),
                                     (["--shard", "0/2", "--html", directory + "/p.html"], "--html needs the whole bench"),
                                     (["--html", directory + "/p.txt"], "--html must name an .html file")] {
            let run = try CLIRun(common + arguments)
            #expect(run.status == 64 && run.stderr.contains(message), "\(arguments): \(run.status) \(run.stderr)")
        }
        let missing = try CLIRun(["report", "merge", directory + "/part-0.json", "--out", directory + "/x.json"])
        #expect(missing.status == 2 && missing.stderr.contains("1/2 are missing"), "\(missing.stderr)")
        let notPart = try CLIRun(["report", "merge", directory + "/full.json", "--out", directory + "/x.json"])
        #expect(notPart.status == 2 && notPart.stderr.contains("complete report"), "\(notPart.stderr)")
        let overwrite = try CLIRun(["report", "merge", directory + "/part-0.json", directory + "/part-1.json", "--out", directory + "/part-1.json"])
        #expect(overwrite.status == 73 && overwrite.stderr.contains("an input of this command"), "\(overwrite.stderr)")
        let noParts = try CLIRun(["report", "merge", "--out", directory + "/x.json"])
        #expect(noParts.status == 64, "\(noParts.stderr)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/x.json"))
    }

    @Test("attack --save-adv --png draws the first 16 examples (clean, adversarial, perturbation) with their labels")
    func attackPNG() throws {
        let directory = TestSupport.temporaryDirectory()
        let model = TestSupport.repositoryRoot + "/models/mlp-standard.safetensors"
        let run = try CLIRun(["attack", model, "--attack", "pgd", "--eps", "0.1", "--limit", "40", "--data-dir", TestSupport.sampleDirectory,
                              "--save-adv", directory + "/adv.safetensors", "--png", directory + "/png"])
        #expect(run.status == 0, "\(run.stderr)")
        let png = [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/png/examples.png")))
        #expect(Array(png.prefix(8)) == [137, 80, 78, 71, 13, 10, 26, 10])
        func u32(_ at: Int) -> Int { Int(png[at]) << 24 | Int(png[at + 1]) << 16 | Int(png[at + 2]) << 8 | Int(png[at + 3]) }
        // Three 28×28 images ×2 per row with 2-pixel gaps; 16 rows.
        #expect(u32(16) == 3 * 56 + 4 * 2 && u32(20) == 16 * 56 + 17 * 2)
        let csv = try String(contentsOfFile: directory + "/png/examples.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 17 && csv[0] == "row,label,clean_prediction,adversarial_prediction,fooled")
        // A second run replaces its own files; a PNG path over a model is refused before the attack.
        let again = try CLIRun(["attack", model, "--attack", "fgsm", "--eps", "0.1", "--limit", "40", "--data-dir", TestSupport.sampleDirectory,
                                "--save-adv", directory + "/adv.safetensors", "--png", directory + "/png"])
        #expect(again.status == 0, "\(again.stderr)")
        // A PNG Bulwark did not draw is not replaced without --force.
        let theirs = directory + "/theirs"
        try FileManager.default.createDirectory(atPath: theirs, withIntermediateDirectories: true)
        try Data([137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13]).write(to: URL(fileURLWithPath: theirs + "/examples.png"))
        let refused = try CLIRun(["attack", model, "--attack", "fgsm", "--eps", "0.1", "--limit", "40", "--data-dir", TestSupport.sampleDirectory,
                                  "--save-adv", directory + "/adv2.safetensors", "--png", theirs])
        #expect(refused.status == 73 && refused.stderr.contains("--force"), "\(refused.stderr)")
        let noSave = try CLIRun(["attack", model, "--eps", "0.1", "--png", directory + "/png"])
        #expect(noSave.status == 64 && noSave.stderr.contains("--save-adv"), "\(noSave.stderr)")
    }
}

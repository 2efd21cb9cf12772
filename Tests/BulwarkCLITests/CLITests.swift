import Foundation
import Testing
import _TestSupport

/// Runs the built `bulwark` executable, as a user or a CI job would.
struct CLIRun {
    let status: Int32
    let stdout: String
    let stderr: String

    static var executable: String {
        // Test bundles are built next to the executable (.build/<config>/).
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("bulwark").path), directory.path != "/" {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("bulwark").path
    }

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: TestSupport.repositoryRoot)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        status = process.terminationStatus
        stdout = String(decoding: outData, as: UTF8.self)
        stderr = String(decoding: errData, as: UTF8.self)
    }

    /// Each stdout line parsed as a JSON object.
    var jsonLines: [[String: Any]] {
        stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

@Suite("bulwark command line", .serialized)
struct CLITests {
    let sample = ["--data-dir", TestSupport.sampleDirectory]

    @Test("train --json, eval --json and inspect on the committed sample")
    func trainEvalInspect() throws {
        let directory = TestSupport.temporaryDirectory()
        let model = directory + "/m.safetensors"
        let train = try CLIRun(["train", "--model", "784-32-10", "--epochs", "2", "--batch", "64", "--seed", "1",
                                "--limit", "1000", "--out", model, "--json"] + sample)
        #expect(train.status == 0, "\(train.stderr)")
        let lines = train.jsonLines
        #expect(lines.count == 3)
        for key in ["epoch", "loss", "train_accuracy", "val_accuracy", "seconds", "samples_per_second"] {
            #expect(lines[0][key] != nil, "epoch line lacks \(key)")
        }
        #expect(lines[2]["type"] as? String == "summary")
        #expect(train.stderr.contains("fashion-mnist-sample"))
        #expect(FileManager.default.fileExists(atPath: directory + "/m.checkpoint.safetensors"))

        let eval = try CLIRun(["eval", model, "--json"] + sample)
        #expect(eval.status == 0, "\(eval.stderr)")
        let result = try #require(eval.jsonLines.first)
        #expect(result["n"] as? Int == 1000)
        #expect((result["accuracy"] as? Double ?? 0) > 0.5)
        #expect(result["accuracy"] as? Double == lines[2]["test_accuracy"] as? Double)

        let inspect = try CLIRun(["inspect", model])
        #expect(inspect.status == 0)
        #expect(inspect.stdout.contains("784-32-10") && inspect.stdout.contains("25450") && inspect.stdout.contains("sha256"))
    }

    @Test("train --from starts from a model's weights and architecture; --recipe starts from a shipped recipe")
    func fineTuningAndShippedRecipes() throws {
        let directory = TestSupport.temporaryDirectory()
        let base = directory + "/base.safetensors", tuned = directory + "/tuned.safetensors"
        let limit = ["--limit", "500"] + sample
        let first = try CLIRun(["train", "--model", "784-32-10", "--epochs", "1", "--out", base, "--json"] + limit)
        #expect(first.status == 0, "\(first.stderr)")
        // An SGD step of 1e-12 is below half an ulp of every weight: the weights come out unchanged,
        // so the tuned model predicts exactly as the base (and no --model is needed).
        let second = try CLIRun(["train", "--from", base, "--optimizer", "sgd", "--lr", "1e-12", "--epochs", "1", "--out", tuned, "--json"] + limit)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stderr.contains("initial weights from \(base)") && second.stderr.contains("784-32-10"))
        let baseAccuracy = try #require(first.jsonLines.last?["test_accuracy"] as? Double)
        #expect(second.jsonLines.last?["test_accuracy"] as? Double == baseAccuracy)
        let metadata = try Self.safetensorsMetadata(tuned)
        #expect(metadata["initial_model_sha256"] == first.jsonLines.last?["sha256"] as? String)
        #expect(metadata["recipe"]?.contains(#""initial_model":"\#(base)""#) == true)

        let mismatch = try CLIRun(["train", "--from", base, "--model", "784-64-10", "--epochs", "1", "--out", directory + "/x.safetensors"] + limit)
        #expect(mismatch.status != 0)
        #expect(mismatch.stderr.contains("Linear(784, 32)") && mismatch.stderr.contains("Linear(784, 64)") && mismatch.stderr.contains("leave --model out"), "\(mismatch.stderr)")
        let overwrite = try CLIRun(["train", "--from", base, "--epochs", "1", "--out", base] + limit)
        #expect(overwrite.status != 0 && overwrite.stderr.contains(base), "\(overwrite.stderr)")
        let overwriteByCheckpoint = try CLIRun(["train", "--from", base, "--epochs", "1", "--checkpoint", base, "--out", directory + "/z.safetensors"] + limit)
        #expect(overwriteByCheckpoint.status != 0 && overwriteByCheckpoint.stderr.contains(base), "\(overwriteByCheckpoint.stderr)")
        let checkpoint = directory + "/base.checkpoint.safetensors"
        let fromCheckpoint = try CLIRun(["train", "--from", checkpoint, "--epochs", "1", "--out", directory + "/z.safetensors"] + limit)
        #expect(fromCheckpoint.status != 0 && fromCheckpoint.stderr.contains("is a training checkpoint")
                && fromCheckpoint.stderr.contains("--resume \(checkpoint)"), "\(fromCheckpoint.stderr)")

        // Flags are checked before the --from file is read (a usage error, exit 64, even if the file is missing).
        for (flags, message) in [(["--optimizer", "adam", "--momentum", "0.9"], "--momentum applies"),
                                 (["--init", "he"], "--init applies to training from a seeded initialisation"),
                                 (["--dp-noise", "1"], "--from and --dp-noise cannot be combined")] {
            let refused = try CLIRun(["train", "--from", directory + "/missing.safetensors", "--out", directory + "/w.safetensors"] + flags)
            #expect(refused.status == 64 && refused.stderr.contains(message), "\(flags): \(refused.status) \(refused.stderr)")
        }
        // Resuming a fine-tuning run reads the architecture from the checkpoint.
        let resumed = try CLIRun(["train", "--from", base, "--optimizer", "sgd", "--lr", "1e-12", "--epochs", "2", "--out", tuned,
                                  "--resume", directory + "/tuned.checkpoint.safetensors", "--json"] + limit)
        #expect(resumed.status == 0 && resumed.stderr.contains("resumed from") && resumed.jsonLines.count == 2, "\(resumed.stderr)")
        #expect(try Self.safetensorsMetadata(tuned)["initial_model_sha256"] == first.jsonLines.last?["sha256"] as? String)

        let madry = try CLIRun(["train", "--recipe", "madry", "--model", "784-16-10", "--epochs", "1", "--seed", "3",
                                "--out", directory + "/madry.safetensors", "--json", "--limit", "300"] + sample)
        #expect(madry.status == 0, "\(madry.stderr)")
        let madryMetadata = try Self.safetensorsMetadata(directory + "/madry.safetensors")
        let recipe = madryMetadata["recipe"] ?? ""
        #expect(recipe.contains(#""mix":1"#) && recipe.contains(#""steps":7"#) && recipe.contains(#""seed":3"#), "\(recipe)")
        #expect(madryMetadata["spec"] == "784-16-10")
        let changed = try CLIRun(["train", "--recipe", "madry", "--lr", "0.1", "--out", directory + "/y.safetensors"])
        #expect(changed.status != 0 && changed.stderr.contains("--lr cannot change --recipe madry"), "\(changed.stderr)")
        let unknown = try CLIRun(["train", "--recipe", "trades-9", "--out", directory + "/y.safetensors"])
        #expect(unknown.status != 0 && unknown.stderr.contains("unknown recipe 'trades-9'") && unknown.stderr.contains("crown-ibp"))
    }

    /// The `__metadata__` of a safetensors file.
    static func safetensorsMetadata(_ path: String) throws -> [String: String] {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let length = bytes[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + length)])) as? [String: Any]
        return header?["__metadata__"] as? [String: String] ?? [:]
    }

    @Test("bad flags print what is wrong and exit non-zero", arguments: [
        (["train", "--out", "m.safetensors", "--epochs", "0"], "epochs 0"),
        (["train", "--out", "m.safetensors", "--lr=-1"], "learning rate -1.0"),
        (["train", "--out", "m.safetensors", "--optimizer", "rmsprop"], "rmsprop"),
        (["train", "--out", "m.safetensors", "--model", "784-x-10"], "dash-separated"),
        (["train", "--out", "m.safetensors", "--val-split", "1.5"], "validation fraction 1.5"),
        (["train", "--out", "m.bin"], "must name a .safetensors file"),
        (["train", "--out", "m.safetensors", "--threads", "0"], "--threads must be between 1 and 256"),
        (["train", "--out", "m.safetensors", "--data-dir", "/nonexistent"], "holds no MNIST-format files"),
        (["eval", "/nonexistent.safetensors"], "cannot open /nonexistent.safetensors"),
    ])
    func badFlags(arguments: [String], expected: String) throws {
        let run = try CLIRun(arguments)
        #expect(run.status != 0)
        #expect(run.stderr.contains(expected), "stderr: \(run.stderr)")
        #expect(!run.stderr.contains("Fatal error"))
    }

    @Test("a file that is not a model is refused: first as unverified, then by the parser")
    func notAModel() throws {
        let path = TestSupport.temporaryDirectory() + "/page.safetensors"
        try "<!DOCTYPE html><html>Google Drive - virus scan warning</html>".write(toFile: path, atomically: true, encoding: .utf8)
        let refused = try CLIRun(["eval", path])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("no entry in a manifest") && refused.stderr.contains("--allow-unverified"))
        let parsed = try CLIRun(["eval", path, "--allow-unverified"])
        #expect(parsed.status == 2)
        #expect(parsed.stderr.contains("without verification") && parsed.stderr.contains("is not a valid safetensors file"))
    }
}

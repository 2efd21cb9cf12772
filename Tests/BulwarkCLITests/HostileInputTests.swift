import Foundation
import Glibc
@testable import NeuralNet
import TensorCore
import Testing
import _TestSupport
import _FileSystem
import BulwarkSecurity

/// Hostile inputs from issue 14's campaign, tried against the command line as an attacker would:
/// each exits non-zero with a message naming the problem, within seconds (a watchdog kills a run
/// that hangs, so a regression fails instead of stalling the suite).
@Suite("Hostile inputs at the command line", .serialized)
struct HostileInputTests {
    /// Runs bulwark, killing it after `timeout` seconds; `timedOut` says whether it had to.
    func run(_ arguments: [String], timeout: Double = 20) throws -> (status: Int32, stdout: String, stderr: String, timedOut: Bool) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLIRun.executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let killed = Locked(false)
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
            if process.isRunning {
                killed.withLock { $0 = true }
                process.terminate()
            }
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self),
                killed.withLock { $0 })
    }

    @Test("a FIFO, or a symlink to a device, where a file belongs is refused without hanging")
    func nonRegularFiles() throws {
        let directory = TestSupport.temporaryDirectory("hostile-fifo")
        try Data("model bytes".utf8).write(to: URL(fileURLWithPath: directory + "/a.bin"))
        #expect(try run(["manifest", "create", directory]).status == 0)
        try FileManager.default.removeItem(atPath: directory + "/a.bin")
        #expect(mkfifo(directory + "/a.bin", 0o600) == 0)
        for command in [["manifest", "verify", directory], ["manifest", "create", directory]] {
            let result = try run(command)
            #expect(!result.timedOut && result.status != 0 && result.stderr.contains("not a regular file (a FIFO"),
                    "\(command): \(result.status) \(result.stderr)")
        }
        try FileManager.default.removeItem(atPath: directory + "/a.bin")
        try FileManager.default.createSymbolicLink(atPath: directory + "/a.bin", withDestinationPath: "/dev/zero")
        let device = try run(["manifest", "verify", directory])
        #expect(!device.timedOut && device.status != 0 && device.stderr.contains("a character device"), "\(device.stderr)")

        let key = directory + "/data.key"
        #expect(try run(["keys", "new-data-key", "--out", key]).status == 0)
        let fifo = directory + "/in.fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        for command in [["data", "encrypt", "--key-file", key, fifo, directory + "/out.enc"],
                        ["data", "decrypt", "--key-file", key, fifo, directory + "/out.bin"]] {
            let result = try run(command)
            #expect(!result.timedOut && result.status == 2 && result.stderr.contains("not a regular file"), "\(command): \(result.stderr)")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    /// A small valid model file with `metadata` added.
    func model(metadata: [String: String]) throws -> String {
        let network = Sequential(spec: try ModelSpec.parse("4-3"), seed: 1)
        let path = TestSupport.temporaryDirectory("hostile-model") + "/m.safetensors"
        let bytes = try SafeTensors.serialize(ModelFile.parameterTensors(of: network), metadata: ModelFile.metadata(for: network, extra: metadata))
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("control characters in a model's metadata are escaped by inspect, not sent to the terminal")
    func controlCharacters() throws {
        let path = try model(metadata: ["\u{1B}[1mkey": "\u{1B}[2J\u{1B}[31mPWNED\u{0}\u{7}\u{1B}]0;title\u{7}"])
        let result = try run(["inspect", path, "--allow-unverified"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.stdout.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "raw control characters reached stdout")
        #expect(result.stdout.contains("\\u{1B}[2J\\u{1B}[31mPWNED\\u{0}\\u{7}"), "\(result.stdout)")
    }

    @Test("oversized __metadata__ is refused before anything is built")
    func metadataBound() throws {
        let path = try model(metadata: ["notes": String(repeating: "x", count: SafeTensors.maximumMetadataBytes + 1)])
        let result = try run(["inspect", path, "--allow-unverified"])
        #expect(result.status == 2 && result.stderr.contains("__metadata__ has") && result.stderr.count < 2000, "\(result.stderr.prefix(500))")
    }

    @Test("labels outside the model's classes are refused by eval; --label-column -1 is a value, not a flag")
    func labelsAndNegativeColumn() throws {
        let directory = TestSupport.temporaryDirectory("hostile-labels")
        let network = Sequential(spec: try ModelSpec.parse("3-4-3"), seed: 2)
        let model = directory + "/m3.safetensors"
        try Data(try SafeTensors.serialize(ModelFile.parameterTensors(of: network), metadata: ModelFile.metadata(for: network)))
            .write(to: URL(fileURLWithPath: model))
        try Data("0.1,0.2,0.3,1\n0.4,0.5,0.6,7\n".utf8).write(to: URL(fileURLWithPath: directory + "/test.csv"))
        let result = try run(["eval", model, "--test-csv", directory + "/test.csv", "--label-column", "-1", "--allow-unverified"])
        #expect(result.status == 2 && result.stderr.contains("the data has label 7, but") && result.stderr.contains("only 3 classes"),
                "\(result.stderr)")
        try Data("0.1,0.2,0.3,1\n0.4,0.5,0.6,2\n".utf8).write(to: URL(fileURLWithPath: directory + "/test.csv"))
        let good = try run(["eval", model, "--test-csv", directory + "/test.csv", "--label-column", "-1", "--allow-unverified", "--json"])
        #expect(good.status == 0 && good.stdout.contains("\"n\":2"), "\(good.stderr)")
    }

    @Test("outputs respect the umask: with umask 077 nobody else can read them")
    func umaskRespected() throws {
        for (mask, expected) in [("077", 0o600), ("022", 0o644)] {
            let directory = TestSupport.temporaryDirectory("hostile-umask")
            try Data("x".utf8).write(to: URL(fileURLWithPath: directory + "/a.bin"))
            let shell = Process()
            shell.executableURL = URL(fileURLWithPath: "/bin/sh")
            shell.arguments = ["-c", "umask \(mask) && exec \"$0\" manifest create \"$1\"", CLIRun.executable, directory]
            try shell.run()
            shell.waitUntilExit()
            #expect(shell.terminationStatus == 0)
            let mode = try FileManager.default.attributesOfItem(atPath: directory + "/bulwark-manifest.json")[.posixPermissions] as? Int
            #expect(mode == expected, "umask \(mask): mode \(String(mode ?? -1, radix: 8))")
        }
    }

    @Test("outputs never destroy the command's inputs, and replace files of another kind only with --force")
    func outputsKeepWhatTheUserHad() throws {
        let directory = TestSupport.temporaryDirectory("hostile-outputs")
        let sample = ["--data-dir", TestSupport.sampleDirectory]
        let model = directory + "/m.safetensors", other = directory + "/other.safetensors"
        for path in [model, other] {
            #expect(try run(["train", "--model", "784-8-10", "--epochs", "1", "--limit", "200", "--out", path] + sample).status == 0)
        }
        let digest = { (path: String) in try Data(contentsOf: URL(fileURLWithPath: path)) }
        let (modelBytes, otherBytes) = (try digest(model), try digest(other))
        let attack = ["attack", model, "--attack", "fgsm", "--limit", "50"] + sample
        // The attacked model itself, also through ./ and a symlink: refused even with --force.
        try FileManager.default.createSymbolicLink(atPath: directory + "/link.safetensors", withDestinationPath: model)
        for target in [model, directory + "/./m.safetensors", directory + "/link.safetensors"] {
            let result = try run(attack + ["--save-adv", target, "--force"])
            #expect(result.status == 73 && result.stderr.contains("an input of this command"), "\(target): \(result.stderr)")
        }
        // Another model: refused without --force, replaced with it.
        let refused = try run(attack + ["--save-adv", other])
        #expect(refused.status == 73 && refused.stderr.contains("already holds a model") && refused.stderr.contains("--force"), "\(refused.stderr)")
        #expect(try digest(model) == modelBytes && digest(other) == otherBytes)
        let saved = directory + "/adv.safetensors"
        #expect(try run(attack + ["--save-adv", saved]).status == 0)
        #expect(try run(attack + ["--save-adv", saved]).status == 0, "saved examples may replace saved examples")
        // A large report (its "schema" key comes last, far beyond the first 64 KiB) is still a report.
        let report = directory + "/report.json"
        let padding = String(repeating: "x", count: 200_000)
        try Data(#"{"a_notes" : "\#(padding)", "schema" : "bulwark-report/2"}"#.utf8).write(to: URL(fileURLWithPath: report))
        #expect(FileKind.of(report) == .report)

        // A checkpoint path over notes, and over the model being written.
        let notes = directory + "/notes.txt"
        try Data("my notes".utf8).write(to: URL(fileURLWithPath: notes))
        let train = ["train", "--model", "784-8-10", "--epochs", "1", "--limit", "200"] + sample
        let overNotes = try run(train + ["--out", directory + "/n.safetensors", "--checkpoint", notes])
        #expect(overNotes.status == 73 && overNotes.stderr.contains("a file Bulwark did not write"), "\(overNotes.stderr)")
        #expect(try String(contentsOfFile: notes, encoding: .utf8) == "my notes")
        let overOut = try run(train + ["--out", directory + "/n.safetensors", "--checkpoint", directory + "/n.safetensors"])
        #expect(overOut.status == 73 && overOut.stderr.contains("an input of this command"), "\(overOut.stderr)")

        // data encrypt: the key file as OUT, IN as OUT under another spelling or a hard link.
        let key = directory + "/data.key", plain = directory + "/p.bin"
        #expect(try run(["keys", "new-data-key", "--out", key]).status == 0)
        let keyBytes = try digest(key)
        try Data("secret".utf8).write(to: URL(fileURLWithPath: plain))
        try FileManager.default.linkItem(atPath: plain, toPath: directory + "/hard.bin")
        for output in [key, directory + "/./p.bin", directory + "/hard.bin"] {
            let result = try run(["data", "encrypt", "--key-file", key, plain, output, "--force"])
            #expect(result.status == 73 && result.stderr.contains("an input of this command"), "\(output): \(result.stderr)")
        }
        #expect(try digest(key) == keyBytes && String(contentsOfFile: plain, encoding: .utf8) == "secret")
    }

    @Test("keys rotate through a symlink re-encrypts the file it points to")
    func rotateThroughSymlink() throws {
        let directory = TestSupport.temporaryDirectory("hostile-rotate")
        let (old, new) = (directory + "/old.key", directory + "/new.key")
        #expect(try run(["keys", "new-data-key", "--out", old]).status == 0)
        #expect(try run(["keys", "new-data-key", "--out", new]).status == 0)
        try FileManager.default.createDirectory(atPath: directory + "/real", withIntermediateDirectories: true)
        try Data("secret".utf8).write(to: URL(fileURLWithPath: directory + "/p.bin"))
        #expect(try run(["data", "encrypt", "--key-file", old, directory + "/p.bin", directory + "/real/s.enc"]).status == 0)
        try FileManager.default.createSymbolicLink(atPath: directory + "/link.enc", withDestinationPath: directory + "/real/s.enc")
        let rotate = try run(["keys", "rotate", "--key-file", old, "--new-key-file", new, directory + "/link.enc"])
        #expect(rotate.status == 0, "\(rotate.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: directory + "/link.enc") == directory + "/real/s.enc")
        #expect(try run(["data", "decrypt", "--key-file", old, directory + "/real/s.enc", directory + "/o1"]).status != 0)
        #expect(try run(["data", "decrypt", "--key-file", new, directory + "/real/s.enc", directory + "/o2"]).status == 0)
    }

    @Test("SIGTERM and SIGINT during a write leave no temporary file; a killed writer's leftovers go at the next write")
    func interruptedWrites() throws {
        let directory = TestSupport.temporaryDirectory("hostile-signals")
        let key = directory + "/data.key", input = directory + "/big.bin"
        #expect(try run(["keys", "new-data-key", "--out", key]).status == 0)
        #expect(FileManager.default.createFile(atPath: input, contents: nil))
        #expect(truncate(input, 2 << 30) == 0)  // 2 GiB, sparse: encrypting it takes seconds
        for (signal, status) in [(SIGTERM, Int32(128 + SIGTERM)), (SIGINT, Int32(128 + SIGINT))] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLIRun.executable)
            process.arguments = ["data", "encrypt", "--key-file", key, input, directory + "/big.enc"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Wait until the temporary output exists, then interrupt.
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline, !(try FileManager.default.contentsOfDirectory(atPath: directory)).contains(where: { $0.contains(".tmp-") }) {
                usleep(10_000)
            }
            kill(process.processIdentifier, signal)
            process.waitUntilExit()
            #expect(process.terminationStatus == status, "signal \(signal): status \(process.terminationStatus)")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.contains(".tmp-") }
            #expect(leftovers.isEmpty, "\(leftovers)")
            #expect(!FileManager.default.fileExists(atPath: directory + "/big.enc"))
        }
        // A writer killed with SIGKILL leaves its temporary file; the next write to that path removes
        // it once it is stale, and leaves a recent one (a writer still at work) alone.
        let stale = directory + "/.out.bin.tmp-ABCDEF", recent = directory + "/.out.bin.tmp-GHIJKL"
        for path in [stale, recent] { #expect(FileManager.default.createFile(atPath: path, contents: Data("partial".utf8))) }
        var times = [timeval(tv_sec: 1_000_000, tv_usec: 0), timeval(tv_sec: 1_000_000, tv_usec: 0)]
        #expect(utimes(stale, &times) == 0)
        try AtomicFile.write(Array("done".utf8), to: directory + "/out.bin")
        #expect(!FileManager.default.fileExists(atPath: stale) && FileManager.default.fileExists(atPath: recent))
    }

    @Test("a kill between a checkpoint's write and its manifest record leaves a pair that --resume accepts; other contents are still refused")
    func checkpointAndManifestPair() throws {
        let directory = TestSupport.temporaryDirectory("hostile-pair")
        let sample = ["--data-dir", TestSupport.sampleDirectory]
        let (model, checkpoint) = (directory + "/m.safetensors", directory + "/m.checkpoint.safetensors")
        let train = ["train", "--model", "784-8-10", "--limit", "200", "--out", model, "--checkpoint", checkpoint] + sample
        #expect(try run(train + ["--epochs", "1"]).status == 0)
        // The state a kill leaves after the next epoch's checkpoint was announced, before its rename:
        // the manifest lists the new digest, the file still holds the old version.
        _ = try Manifest.announce(checkpoint, sha256: String(repeating: "ab", count: 32), size: 123)
        let entry = try #require(try Manifest.load(directory: directory)?.files["m.checkpoint.safetensors"])
        let onDisk = try FileDigest.sha256(path: checkpoint)
        #expect(entry.previousSHA256 == onDisk)
        let resumed = try run(train + ["--epochs", "2", "--resume", checkpoint, "--force"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let after = try #require(try Manifest.load(directory: directory)?.files["m.checkpoint.safetensors"])
        let written = try FileDigest.sha256(path: checkpoint)
        #expect(after.previousSHA256 == nil && after.sha256 == written)
        // Neither the announced nor the previous version: refused as before.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: checkpoint))
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: URL(fileURLWithPath: checkpoint))
        let tampered = try run(train + ["--epochs", "3", "--resume", checkpoint, "--force"])
        #expect(tampered.status == 2 && tampered.stderr.contains("SHA-256"), "\(tampered.stderr)")
    }

    @Test("a one-character output name is an ordinary file name (it crashed in Foundation's path code)")
    func oneCharacterName() throws {
        let directory = TestSupport.temporaryDirectory("hostile-name")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLIRun.executable)
        process.arguments = ["keys", "new-data-key", "--out", "k"]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0 && FileManager.default.fileExists(atPath: directory + "/k"))
    }
}

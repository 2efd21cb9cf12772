import Foundation
import TensorCore
import Testing
import _TestSupport

@Suite("bulwark threat and DP-SGD training", .serialized)
struct ThreatCLITests {
    let sample = ["--data-dir", TestSupport.sampleDirectory]

    func write(_ text: String, _ name: String, in directory: String) throws -> String {
        let path = directory + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("threat poison --json: the documented fields, per rate and per defence")
    func poisonJSON() throws {
        let directory = TestSupport.temporaryDirectory()
        let recipe = try write(#"{"architecture": "784-32-10", "epochs": 2}"#, "recipe.json", in: directory)
        let run = try CLIRun(["threat", "poison", "--attack", "backdoor", "--rate", "0.1", "--rate", "0.05", "--defence", "clustering",
                              "--defence", "loss", "--recipe", recipe, "--limit", "1000", "--json", "--save-model", directory + "/p.safetensors"] + sample)
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.jsonLines
        #expect(lines.map { $0["poison_rate"] as? Double } == [0.1, 0.05])
        for line in lines {
            for key in ["clean_accuracy", "attack_success_rate", "poison_rate", "defences", "baseline_clean_accuracy", "poisoned"] {
                #expect(line[key] != nil, "lacks \(key)")
            }
            let defences = try #require(line["defences"] as? [[String: Any]])
            #expect(defences.map { $0["defence"] as? String } == ["clustering", "loss"])
            for defence in defences {
                for key in ["precision", "recall", "clean_accuracy", "attack_success_rate", "flagged"] where key != "precision" || (defence["flagged"] as? Int ?? 0) > 0 {
                    #expect(defence[key] != nil, "defence lacks \(key)")
                }
            }
        }
        #expect(lines.first?["poisoned"] as? Int == 100)
        let inspect = try CLIRun(["inspect", directory + "/p.safetensors"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
    }

    @Test("threat reports gate: the same experiment twice passes, a bench report is not a threat baseline")
    func threatReportGate() throws {
        let directory = TestSupport.temporaryDirectory()
        let recipe = try write(#"{"architecture": "784-16-10", "epochs": 1}"#, "recipe.json", in: directory)
        let arguments = ["threat", "poison", "--attack", "backdoor", "--rate", "0.1", "--defence", "loss", "--recipe", recipe, "--limit", "500"] + sample
        for name in ["a.json", "b.json"] {
            let run = try CLIRun(arguments + ["--report", directory + "/" + name])
            #expect(run.status == 0, "\(run.stderr)")
        }
        let gate = try CLIRun(["gate", "--baseline", directory + "/a.json", "--report", directory + "/b.json"])
        #expect(gate.status == 0, "\(gate.stdout)\n\(gate.stderr)")
        #expect(gate.stdout.contains("loss attack success rate") && gate.stdout.contains("gate: passed"))
        let bench = try write(#"{"schema": "bulwark-report/2"}"#, "bench.json", in: directory)
        let mixed = try CLIRun(["gate", "--baseline", bench, "--report", directory + "/b.json"])
        #expect(mixed.status == 2 && mixed.stderr.contains("same kind"), "\(mixed.stderr)")
    }

    @Test("bench runs threat experiments beside the attacks; the report shows them and the gate compares them")
    func benchWithThreats() throws {
        let directory = TestSupport.temporaryDirectory()
        let model = directory + "/m.safetensors"
        let train = try CLIRun(["train", "--model", "784-16-10", "--epochs", "1", "--limit", "500", "--out", model] + sample)
        #expect(train.status == 0, "\(train.stderr)")
        let config = try write("""
            {"schema": "bulwark-bench-config/2", "seed": 0, "epsilons": [0, 0.1],
             "dataset": {"name": "sample", "n": 200, "data_dir": "\(TestSupport.sampleDirectory)"},
             "models": [{"name": "m", "path": "m.safetensors"}],
             "attacks": [{"name": "FGSM", "type": "fgsm", "norm": "linf"}],
             "threats": [{"name": "bd", "type": "poison", "attack": "backdoor", "rates": [0.1], "defences": ["loss"],
                          "recipe": {"architecture": "784-16-10", "epochs": 1}},
                         {"name": "mi", "type": "membership", "shadows": 2, "attacks": ["loss", "lira-offline"],
                          "targets": [{"name": "t", "pool": 200, "recipe": {"architecture": "784-8-10", "epochs": 2}}]}]}
            """, "bench.json", in: directory)
        for name in ["a.json", "b.json"] {
            let run = try CLIRun(["bench", "--config", config, "--report", directory + "/" + name])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("## Threat: bd") && run.stdout.contains("loss attack success rate"), "\(run.stdout)")
        }
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/a.json"))) as? [String: Any])
        let threats = try #require(report["threats"] as? [[String: Any]])
        #expect(threats.map { $0["name"] as? String } == ["bd", "mi"])
        let gate = try CLIRun(["gate", "--baseline", directory + "/a.json", "--report", directory + "/b.json"])
        #expect(gate.status == 0, "\(gate.stdout)\n\(gate.stderr)")
        #expect(gate.stdout.contains("bd: backdoor rate=0.1") && gate.stdout.contains("mi: membership t"), "\(gate.stdout)")
    }

    @Test("threat membership --json and --save-scores on a small configuration")
    func membershipJSON() throws {
        let directory = TestSupport.temporaryDirectory()
        let config = try write("""
            {"schema": "bulwark-membership-config/1", "shadows": 2, "attacks": ["loss", "lira-online"],
             "targets": [{"name": "tiny", "pool": 400, "recipe": {"architecture": "784-16-10", "epochs": 3}}]}
            """, "membership.json", in: directory)
        let run = try CLIRun(["threat", "membership", "--config", config, "--json", "--save-scores", directory + "/scores"] + sample)
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.jsonLines
        #expect(lines.map { $0["attack"] as? String } == ["loss", "lira-online"])
        for line in lines {
            #expect(line["target"] as? String == "tiny")
            #expect(line["n_members"] as? Int == 200 && line["n_nonmembers"] as? Int == 200)
            let auc = try #require(line["auc"] as? Double)
            #expect((0...1).contains(auc))
            let tpr = try #require(line["tpr_at_fpr"] as? [String: Double])
            #expect(Set(tpr.keys) == ["0.001", "0.01"])
        }
        let csv = try String(contentsOfFile: directory + "/scores/tiny-loss.csv", encoding: .utf8)
        #expect(csv.hasPrefix("score,member\n"))
        #expect(csv.split(separator: "\n").count == 401)
        // Running again replaces its own score files.
        let again = try CLIRun(["threat", "membership", "--config", config, "--save-scores", directory + "/scores"] + sample)
        #expect(again.status == 0, "\(again.stderr)")
    }

    @Test("threat membership --shard I/N --part, then --merge: the same scores as the unsharded run; bad parts refused")
    func membershipShards() throws {
        let directory = TestSupport.temporaryDirectory()
        let config = try write("""
            {"schema": "bulwark-membership-config/1", "shadows": 4, "attacks": ["loss", "lira-online", "lira-offline"],
             "targets": [{"name": "a", "pool": 200, "recipe": {"architecture": "784-8-10", "epochs": 2}},
                         {"name": "b", "pool": 160, "recipe": {"architecture": "784-8-10", "epochs": 1}}]}
            """, "membership.json", in: directory)
        let common = ["threat", "membership", "--config", config] + sample
        let whole = try CLIRun(common + ["--json", "--save-scores", directory + "/whole"])
        #expect(whole.status == 0, "\(whole.stderr)")
        for index in 0..<3 {
            let run = try CLIRun(common + ["--shard", "\(index)/3", "--part", directory + "/part-\(index).json"])
            #expect(run.status == 0 && run.stdout.contains("shard \(index)/3:"), "\(run.stderr)")
        }
        let parts = (0..<3).map { directory + "/part-\($0).json" }
        let merged = try CLIRun(common + ["--json", "--save-scores", directory + "/merged", "--merge"] + parts.reversed())
        #expect(merged.status == 0, "\(merged.stderr)")
        // Everything but the training time is the same.
        func results(_ run: CLIRun) -> [NSDictionary] {
            run.jsonLines.map { line in
                var line = line
                line["training_seconds"] = nil
                return line as NSDictionary
            }
        }
        #expect(results(merged).count == 6 && results(merged) == results(whole))
        for name in ["a-loss", "a-lira-online", "b-lira-offline"] {
            let one = try String(contentsOfFile: directory + "/whole/\(name).csv", encoding: .utf8)
            #expect(try String(contentsOfFile: directory + "/merged/\(name).csv", encoding: .utf8) == one, "\(name)")
        }
        // Missing or repeated parts, another seed, a part for a bench: refused with exit 2 and the reason.
        let missing = try CLIRun(common + ["--merge"] + parts.prefix(2))
        #expect(missing.status == 2 && missing.stderr.contains("2/3 are missing"), "\(missing.stderr)")
        let twice = try CLIRun(common + ["--merge"] + parts + [parts[0]])
        #expect(twice.status == 2 && twice.stderr.contains("given twice"), "\(twice.stderr)")
        let reseeded = try CLIRun(common + ["--seed", "9", "--merge"] + parts)
        #expect(reseeded.status == 2 && reseeded.stderr.contains("another configuration"), "\(reseeded.stderr)")
        let usage = try CLIRun(common + ["--shard", "3/3", "--part", directory + "/x.json"])
        #expect(usage.status == 64 && usage.stderr.contains("0 ≤ I < N"), "\(usage.stderr)")
        let noPart = try CLIRun(common + ["--shard", "0/3"])
        #expect(noPart.status == 64 && noPart.stderr.contains("--part"), "\(noPart.stderr)")
    }

    @Test("threat extract: knockoff spends exactly its budget; equation solving steals a softmax regression exactly; bad flags refused")
    func extraction() throws {
        let directory = TestSupport.temporaryDirectory()
        let victim = directory + "/victim.safetensors"
        let train = try CLIRun(["train", "--model", "784-10", "--epochs", "2", "--limit", "1000", "--out", victim] + sample)
        #expect(train.status == 0, "\(train.stderr)")
        let knockoff = try CLIRun(["threat", "extract", "--target", victim, "--strategy", "knockoff", "--budget", "300", "--output", "label",
                                   "--surrogate", "784-16-10", "--epochs", "2", "--checkpoints", "100", "--json"] + sample)
        #expect(knockoff.status == 0, "\(knockoff.stderr)")
        let lines = knockoff.jsonLines
        #expect(lines.map { $0["queries_used"] as? Int } == [100, 300])
        #expect(lines.last?["transfer_success_rate"] != nil && lines.first?["transfer_success_rate"] == nil)
        #expect(lines.allSatisfy { ($0["fidelity"] as? Double).map { (0...1).contains($0) } ?? false })
        let jacobian = try CLIRun(["threat", "extract", "--target", victim, "--strategy", "jacobian", "--budget", "60", "--seed-size", "15",
                                   "--surrogate", "784-16-10", "--epochs", "2", "--json"] + sample)
        #expect(jacobian.status == 0, "\(jacobian.stderr)")
        #expect(jacobian.jsonLines.map { $0["queries_used"] as? Int } == [15, 30, 60])
        let stolen = directory + "/stolen.safetensors"
        let equation = try CLIRun(["threat", "extract", "--target", victim, "--strategy", "equation", "--budget", "785",
                                   "--save-surrogate", stolen, "--json"] + sample)
        #expect(equation.status == 0, "\(equation.stderr)")
        #expect(equation.jsonLines.first?["fidelity"] as? Double == 1 && equation.jsonLines.first?["queries_used"] as? Int == 785)
        #expect(FileManager.default.fileExists(atPath: stolen))
        // Reverse sigmoid answers break the equations, and the run says what the policy costs benign clients.
        let hardened = try CLIRun(["threat", "extract", "--target", victim, "--strategy", "equation", "--budget", "785",
                                   "--output", "reverse-sigmoid:0.5:0.2", "--json"] + sample)
        #expect(hardened.status == 0, "\(hardened.stderr)")
        #expect((hardened.jsonLines.first?["fidelity"] as? Double ?? 1) < 0.9 && hardened.jsonLines.first?["benign_l1"] as? Double ?? 0 > 0.1)
        // The attacker's own data from a CSV file (here: random images), and one whose rows do not fit the victim.
        let poolFile = directory + "/pool.csv", narrowFile = directory + "/narrow.csv"
        var generator = RandomGenerator(seed: 4)
        try (0..<120).map { _ in "0," + (0..<784).map { _ in String(generator.nextUnitFloat()) }.joined(separator: ",") }.joined(separator: "\n")
            .write(toFile: poolFile, atomically: true, encoding: .utf8)
        try "0,0.5,0.5\n1,0.2,0.1\n".write(toFile: narrowFile, atomically: true, encoding: .utf8)
        let csvPool = try CLIRun(["threat", "extract", "--target", victim, "--strategy", "knockoff", "--budget", "100", "--pool", "csv", "--pool-csv", poolFile,
                                  "--surrogate", "784-16-10", "--epochs", "1", "--allow-unverified", "--json"] + sample)
        #expect(csvPool.status == 0 && csvPool.jsonLines.last?["pool"] as? String == "csv" && csvPool.jsonLines.last?["queries_used"] as? Int == 100, "\(csvPool.stderr)")
        let narrow = try CLIRun(["threat", "extract", "--target", victim, "--strategy", "knockoff", "--budget", "2", "--pool", "csv", "--pool-csv", narrowFile, "--allow-unverified"] + sample)
        #expect(narrow.status == 2 && narrow.stderr.contains("2 features; the victim takes 784"), "\(narrow.stderr)")
        let url = try CLIRun(["threat", "extract", "--target", "https://localhost:1/v1/models/m/predict", "--strategy", "knockoff", "--budget", "10"] + sample)
        #expect(url.status == 64 && url.stderr.contains("--api-key-file"), "\(url.stderr)")
        for (arguments, status, message) in [(["--strategy", "nope", "--budget", "10"], Int32(64), "--strategy"),
                                             (["--strategy", "knockoff", "--budget", "10", "--api-key-file", "k"], 64, "apply to a URL"),
                                             (["--strategy", "knockoff", "--budget", "10", "--rows-per-request", "5"], 64, "apply to a URL"),
                                             (["--strategy", "knockoff", "--budget", "10", "--pool", "csv"], 64, "--pool-csv"),
                                             (["--strategy", "equation", "--budget", "785", "--surrogate", "784-10"], 64, "--surrogate"),
                                             (["--strategy", "equation", "--budget", "785", "--epochs", "3"], 64, "least squares"),
                                             (["--strategy", "knockoff", "--budget", "10", "--detectors", directory + "/none.json"], 2, "none.json"),
                                             (["--strategy", "knockoff", "--budget", "10", "--output", "top-0"], 64, "--output"),
                                             (["--strategy", "knockoff", "--budget", "10", "--checkpoints", "20"], 64, "--checkpoints"),
                                             (["--strategy", "knockoff", "--budget", "10", "--lambda", "0.2"], 64, "apply to --strategy jacobian"),
                                             (["--strategy", "jacobian", "--budget", "10", "--seed-size", "11"], 64, "--seed-size"),
                                             (["--strategy", "equation", "--budget", "784"], 2, "d + 1 = 785"),
                                             (["--strategy", "equation", "--budget", "785", "--output", "label"], 2, "probability")] {
            let run = try CLIRun(["threat", "extract", "--target", victim] + arguments + sample)
            #expect(run.status == status && run.stderr.contains(message), "\(arguments): \(run.status) \(run.stderr)")
        }
    }

    @Test("train --dp-noise reports ε every epoch and records the guarantee in the model")
    func dpTraining() throws {
        let directory = TestSupport.temporaryDirectory()
        let model = directory + "/dp.safetensors"
        let run = try CLIRun(["train", "--model", "784-32-10", "--epochs", "2", "--batch", "100", "--limit", "1000",
                              "--dp-noise", "1.0", "--dp-clip", "1", "--out", model, "--json"] + sample)
        #expect(run.status == 0, "\(run.stderr)")
        let epochs = run.jsonLines.filter { $0["epoch"] != nil }
        let epsilons = epochs.compactMap { ($0["extra"] as? [String: Double])?["dp_epsilon"] }
        #expect(epsilons.count == 2 && epsilons[0] < epsilons[1])
        let inspect = try CLIRun(["inspect", model, "--json"])
        #expect(inspect.status == 0, "\(inspect.stderr)")
        let metadata = try #require(inspect.jsonLines.first?["metadata"] as? [String: Any])
        for key in ["dp_epsilon", "dp_delta", "dp_noise_multiplier", "dp_clip", "dp_sampling_rate", "dp_steps", "dp_noise"] {
            #expect(metadata[key] != nil, "inspect lacks \(key)")
        }
        // 900 training examples (1,000 minus the 10% validation split), batches of 100, 2 epochs.
        #expect(metadata["dp_steps"] as? String == "18" || metadata["dp_steps"] as? Int == 18)
        let rate = (metadata["dp_sampling_rate"] as? String).flatMap(Double.init) ?? (metadata["dp_sampling_rate"] as? Double)
        #expect(rate.map { abs($0 - 100.0 / 900) < 1e-12 } == true)
        #expect(metadata["history"] == nil, "a DP model's file must not carry per-epoch statistics of its training data")
        #expect(abs((((metadata["dp_epsilon"] as? String).flatMap(Double.init) ?? (metadata["dp_epsilon"] as? Double)) ?? 0) - epsilons[1]) < 1e-9)
    }

    @Test("bad threat and DP flags say what is wrong", arguments: [
        (["threat", "poison", "--attack", "nope", "--rate", "0.1"], "'nope' is invalid", Int32(64)),
        (["threat", "poison", "--attack", "backdoor"], "--rate", Int32(64)),
        (["threat", "poison", "--attack", "backdoor", "--rate", "1.5"], "--rate must be in [0, 1]", Int32(64)),
        (["threat", "poison", "--attack", "backdoor", "--rate", "0.1", "--defence", "magic"], "'magic' is invalid", Int32(64)),
        (["threat", "poison", "--attack", "label-flip", "--rate", "0.1", "--trigger-size", "4"], "apply to --attack backdoor only", Int32(64)),
        (["threat", "poison", "--attack", "label-flip", "--rate", "0.9", "--source-class", "1", "--target-class", "2"], "eligible examples", Int32(2)),
        (["threat", "membership", "--shadows", "3"], "--shadows must be even", Int32(64)),
        (["threat", "membership", "--config", "/nonexistent.json"], "--config", Int32(2)),
        (["train", "--out", "/nonexistent-dir/m.safetensors", "--dp-clip", "1"], "applies to DP-SGD", Int32(64)),
        (["train", "--out", "/nonexistent-dir/m.safetensors", "--dp-noise", "1", "--adversarial", "pgd"], "cannot be combined", Int32(64)),
        (["train", "--out", "/nonexistent-dir/m.safetensors", "--dp-noise=-1"], "DP noise multiplier", Int32(64)),
        (["train", "--out", "/nonexistent-dir/m.safetensors", "--dp-noise", "0"], "ε is infinite", Int32(64)),
        (["train", "--out", "/nonexistent-dir/m.safetensors", "--dp-seeded-noise"], "applies to DP-SGD", Int32(64)),
        (["threat", "poison", "--attack", "backdoor", "--rate", "0.1", "--trigger-size=-9223372036854775808"], "trigger size", Int32(64)),
        (["threat", "poison", "--attack", "backdoor", "--rate", "0.1", "--trigger-row", "9223372036854775807"], "trigger row", Int32(64)),
        (["threat", "poison", "--attack", "label-flip", "--rate", "0.1", "--target-class", "3"], "--source-class", Int32(64)),
        (["threat", "poison", "--attack", "backdoor", "--rate", "0.1", "--rate", "0.1"], "twice", Int32(64)),
        (["threat", "poison", "--attack", "backdoor", "--rate", "0.1", "--expected-rate", "0.2"], "--defence", Int32(64)),
        (["threat", "membership", "--shadows", "1000"], "at most 256", Int32(64)),
    ])
    func badFlags(arguments: [String], expected: String, status: Int32) throws {
        let run = try CLIRun(arguments + sample)
        #expect(run.status == status, "stderr: \(run.stderr)")
        #expect(run.stderr.contains(expected), "stderr: \(run.stderr)")
        #expect(!run.stderr.contains("Fatal error"))
    }

    @Test("a membership configuration with a misspelled key is refused, naming it")
    func strictConfiguration() throws {
        let directory = TestSupport.temporaryDirectory()
        let config = try write(#"{"schema": "bulwark-membership-config/1", "shadow": 4, "targets": []}"#, "bad.json", in: directory)
        let run = try CLIRun(["threat", "membership", "--config", config] + sample)
        #expect(run.status == 2)
        #expect(run.stderr.contains("shadow") && run.stderr.contains("shadows"), "stderr: \(run.stderr)")
    }

    @Test("--save-scores never overwrites a file it did not write")
    func scoresDoNotClobber() throws {
        let directory = TestSupport.temporaryDirectory()
        let config = try write("""
            {"schema": "bulwark-membership-config/1", "attacks": ["loss"],
             "targets": [{"name": "tiny", "pool": 100, "recipe": {"architecture": "784-8-10", "epochs": 1}}]}
            """, "m.json", in: directory)
        try FileManager.default.createDirectory(atPath: directory + "/scores", withIntermediateDirectories: true)
        let notes = try write("my notes\n", "scores/tiny-loss.csv", in: directory)
        let run = try CLIRun(["threat", "membership", "--config", config, "--save-scores", directory + "/scores"] + sample)
        #expect(run.status == 73, "stderr: \(run.stderr)")
        #expect(try String(contentsOfFile: notes, encoding: .utf8) == "my notes\n")
    }
}

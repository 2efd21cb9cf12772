@testable import BulwarkCLI
import Attacks
import Datasets
import Foundation
import NeuralNet
import Testing
import Training
import _TestSupport

/// The command line as one strict, consistent layer: exit codes, repeated and inapplicable flags,
/// output paths checked before work, the same data options everywhere, models made elsewhere.
@Suite("Command-line contract", .serialized)
struct CommandLineContractTests {
    let sample = ["--data-dir", TestSupport.sampleDirectory]

    /// A small model trained on the sample, in a fresh directory (recorded in its manifest).
    static let trained: (directory: String, model: String) = {
        let directory = TestSupport.temporaryDirectory("contract")
        let model = directory + "/m.safetensors"
        _ = try? CLIRun(["train", "--model", "784-16-10", "--epochs", "1", "--limit", "500", "--out", model,
                         "--data-dir", TestSupport.sampleDirectory])
        return (directory, model)
    }()

    @Test("certify prints the documented JSON fields, radii with --radius, bounds with --per-example")
    func certify() throws {
        let model = Self.trained.model
        let run = try CLIRun(["certify", model, "--eps", "0.01", "--n", "20", "--json", "--per-example", "--allow-unverified"] + sample)
        #expect(run.status == 0, "\(run.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        for key in ["certified_accuracy", "clean_accuracy", "n", "method", "norm", "epsilon", "seconds", "ci95", "certified"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        #expect(object["n"] as? Int == 20 && object["method"] as? String == "crown" && object["norm"] as? String == "linf")
        #expect((object["margin_lower_bounds"] as? [Double])?.count == 20)
        #expect((object["certified_accuracy"] as! Double) <= (object["clean_accuracy"] as! Double))
        let radius = try CLIRun(["certify", model, "--radius", "--method", "ibp", "--n", "10", "--json", "--allow-unverified"] + sample)
        let radii = try #require((try JSONSerialization.jsonObject(with: Data(radius.stdout.utf8)) as? [String: Any])?["radii"] as? [Double])
        #expect(radii.count == 10 && radii.allSatisfy { $0 >= 0 && $0 <= 1 })
        let perExample = try CLIRun(["certify", model, "--eps", "0.1", "--per-example"] + sample)
        #expect(perExample.status == 64 && perExample.stderr.contains("add --json"))
    }

    @Test("crash holes: an empty training split, a huge declared architecture and a huge --model exit cleanly")
    func crashHoles() throws {
        let directory = TestSupport.temporaryDirectory()
        let split = try CLIRun(["train", "--limit", "1", "--val-split", "0.5", "--out", directory + "/m.safetensors"] + sample)
        #expect(split.status == 2 && split.stderr.contains("leaves no training examples") && !split.stderr.contains("Fatal"), "\(split.stderr)")

        let architecture = #"[{"type":"dense","in":784,"out":1048576},{"type":"relu"},{"type":"dense","out":1048576},{"type":"relu"},{"type":"dense","out":10}]"#
        let bomb = directory + "/bomb.safetensors"
        try Data(SafeTensors.serialize([("0.weight", .float32(shape: [1], values: [0]))], metadata: ["architecture": architecture]))
            .write(to: URL(fileURLWithPath: bomb))
        #expect(try Data(contentsOf: URL(fileURLWithPath: bomb)).count < 400)
        for command in [["inspect", bomb], ["eval", bomb] + sample] {
            let run = try CLIRun(command + ["--allow-unverified"])
            #expect(run.status == 2 && run.stderr.contains("parameters") && !run.stderr.contains("Fatal"), "\(command[0]): \(run.stderr)")
        }
        let huge = try CLIRun(["train", "--model", "784-1048576-1048576-10", "--out", directory + "/h.safetensors"] + sample)
        #expect(huge.status == 64 && huge.stderr.contains("parameters"), "\(huge.stderr)")
    }

    @Test("repeated single-valued options and flags that do not apply are usage errors (64)")
    func usageErrors() throws {
        let model = Self.trained.model
        let repeated = try CLIRun(["attack", model, "--eps", "0.1", "--eps=0.2"] + sample)
        #expect(repeated.status == 64 && repeated.stderr.contains("--eps is given more than once"), "\(repeated.stderr)")
        let twice = try CLIRun(["train", "--epochs", "1", "--epochs", "2", "--out", "x.safetensors"])
        #expect(twice.status == 64 && twice.stderr.contains("--epochs is given more than once"))
        let fgsm = try CLIRun(["attack", model, "--attack", "fgsm", "--steps", "50"] + sample)
        #expect(fgsm.status == 64 && fgsm.stderr.contains("--steps applies to apgd, apgd-t, cw, ddn, deepfool, fab-t, mi-fgsm, pgd, not fgsm"), "\(fgsm.stderr)")
        let momentum = try CLIRun(["train", "--momentum", "0.9", "--out", "x.safetensors"])
        #expect(momentum.status == 64 && momentum.stderr.contains("--momentum applies to --optimizer sgd only"))
        let trainSteps = try CLIRun(["train", "--adversarial", "fgsm", "--train-steps", "3", "--out", "x.safetensors"])
        #expect(trainSteps.status == 64 && trainSteps.stderr.contains("--train-steps applies to --adversarial pgd"), "\(trainSteps.stderr)")
        let certifiedMix = try CLIRun(["train", "--certified", "ibp", "--adversarial-mix", "0.5", "--out", "x.safetensors"])
        #expect(certifiedMix.status == 64 && certifiedMix.stderr.contains("--adversarial-mix applies to adversarial training"), "\(certifiedMix.stderr)")
        let twoObjectives = try CLIRun(["train", "--certified", "ibp", "--trades-beta", "6", "--out", "x.safetensors"])
        #expect(twoObjectives.status == 64 && twoObjectives.stderr.contains("choose one objective"), "\(twoObjectives.stderr)")
        let smoothing = try CLIRun(["train", "--trades-beta", "6", "--label-smoothing", "0.1", "--out", "x.safetensors"])
        #expect(smoothing.status == 64 && smoothing.stderr.contains("--label-smoothing applies to"), "\(smoothing.stderr)")
        let noEpsilon = try CLIRun(["certify", model] + sample)
        #expect(noEpsilon.status == 64 && noEpsilon.stderr.contains("give --eps"), "\(noEpsilon.stderr)")
    }

    @Test("every command's help exits 0 and shows examples", arguments: ["train", "eval", "inspect", "attack", "certify", "bench", "gate", "import",
                                                                       "manifest", "keys", "data"])
    func help(command: String) throws {
        let run = try CLIRun([command, "--help"])
        #expect(run.status == 0 && run.stdout.contains("Examples:") && run.stdout.contains("bulwark \(command)"), "\(run.stdout)\(run.stderr)")
    }

    @Test("attack --json has every parameter as a field; --eps takes a fraction; --limit is the data option")
    func attackJSON() throws {
        let run = try CLIRun(["attack", Self.trained.model, "--eps", "8/255", "--steps", "3", "--restarts", "2", "--loss", "margin",
                              "--targeted", "random", "--limit", "40", "--json"] + sample)
        #expect(run.status == 0, "\(run.stderr)")
        let json = try #require(run.jsonLines.first)
        #expect(abs((json["epsilon"] as? Double ?? 0) - 8.0 / 255) < 1e-6)
        #expect(json["type"] as? String == "pgd" && json["steps"] as? Int == 3 && json["restarts"] as? Int == 2)
        #expect(abs((json["step_size"] as? Double ?? 0) - 2.5 * 8 / 255 / 3) < 1e-6)
        #expect(json["loss"] as? String == "margin" && json["targeted"] as? String == "random" && json["labels"] as? String == "true")
        #expect(json["n"] as? Int == 40 && json["success_n"] as? Int == 40 && json["random_start"] as? Bool == true)
        let fgsm = try #require(try CLIRun(["attack", Self.trained.model, "--attack", "fgsm", "--limit", "20", "--json"] + sample).jsonLines.first)
        #expect(fgsm["steps"] is NSNull && fgsm["targeted"] is NSNull)
    }

    @Test("output paths: missing directories are created, impossible ones refused (73) before any work")
    func outputPaths() throws {
        let directory = TestSupport.temporaryDirectory()
        try "x".write(toFile: directory + "/blocker", atomically: true, encoding: .utf8)
        let started = Date()
        let report = try CLIRun(["bench", "--report", directory + "/blocker/r.json"])
        #expect(report.status == 73 && report.stderr.contains("checked before starting") && !report.stderr.contains("clean accuracy"), "\(report.stderr)")
        #expect(Date().timeIntervalSince(started) < 30)
        let out = try CLIRun(["train", "--epochs", "1", "--limit", "200", "--model", "784-8-10", "--out", directory + "/blocker/m.safetensors"] + sample)
        #expect(out.status == 73 && !out.stdout.contains("epoch 1"))
        let adv = directory + "/adv/nested/x.safetensors"
        let attack = try CLIRun(["attack", Self.trained.model, "--limit", "20", "--save-adv", adv] + sample)
        #expect(attack.status == 0 && FileManager.default.fileExists(atPath: adv), "\(attack.stderr)")
        let saved = try SafeTensors(contentsOf: adv)
        #expect(saved.metadata["targeted"] == "false" && saved.metadata["labels"] == "true")
    }

    @Test("bench --report - writes only the JSON report to stdout; --validate-config checks and exits")
    func benchOutputs() throws {
        let directory = Self.trained.directory
        let config = #"{"schema":"bulwark-bench-config/2","epsilons":[0,0.1],"dataset":{"name":"fashion-mnist","n":50},"models":[{"name":"m","path":"m.safetensors"}],"attacks":[{"name":"FGSM","type":"fgsm"}],"check_examples":10}"#
        try config.write(toFile: directory + "/bench.json", atomically: true, encoding: .utf8)
        let run = try CLIRun(["bench", "--config", directory + "/bench.json", "--report", "-"] + sample)
        #expect(run.status == 0, "\(run.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
        #expect(report?["schema"] as? String == "bulwark-report/2")
        #expect(run.stderr.contains("| m | FGSM |"))
        // The report names the OpenBLAS kernels; a user's OPENBLAS_CORETYPE is obeyed, and the
        // numbers do not depend on the kernel family here.
        let machine = report?["machine"] as? [String: Any]
        #expect((machine?["blas_kernels"] as? String)?.isEmpty == false)
        let haswell = try CLIRun(["bench", "--config", directory + "/bench.json", "--report", "-"] + sample, environment: ["OPENBLAS_CORETYPE": "Haswell"])
        let haswellReport = try JSONSerialization.jsonObject(with: Data(haswell.stdout.utf8)) as? [String: Any]
        #expect((haswellReport?["machine"] as? [String: Any])?["blas_kernels"] as? String == "Haswell (set by OPENBLAS_CORETYPE)")
        try run.stdout.write(toFile: directory + "/auto.json", atomically: true, encoding: .utf8)
        try haswell.stdout.write(toFile: directory + "/haswell.json", atomically: true, encoding: .utf8)
        let diff = try CLIRun(["report", "diff", directory + "/auto.json", directory + "/haswell.json"])
        #expect(diff.status == 0, "\(diff.stdout)\(diff.stderr)")

        let valid = try CLIRun(["bench", "--config", directory + "/bench.json", "--validate-config"])
        #expect(valid.status == 0 && valid.stdout.contains("valid"))
        try config.replacingOccurrences(of: "check_examples", with: "check_example").write(toFile: directory + "/typo.json", atomically: true, encoding: .utf8)
        let typo = try CLIRun(["bench", "--config", directory + "/typo.json", "--validate-config"])
        #expect(typo.status == 2 && typo.stderr.contains(#"did you mean "check_examples""#) && !typo.stderr.contains("USAGE"), "\(typo.stderr)")
    }

    @Test("bench --strict exits 1 when a sanity check fails; a model that does not fit the data exits 2 without usage text")
    func checkFailures() throws {
        let directory = TestSupport.temporaryDirectory()
        let constant = Sequential(spec: try ModelSpec.parse("784-8-10"))  // all-zero weights: no gradients, BW004 fails
        try ModelFile.save(constant, to: directory + "/zero.safetensors")
        let config = #"{"schema":"bulwark-bench-config/2","epsilons":[0,0.1],"dataset":{"name":"fashion-mnist","n":30},"models":[{"name":"zero","path":"zero.safetensors"}],"attacks":[{"name":"FGSM","type":"fgsm"}],"check_examples":10}"#
        try config.write(toFile: directory + "/bench.json", atomically: true, encoding: .utf8)
        let strict = try CLIRun(["bench", "--config", directory + "/bench.json", "--report", directory + "/r.json", "--strict", "--allow-unverified"] + sample)
        #expect(strict.status == 1 && strict.stderr.contains("sanity check(s) failed"), "\(strict.stderr)")

        let narrow = Sequential(spec: try ModelSpec.parse("20-8-3"), seed: 1)
        try ModelFile.save(narrow, to: directory + "/narrow.safetensors")
        let mismatch = try CLIRun(["eval", directory + "/narrow.safetensors", "--allow-unverified"] + sample)
        #expect(mismatch.status == 2 && mismatch.stderr.contains("expects 20 features") && !mismatch.stderr.contains("USAGE"))
    }

    @Test("CSV data works the same in train, eval, attack and bench")
    func csvEverywhere() throws {
        let directory = TestSupport.temporaryDirectory()
        for (split, name, count) in [(Split.train, "train.csv", 600), (Split.test, "test.csv", 200)] {
            let data = try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: split, limit: count)
            let lines = (0..<data.count).map { i in
                ([String(data.labels[i])] + (0..<784).map { String(Int((data.features[i, $0] * 255).rounded())) }).joined(separator: ",")
            }
            try lines.joined(separator: "\n").write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        }
        #expect(try CLIRun(["manifest", "create", directory]).status == 0)  // the data verifies like any other file
        let csv = ["--train-csv", directory + "/train.csv", "--test-csv", directory + "/test.csv", "--feature-scale", "1/255"]
        let model = directory + "/csv.safetensors"
        let train = try CLIRun(["train", "--model", "784-16-10", "--epochs", "2", "--out", model] + csv)
        #expect(train.status == 0, "\(train.stderr)")
        let eval = try CLIRun(["eval", model, "--json", "--test-csv", directory + "/test.csv", "--feature-scale", "1/255"])
        #expect(eval.status == 0 && eval.jsonLines.first?["n"] as? Int == 200, "\(eval.stderr)")
        let attack = try CLIRun(["attack", model, "--attack", "fgsm", "--json", "--test-csv", directory + "/test.csv", "--feature-scale", "1/255"])
        #expect(attack.status == 0 && attack.jsonLines.first?["n"] as? Int == 200, "\(attack.stderr)")
        let unscaled = try CLIRun(["attack", model, "--attack", "fgsm", "--test-csv", directory + "/test.csv"])
        #expect(unscaled.status == 2 && unscaled.stderr.contains("range from 0.0 to 255.0") && unscaled.stderr.contains("--feature-scale 1/255"),
                "\(unscaled.stderr)")
        let config = #"{"schema":"bulwark-bench-config/2","epsilons":[0,0.1],"dataset":{"name":"csv sample","n":200,"test_csv":"test.csv","feature_scale":0.00392156862745098},"models":[{"name":"csv","path":"csv.safetensors"}],"attacks":[{"name":"FGSM","type":"fgsm"}],"check_examples":20}"#
        try config.write(toFile: directory + "/bench.json", atomically: true, encoding: .utf8)
        let bench = try CLIRun(["bench", "--config", directory + "/bench.json", "--report", directory + "/r.json"])
        #expect(bench.status == 0 && bench.stdout.contains("| csv | FGSM |") && bench.stdout.contains("test.csv (CSV, 200 examples)"), "\(bench.stderr)")
        let flags = try CLIRun(["bench", "--config", directory + "/bench.json", "--report", directory + "/r2.json", "--test-csv", directory + "/test.csv",
                                "--feature-scale", "1/255", "--limit", "50"])
        #expect(flags.status == 0 && flags.stdout.contains("n = 50"), "\(flags.stderr)")
        let recorded = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/r2.json"))) as? [String: Any]
        let dataset = ((recorded?["configuration"] as? [String: Any])?["dataset"] as? [String: Any])
        #expect(dataset?["test_csv"] as? String == directory + "/test.csv" && dataset?["n"] as? Int == 50)  // the data actually used
    }

    @Test("a PyTorch-written Sequential file evaluates with --activation and imports into a Bulwark model")
    func pytorchFiles() throws {
        let fixtures = TestSupport.repositoryRoot + "/Tests/NeuralNetTests/Fixtures"
        let directory = TestSupport.temporaryDirectory()
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixtures + "/torch-sequential.json"))) as! [String: Any]
        let inputs = expected["inputs"] as! [[Double]]
        let logits = expected["tanh_logits"] as! [[Double]]
        let csv = zip(inputs, logits).map { row, z in ([String(z.indices.max { z[$0] < z[$1] }!)] + row.map { String($0) }).joined(separator: ",") }
        try csv.joined(separator: "\n").write(toFile: directory + "/torch.csv", atomically: true, encoding: .utf8)
        let model = fixtures + "/torch-sequential-tanh.safetensors"

        let refused = try CLIRun(["eval", model, "--allow-unverified", "--test-csv", directory + "/torch.csv"])
        #expect(refused.status == 2 && refused.stderr.contains("--activation"))
        let eval = try CLIRun(["eval", model, "--activation", "relu,tanh", "--allow-unverified", "--test-csv", directory + "/torch.csv", "--json"])
        #expect(eval.status == 0 && eval.jsonLines.first?["accuracy"] as? Double == 1, "\(eval.stderr)")  // labels are PyTorch's predictions

        let imported = directory + "/imported.safetensors"
        let run = try CLIRun(["import", model, "--activation", "relu,tanh", "--out", imported, "--allow-unverified"])
        #expect(run.status == 0 && run.stdout.contains("nn.Tanh()"), "\(run.stderr)")
        let inspect = try CLIRun(["inspect", imported, "--json"])
        let metadata = try #require(inspect.jsonLines.first?["metadata"] as? [String: Any])
        #expect(metadata["imported_from"] as? String == model && inspect.jsonLines.first?["architecture"] as? String == "20-16-12-5")
    }

    @Test("a recipe's JSON defaults are bulwark train's flag defaults, and rendered commands parse back to the recipe")
    func recipeDefaults() throws {
        #expect(try TrainingOptions.parse([]).recipe() == TrainingRecipe.decode(json: #"{"architecture":"784-256-256-10"}"#))
        #expect(try TrainingOptions.parse(["--adversarial", "pgd"]).recipe()
            == TrainingRecipe.decode(json: #"{"architecture":"784-256-256-10","objective":{"type":"adversarial","attack":{"type":"pgd"}}}"#))
        #expect(try TrainingOptions.parse(["--schedule", "step"]).recipe()
            == TrainingRecipe.decode(json: #"{"architecture":"784-256-256-10","schedule":{"type":"step"}}"#))
        var custom = TrainingRecipe.pgdMLP
        custom.architecture = try ModelSpec.parse("784-64-10", activation: .tanh, dropout: 0.2)
        custom.optimizer = .sgd(learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4)
        custom.schedule = .step(every: 3, gamma: 0.3)
        custom.clipNorm = 1
        custom.validationFraction = 0.2
        custom.objective = .adversarial(AdversarialTrainingSpec(attack: .pgd(try PGD.Parameters(norm: .l2, loss: .margin, steps: 4,
            stepSize: .relative(0.3), restarts: 2, randomStart: false)), epsilon: 0.5, mix: 0.7, labelSmoothing: 0.1))
        for recipe in [TrainingRecipe.standardMLP, .pgdMLP, custom] {
            #expect(try TrainingOptions.parse(recipe.commandLineArguments).recipe() == recipe, "\(recipe.commandLineArguments)")
        }
    }

    @Test("inspect --json nests the JSON held in metadata (recipe, history) instead of quoting it")
    func nestedMetadata() throws {
        let inspect = try CLIRun(["inspect", Self.trained.model, "--json"])
        let metadata = try #require(inspect.jsonLines.first?["metadata"] as? [String: Any])
        let recipe = try #require(metadata["recipe"] as? [String: Any])
        #expect(recipe["epochs"] as? Int == 1 && (recipe["optimizer"] as? [String: Any])?["type"] as? String == "adam")
        #expect(metadata["history"] is [Any] && metadata["seed"] as? String == "0")
    }
}

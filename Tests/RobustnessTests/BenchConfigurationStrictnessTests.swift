import Attacks
import Foundation
import NeuralNet
@testable import Robustness
import TensorCore
import Testing
import Training
import _TestSupport

@Suite("Bench configurations are strict and complete")
struct BenchConfigurationStrictnessTests {
    static func config(attacks: String = #"[{"name":"FGSM","type":"fgsm","norm":"linf"}]"#,
                       models: String = #"[{"name":"m","path":"m.safetensors"}]"#, extra: String = "",
                       dataset: String = #"{"name":"fashion-mnist","split":"test","n":100}"#, schema: String = "bulwark-bench-config/2") -> String {
        #"{"schema":"\#(schema)","seed":0,"epsilons":[0,0.1],"dataset":\#(dataset),"models":\#(models),"attacks":\#(attacks)\#(extra)}"#
    }

    func message(_ json: String) -> String {
        do { _ = try BenchConfiguration.decode(Data(json.utf8), source: "bench.json"); return "" } catch { return "\(error)" }
    }

    @Test("misspelled and unknown keys are errors that name the key, its place and the closest valid key")
    func unknownKeys() {
        let stepsize = message(Self.config(attacks: #"[{"name":"P","type":"pgd","norm":"linf","relative_stepsize":0.1}]"#))
        #expect(stepsize.contains(#"unknown key "relative_stepsize""#) && stepsize.contains(#"did you mean "relative_step_size""#)
                && stepsize.contains("attacks[0]"), "\(stepsize)")
        #expect(message(Self.config(attacks: #"[{"name":"P","type":"pgd","norm":"linf","restart":3}]"#)).contains(#"did you mean "restarts""#))
        #expect(message(Self.config(attacks: #"[{"name":"F","type":"fgsm","norm":"linf","steps":10}]"#)).contains("parameter of pgd, mi-fgsm, apgd, apgd-t, fab-t, deepfool, cw and ddn attacks, not fgsm"))
        #expect(message(Self.config(extra: #","check_example":10"#)).contains(#"did you mean "check_examples""#))
        #expect(message(Self.config(dataset: #"{"name":"x","split":"test","n":10,"data_directory":"d"}"#)).contains(#"did you mean "data_dir""#))
        #expect(message(Self.config(models: #"[{"name":"m","path":"m.safetensors","recipe":{"architecture":"784-10","epoch":3}}]"#)).contains(#"did you mean "epochs""#))
        #expect(message(Self.config(models: #"[{"name":"m","path":"m.safetensors","train":["--epochs","5"]}]"#)).contains("\"recipe\" object"))
        #expect(message(Self.config(models: #"[{"name":"m","path":"m.safetensors","train":["--epochs","5"]}]"#, schema: "bulwark-bench-config/1")) == "")
        #expect(message(Self.config(schema: "bulwark-bench-config/3")).contains("this Bulwark reads"))
        #expect(message(Self.config(attacks: #"[{"name":"worst case","type":"fgsm"}]"#)).contains("reserved"))
        #expect(message(Self.config(models: #"[{"name":"m","path":"m.safetensors","activation":"relu,,tanh"}]"#)).contains("unknown activation"))
    }

    @Test("targeted attacks, label source, step size and a norm and ε grid per attack are expressible, and round-trip")
    func everythingTheCLICanSay() throws {
        let attacks = #"""
        [{"name":"FGSM","type":"fgsm","norm":"linf"},
         {"name":"PGD-T","type":"pgd","norm":"linf","steps":5,"step_size":0.01,"targeted":"random"},
         {"name":"PGD-3","type":"pgd","norm":"linf","steps":5,"targeted":3},
         {"name":"PGD-P","type":"pgd","norm":"linf","labels":"predictions","restarts":2,"random_start":false},
         {"name":"PGD-L2","type":"pgd","norm":"l2","epsilons":[0.5,1],"loss":"dlr"}]
        """#
        let configuration = try BenchConfiguration.decode(Data(Self.config(attacks: attacks).utf8), source: "x")
        #expect(configuration.attacks[1].goal.targets == .random)
        #expect(configuration.attacks[2].goal.targets == .fixed(3))
        #expect(configuration.attacks[3].goal.labels == .predictions)
        #expect(configuration.attacks[4].grid(in: configuration) == [0.5, 1] && configuration.attacks[4].spec.norm == .l2)
        #expect(try BenchConfiguration.decode(configuration.encoded(), source: "again") == configuration)
        #expect(message(Self.config(attacks: #"[{"name":"P","type":"pgd","norm":"linf","targeted":"random","labels":"predictions"}]"#)).contains("targeted"))
        #expect(message(Self.config(attacks: #"[{"name":"P","type":"pgd","norm":"linf","epsilons":[0.2,0.1]}]"#)).contains("increasing"))
    }

    @Test("the example in docs/bench-config.md is a valid configuration")
    func documentedExample() throws {
        let doc = try String(contentsOfFile: TestSupport.repositoryRoot + "/docs/bench-config.md", encoding: .utf8)
        let example = try #require(doc.components(separatedBy: "## Example").last?.components(separatedBy: "```json").dropFirst().first?
            .components(separatedBy: "```").first)
        let configuration = try BenchConfiguration.decode(Data(example.utf8), source: "docs/bench-config.md")
        #expect(configuration.models.count == 2 && configuration.attacks.count == 4)
        #expect(configuration.models[1].activations == [.relu] && configuration.models[0].recipe?.epochs == 30)
    }

    @Test("the built-in configuration is version 2, valid, and round-trips")
    func standard() throws {
        #expect(BenchConfiguration.standard.schema == "bulwark-bench-config/2")
        try BenchConfiguration.standard.validate()
        #expect(try BenchConfiguration.decode(BenchConfiguration.standard.encoded(), source: "x") == BenchConfiguration.standard)
    }
}

@Suite("Bench: norms, ε grids and metrics")
struct BenchMetricsTests {
    @Test("an L2 attack with its own grid gets its own table and worst case; metrics carry per-example outcomes")
    func perAttackGrids() throws {
        let directory = TestSupport.temporaryDirectory()
        let data = TestSupport.syntheticData(count: 60, features: 20, classes: 4, seed: 3)
        try ModelFile.save(Sequential(spec: try ModelSpec.parse("20-16-4"), seed: 1), to: directory + "/m.safetensors")
        var configuration = BenchConfiguration.standard
        configuration.epsilons = [0, 0.1]
        configuration.models = [.init(name: "m", path: "m.safetensors")]
        configuration.attacks = [.init(name: "FGSM", spec: .fgsm(FGSM.Parameters())),
                                 .init(name: "PGD-L2", spec: .pgd(try PGD.Parameters(norm: .l2, steps: 5)), epsilons: [0.5, 1]),
                                 .init(name: "PGD-T", spec: .pgd(try PGD.Parameters(steps: 5)), goal: AttackGoal(targets: .random))]
        configuration.checkExamples = 20
        let report = try BenchRunnerTests.report(configuration, directory: directory, data: data)
        let model = report.models[0]
        #expect(Set(model.attacks.map { "\($0.attack)@\($0.epsilon)" }) == ["FGSM@0.1", "PGD-T@0.1", "PGD-L2@0.5", "PGD-L2@1.0"])
        #expect(model.worstCase.map { "\($0.norm!.rawValue)@\($0.epsilon)" } == ["linf@0.1", "l2@0.5", "l2@1.0"])
        let markdown = MarkdownReport.render(report)
        #expect(markdown.contains("seed 0, L∞)") && markdown.contains("seed 0, L2)") && markdown.contains("| m | PGD-L2 | "))
        let metric = try #require(model.metrics.first { $0.name == "worst case l2 ε=0.5" })
        let outcomes = try #require(metric.outcomeFlags)
        #expect(outcomes.count == 60 && Double(outcomes.filter { $0 }.count) / 60 == metric.value)
        #expect(model.metrics.map(\.name).contains("PGD-T ε=0.1"))
        let targeted = try #require(model.attacks.first { $0.attack == "PGD-T" })
        #expect(targeted.successTrials == 60)  // random targets: every input is attacked
    }

    @Test("the gate compares generic metrics in their own direction, and reads version-1 reports")
    func gateOnMetrics() throws {
        var baseline = GateTests.report()
        baseline.models[0].metrics.append(Metric(name: "membership AUC", value: 0.55, better: .lower))
        var current = baseline
        current.models[0].metrics[current.models[0].metrics.count - 1].value = 0.58
        let result = try Gate.compare(baseline: baseline, current: current, maxDrop: 0.01)
        #expect(result.regressions.map(\.metric) == ["membership AUC"])
        #expect(Gate.junit(result).contains("rose from 0.5500 to 0.5800"))
        current.models[0].metrics[current.models[0].metrics.count - 1].value = 0.40
        #expect(try Gate.compare(baseline: baseline, current: current, maxDrop: 0.01).passed)

        // A version-1 report (no metrics): its metrics are derived from its accuracies.
        var json = try JSONSerialization.jsonObject(with: GateTests.report().encoded()) as! [String: Any]
        json["schema"] = "bulwark-report/1"
        var models = json["models"] as! [[String: Any]]
        models[0]["metrics"] = nil
        json["models"] = models
        let old = try BenchReport.decode(JSONSerialization.data(withJSONObject: json), source: "old.json")
        #expect(old.models[0].metrics.map(\.name) == ["clean", "FGSM ε=0.1", "PGD ε=0.1", "worst case ε=0.1"])
        #expect(try Gate.compare(baseline: old, current: GateTests.report(), maxDrop: 0.01).passed)

        // Different data (CSV vs MNIST-format, or other CSV reading options) is incomparable.
        var csv = GateTests.report()
        csv.configuration.dataset.testCSV = "test.csv"
        #expect(Gate.incompatibilities(baseline: GateTests.report(), current: csv).contains { $0.contains("CSV") })
        var scaled = csv
        scaled.configuration.dataset.featureScale = 1.0 / 255
        #expect(Gate.incompatibilities(baseline: csv, current: scaled).contains { $0.contains("feature scale") })
    }
}

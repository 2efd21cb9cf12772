import Attacks
import Foundation
import NeuralNet
@testable import Robustness
import TensorCore
import Testing
import Training
import _TestSupport

@Suite("Benchmark configuration")
struct BenchConfigurationTests {
    func message(_ json: String) -> String {
        do { _ = try BenchConfiguration.decode(Data(json.utf8), source: "bench.json"); return "" } catch { return "\(error)" }
    }

    func config(epsilons: String = "[0, 0.1]", attacks: String = #"[{"name":"FGSM","type":"fgsm","norm":"linf"}]"#,
                models: String = #"[{"name":"m","path":"m.safetensors"}]"#, schema: String = "bulwark-bench-config/1") -> String {
        #"{"schema":"\#(schema)","seed":0,"epsilons":\#(epsilons),"dataset":{"name":"fashion-mnist","split":"test","n":100},"models":\#(models),"attacks":\#(attacks)}"#
    }

    @Test("the built-in configuration is valid and round-trips")
    func standard() throws {
        try BenchConfiguration.standard.validate()
        let data = try BenchConfiguration.standard.encoded()
        #expect(try BenchConfiguration.decode(data, source: "x") == BenchConfiguration.standard)
    }

    @Test("bad configurations say what is wrong")
    func invalid() {
        #expect(message(config()) == "")
        #expect(message("{").contains("bench.json does not parse"))
        #expect(message(#"{"schema":"bulwark-bench-config/1"}"#).contains("missing \"epsilons\""))
        #expect(message(config(schema: "v0")).contains("schema is 'v0'"))
        #expect(message(config(epsilons: "[0.1, 0.05]")).contains("increasing"))
        #expect(message(config(epsilons: "[-0.1]")).contains("≥ 0"))
        #expect(message(config(epsilons: "[]")).contains("is empty"))
        #expect(message(config(attacks: #"[{"name":"X","type":"jsma","norm":"linf"}]"#)).contains("unknown attack type \"jsma\""))
        #expect(message(config(attacks: #"[{"name":"X","type":"cw","norm":"linf"}]"#)).contains("C&W-L2 minimises the L2 norm"))
        // Numbers that do not fit their field say so (Foundation alone says "not valid JSON").
        #expect(message(config(epsilons: "[0, 1e39]")).contains("a number does not fit its field"))
        #expect(message(#"{"schema":"bulwark-bench-config/1","seed":1e30}"#).contains(#""seed" must be an integer"#))
        #expect(message(#"{"schema":"bulwark-bench-config/1","seed":1,"seed":2}"#).contains("appears twice"))
        #expect(message(config(attacks: #"[{"name":"P","type":"pgd","norm":"linf","steps":0}]"#)).contains("steps 0"))
        #expect(message(config(attacks: #"[{"name":"P","type":"pgd","norm":"l3"}]"#)).contains("does not parse"))
        #expect(message(config(attacks: #"[{"name":"P","type":"pgd","norm":"linf","step_size":0.1,"relative_step_size":0.1}]"#)).contains("not both"))
        #expect(message(config(models: "[]")).contains("\"models\" is empty"))
        #expect(message(config(models: #"[{"name":"a","path":"x"},{"name":"a","path":"y"}]"#)).contains("unique"))
    }

    @Test("threat experiments decode strictly, validate and round-trip")
    func threats() throws {
        func withThreats(_ threats: String) -> String {
            String(config(schema: "bulwark-bench-config/2").dropLast()) + #","threats":\#(threats)}"#
        }
        let good = withThreats(#"[{"name": "bd", "type": "poison", "attack": "backdoor", "rates": [0.05], "defences": ["clustering"], "trigger": {"size": 2}}, {"name": "flip", "type": "poison", "attack": "label-flip", "source_class": 0, "target_class": 6, "rates": [0.01]}, {"name": "mi", "type": "membership", "shadows": 4, "attacks": ["loss"], "targets": [{"name": "t", "pool": 100, "recipe": {"architecture": "784-8-10"}}]}]"#)
        #expect(message(good) == "")
        let decoded = try BenchConfiguration.decode(Data(good.utf8), source: "x")
        #expect(decoded.threats.map(\.name) == ["bd", "flip", "mi"])
        #expect(try BenchConfiguration.decode(decoded.encoded(), source: "x") == decoded)
        #expect(message(withThreats(#"[{"name": "bd", "type": "poison", "attack": "backdoor", "rates": [0.1], "defense": ["loss"]}]"#)).contains("defences"))
        #expect(message(withThreats(#"[{"name": "bd", "type": "poison", "attack": "backdoor", "rates": [1.5]}]"#)).contains("poison rate"))
        #expect(message(withThreats(#"[{"name": "bd", "type": "poison", "attack": "backdoor", "rates": [0.1], "defences": ["magic"]}]"#)).contains("magic"))
        #expect(message(withThreats(#"[{"name": "bd", "type": "evasion"}]"#)).contains("unknown threat experiment"))
        #expect(message(withThreats(#"[{"name": "x", "type": "poison", "attack": "label-flip", "rates": [0.1], "trigger": {}}]"#)).contains("backdoor only"))
        #expect(message(withThreats(#"[{"name": "bd", "type": "poison", "attack": "backdoor", "rates": [0.1], "trigger": {"sise": 2}}]"#)).contains("size"))
        #expect(message(withThreats(#"[{"name": "m", "type": "membership", "shadows": 3, "targets": [{"name": "t", "pool": 100, "recipe": {"architecture": "784-8-10"}}]}]"#)).contains("even"))
        #expect(message(withThreats(#"[{"name": "a", "type": "poison", "attack": "backdoor", "rates": [0.1]}, {"name": "a", "type": "poison", "attack": "backdoor", "rates": [0.1]}]"#)).contains("unique"))
    }
}

@Suite("Benchmark harness, sanity checks and gate")
struct BenchRunnerTests {
    /// A tiny configuration over synthetic models and data.
    func setup(epsilons: [Float] = [0, 0.05, 0.2]) throws -> (BenchConfiguration, String, LabeledData) {
        let directory = TestSupport.temporaryDirectory()
        let data = TestSupport.syntheticData(count: 120, features: 20, classes: 4, seed: 3)
        let trainer = try Trainer(configuration: TrainerConfiguration(
            architecture: try ModelSpec.parse("20-16-4"), seed: 1, epochs: 20, batchSize: 32,
            optimizer: .adam(learningRate: 3e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0, decoupled: false)),
            objective: CrossEntropyObjective())
        try trainer.train(on: data, validation: nil)
        try ModelFile.save(trainer.network, to: directory + "/good.safetensors")
        // All-zero weights and a bias favouring the most common class: constant logits, zero input gradients.
        let constant = Sequential(spec: try ModelSpec.parse("20-16-4"))
        let common = (0..<4).max { c1, c2 in data.labels.filter { $0 == c1 }.count < data.labels.filter { $0 == c2 }.count }!
        constant.parameters.pointer[constant.parameterCount - 4 + common] = 1
        try ModelFile.save(constant, to: directory + "/constant.safetensors")
        var configuration = BenchConfiguration.standard
        configuration.epsilons = epsilons
        configuration.dataset.n = data.count
        configuration.models = [.init(name: "good", path: "good.safetensors"), .init(name: "constant", path: "constant.safetensors")]
        configuration.attacks = [.init(name: "FGSM", spec: .fgsm(FGSM.Parameters())),
                                 .init(name: "PGD-10", spec: .pgd(try PGD.Parameters(steps: 10, stepSize: .relative(0.25))))]
        configuration.checkExamples = 60
        return (configuration, directory, data)
    }

    @Test("worst case is the per-example AND over attacks; checks flag a model with no gradient")
    func harness() throws {
        let (configuration, directory, data) = try setup()
        let report = try Self.report(configuration, directory: directory, data: data)
        #expect(report.schema == "bulwark-report/2" && report.n == 120 && report.configuration == configuration)
        let good = report.models[0]
        #expect(good.sha256.count == 64)
        for worst in good.worstCase {
            let attacks = good.attacks.filter { $0.epsilon == worst.epsilon }
            #expect(attacks.count == 2)
            #expect(worst.accuracy.accuracy <= attacks.map(\.accuracy.accuracy).min()!)
            #expect(worst.accuracy.ci95[0] <= worst.accuracy.accuracy && worst.accuracy.accuracy <= worst.accuracy.ci95[1])
        }
        let checks = Dictionary(uniqueKeysWithValues: good.checks.map { ($0.id, $0) })
        #expect(checks["BW001"]?.passed == true && checks["BW002"]?.passed == true)
        #expect(checks["BW003"]?.passed == true, "\(checks["BW003"]?.message ?? "")")
        #expect(checks["BW004"]?.passed == true)

        // The constant model: no attack can move it, so accuracy stays at its class's frequency (≥ 25%).
        let constant = Dictionary(uniqueKeysWithValues: report.models[1].checks.map { ($0.id, $0) })
        #expect(constant["BW003"]?.passed == false)
        #expect(constant["BW004"]?.passed == false && constant["BW004"]?.message.contains("all-zero") == true)
        #expect(MarkdownReport.render(report).contains("| good | **worst case** |"))
        #expect(MarkdownReport.render(report).contains("BW004"))
    }

    @Test("a minimum-norm attack's cell carries every example's minimal norm, the median and the curve; it round-trips through JSON")
    func minimumNormInReport() throws {
        var (configuration, directory, data) = try setup(epsilons: [0, 0.5])
        configuration.models = [configuration.models[0]]
        configuration.attacks = [.init(name: "DDN", spec: .ddn(try DDN.Parameters(steps: 50)))]
        let report = try Self.report(configuration, directory: directory, data: data)
        let cell = try #require(report.models[0].attacks.first)
        let summary = try #require(cell.minimalNorm)
        #expect(summary.norms.count == data.count)
        let robustAtEpsilon = summary.curve.first { $0.epsilon == 0.5 }?.accuracy
        #expect(robustAtEpsilon == cell.accuracy.accuracy)
        let found = summary.norms.compactMap { $0 }.filter { $0 > 0 }.sorted()
        #expect(found.count > data.count / 2)
        #expect(summary.median != nil && summary.median! > 0)
        let decoded = try JSONDecoder().decode(BenchReport.self, from: try JSONEncoder().encode(report))
        #expect(decoded.models[0].attacks[0].minimalNorm == summary)
        #expect(MarkdownReport.render(report).contains("| good | DDN | 0.5 |"))
    }

    @Test("BW001 catches non-monotone accuracy; BW002 an iterative attack weaker than FGSM, per example and in aggregate")
    func checkLogic() throws {
        func result(_ attack: String, _ epsilon: Float, _ accuracy: Double) -> BenchReport.AttackResult {
            .init(attack: attack, description: attack, norm: .linf, epsilon: epsilon,
                  accuracy: .init(Proportion(successes: Int(accuracy * 1000), trials: 1000)),
                  success: Proportion(successes: 0, trials: 1), meanPerturbation: 0, maxPerturbation: 0, seconds: 1, imagesPerSecond: 1)
        }
        let results = [result("FGSM", 0.1, 0.30), result("FGSM", 0.2, 0.40), result("PGD", 0.1, 0.35), result("PGD", 0.2, 0.10)]
        let fgsm = BenchConfiguration.AttackEntry(name: "FGSM", spec: .fgsm(FGSM.Parameters()))
        let pgd = BenchConfiguration.AttackEntry(name: "PGD", spec: .pgd(try PGD.Parameters()))
        let checker = SanityChecker(n: 1000)
        let monotonicity = checker.monotonicity(clean: 0.9, results: results, worstCase: [], attacks: [fgsm, pgd])
        #expect(monotonicity.passed == false && monotonicity.message.contains("FGSM: 0.3 at ε = 0.1 but 0.4 at ε = 0.2"))

        /// Robust on examples in `robust` of 1000.
        func outcomes(_ entry: BenchConfiguration.AttackEntry, _ robust: Range<Int>...) -> SanityChecker.ExampleOutcomes {
            .init(attack: entry, epsilon: 0.1, robust: (0..<1000).map { i in robust.contains { $0.contains(i) } })
        }
        // Aggregate: PGD leaves 350, FGSM 300 (and PGD misses the 50 FGSM broke).
        let weaker = checker.strongestBreaksWhatWeakerBreak([outcomes(fgsm, 0..<300), outcomes(pgd, 0..<350)])
        #expect(!weaker.passed && weaker.message.contains("PGD leaves 350 robust at ε = 0.1, FGSM only 300"))
        #expect(weaker.message.contains("PGD at ε = 0.1 missed 50 examples"))
        // Per example: PGD is lower in aggregate (250 vs 300) but misses 20 examples FGSM broke.
        let missed = checker.strongestBreaksWhatWeakerBreak([outcomes(fgsm, 0..<300), outcomes(pgd, 70..<320)])
        #expect(!missed.passed && missed.message.contains("missed 20 examples that FGSM broke"))
        // Within tolerance (5 of 1000): passes, and says how many.
        let fine = checker.strongestBreaksWhatWeakerBreak([outcomes(fgsm, 0..<300), outcomes(pgd, 0..<247, 300..<303)])
        #expect(fine.passed && fine.message.contains("PGD at ε = 0.1: 3"))
    }

    @Test("BW008 fails when the strongest attack still fools inputs in the second half of its runs; curves come from fooledAt")
    func convergenceCheck() throws {
        let pgd = BenchConfiguration.AttackEntry(name: "PGD", spec: .pgd(try PGD.Parameters(steps: 20)))
        let apgd = BenchConfiguration.AttackEntry(name: "APGD", spec: .apgd(try APGD.Parameters(steps: 100)))
        let checker = SanityChecker(n: 1000)
        // PGD: 300 robust, 100 inputs fooled late (steps 11–20); APGD: 250 robust, 3 fooled late (steps 51–100).
        let robustPGD = (0..<1000).map { $0 < 300 }, robustAPGD = (0..<1000).map { $0 < 250 }
        let fooledPGD = (0..<1000).map { $0 < 300 ? -1 : ($0 < 400 ? 15 : 5) }
        let fooledAPGD = (0..<1000).map { $0 < 250 ? -1 : ($0 < 253 ? 80 : 10) }
        let ok = checker.convergence([.init(attack: pgd, epsilon: 0.1, robust: robustPGD, fooledAt: fooledPGD, runLength: 20),
                                      .init(attack: apgd, epsilon: 0.1, robust: robustAPGD, fooledAt: fooledAPGD, runLength: 100)])
        #expect(ok.passed && ok.message.contains("PGD at ε = 0.1: 10.00 pp") && ok.message.contains("APGD at ε = 0.1: 0.30 pp (strongest)"), "\(ok.message)")
        // The strongest attack not converged: 10 inputs fooled late in a second restart (steps 151–200 of runs of 100).
        let late = (0..<1000).map { $0 < 250 ? -1 : ($0 < 260 ? 180 : 10) }
        let failed = checker.convergence([.init(attack: apgd, epsilon: 0.1, robust: robustAPGD, fooledAt: late, runLength: 100)])
        #expect(!failed.passed && failed.message.contains("APGD at ε = 0.1: 1.00 pp in the last doubling"), "\(failed.message)")

        // Curves from a real run: non-increasing, ending at the final robust accuracy.
        let model = Sequential(spec: try ModelSpec.parse("20-16-5"), seed: 3)
        let data = TestSupport.syntheticData(count: 100, features: 20, classes: 5, seed: 4)
        let outcome = try AttackRunner(classifier: model).run(try APGD(epsilon: 0.1, steps: 40, restarts: 2), on: data, seed: 0)
        let curve = try #require(BenchRunner.convergence(of: outcome, budget: (80, 40)))
        #expect(curve.map(\.iterations) == [10, 20, 40, 50, 80])
        #expect(zip(curve, curve.dropFirst()).allSatisfy { $0.accuracy >= $1.accuracy })
        #expect(curve.last!.accuracy == outcome.robustAccuracy.value)
    }

    /// Evaluates every model of the configuration on `data` (what `BenchJob` does after loading).
    static func report(_ configuration: BenchConfiguration, directory: String, data: LabeledData) throws -> BenchReport {
        let runner = BenchRunner(configuration: configuration)
        let models = try configuration.models.map { entry in
            let network = try ModelFile.load(contentsOf: directory + "/" + entry.path).network
            return try runner.evaluate(network, name: entry.name, path: entry.path, sha256: String(repeating: "0", count: 64), test: data)
        }
        return BenchReport(created: "now", machine: .current(threads: 2), configuration: configuration, data: "synthetic",
                           n: data.count, models: models)
    }
}

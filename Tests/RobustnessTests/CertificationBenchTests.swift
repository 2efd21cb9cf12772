import Attacks
import Certification
import Datasets
import Foundation
import NeuralNet
@testable import Robustness
import TensorCore
import Testing
import _TestSupport

@Suite("Certified accuracy in bench")
struct CertificationBenchTests {
    static let base = #"{"schema":"bulwark-bench-config/2","seed":0,"epsilons":[0, 0.05],"dataset":{"name":"fashion-mnist","split":"test","n":40},"models":[{"name":"m","path":"m.safetensors"}],"attacks":[{"name":"PGD","type":"pgd","norm":"linf","steps":10}]"#

    func message(_ certification: String) -> String {
        do { _ = try BenchConfiguration.decode(Data((Self.base + #","certification":\#(certification)}"#).utf8), source: "bench.json"); return "" }
        catch { return "\(error)" }
    }

    @Test("the \"certification\" list decodes strictly, validates and round-trips")
    func configuration() throws {
        #expect(message(#"[{"method":"crown"},{"method":"ibp","norm":"l2","epsilons":[0.5]}]"#) == "")
        let decoded = try BenchConfiguration.decode(Data((Self.base + #","certification":[{"method":"crown"}]}"#).utf8), source: "x")
        #expect(decoded.certification == [.init(method: .crown, norm: .linf)])
        #expect(try BenchConfiguration.decode(decoded.encoded(), source: "x") == decoded)
        #expect(message(#"[{"method":"crow"}]"#).contains("unknown certification method 'crow'"))
        #expect(message(#"[{"method":"ibp","eps":[0.1]}]"#).contains("epsilons"))
        #expect(message(#"[{"method":"ibp","epsilons":[0]}]"#).contains("no ε > 0"))
        #expect(message(#"[{"method":"ibp"},{"method":"ibp","epsilons":[0.1]}]"#).contains("twice"))
        let renamed = Self.base.replacingOccurrences(of: #""name":"PGD""#, with: #""name":"certified PGD""#) + "}"
        #expect((try? BenchConfiguration.decode(Data(renamed.utf8), source: "x")) == nil)
    }

    @Test("bench reports certified accuracy below the worst case, with metrics and a passing BW009")
    func benchReportsCertificates() throws {
        let model = try ModelFile.load(contentsOf: TestSupport.repositoryRoot + "/models/mlp-pgd.safetensors").network
        let test = try sample(40)
        var configuration = try BenchConfiguration.decode(Data((Self.base + #","certification":[{"method":"ibp"},{"method":"crown"}]}"#).utf8), source: "x")
        configuration.checkExamples = 0
        let result = try BenchRunner(configuration: configuration).evaluate(model, name: "m", path: "m", sha256: "0", test: test)
        let certified = try #require(result.certified)
        #expect(certified.map(\.method) == ["ibp", "crown"])
        let worst = try #require(result.worstCase.first { $0.epsilon == 0.05 })
        for entry in certified { #expect(entry.accuracy.accuracy <= worst.accuracy.accuracy) }
        #expect(result.metrics.contains { $0.name == "certified CROWN ε=0.05" && $0.outcomeFlags?.count == 40 })
        let check = try #require(result.checks.first { $0.id == "BW009" })
        #expect(check.passed, "\(check.message)")
        let markdown = MarkdownReport.render(BenchReport(created: "now", machine: .current(threads: 1), configuration: configuration,
                                                         data: "sample", n: 40, models: [result]))
        #expect(markdown.contains("| m | certified CROWN |"))
    }

    @Test("BW009 fails when an example is certified but broken, naming the certificate and the examples")
    func certifiedButBroken() {
        let checker = SanityChecker(n: 10)
        let certified = [true, true, false, false, false, false, false, false, false, true]
        let robust = [true, false, false, true, true, true, false, false, false, false]
        let check = checker.certifiedNotBroken([.init(method: "CROWN", norm: .linf, epsilon: 0.1, certified: certified)]) { norm, epsilon in
            norm == .linf && epsilon == 0.1 ? robust : nil
        }
        #expect(!check.passed && check.message.contains("CROWN linf ε=0.1 certifies 2 example(s) an attack broke (indices 1, 9)"))
        let fine = checker.certifiedNotBroken([.init(method: "IBP", norm: .linf, epsilon: 0.1, certified: [Bool](repeating: false, count: 10))]) { _, _ in robust }
        #expect(fine.passed)
        let none = checker.certifiedNotBroken([.init(method: "IBP", norm: .l2, epsilon: 1, certified: certified)]) { _, _ in nil }
        #expect(none.passed && none.message.contains("nothing to compare"))
    }
}


private func sample(_ limit: Int) throws -> LabeledData {
    try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .test, limit: limit)
}

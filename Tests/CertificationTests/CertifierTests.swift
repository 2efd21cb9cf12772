import Attacks
@testable import Certification
import Datasets
import Foundation
import NeuralNet
import TensorCore
import Testing
import _TestSupport

@Suite("Certifier")
struct CertifierTests {
    static func shippedModel(_ name: String) throws -> Sequential {
        try ModelFile.load(contentsOf: TestSupport.repositoryRoot + "/models/\(name).safetensors").network
    }

    static func sample(_ limit: Int) throws -> LabeledData {
        try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .test, limit: limit)
    }

    @Test("On the shipped PGD- and CROWN-IBP-trained models no certified example is broken by PGD; CROWN certifies at least IBP's examples",
          arguments: ["mlp-pgd", "mlp-crown-ibp"])
    func certifiedNeverBroken(name: String) throws {
        let model = try Self.shippedModel(name)
        let data = try Self.sample(60)
        let runner = AttackRunner(classifier: model, batchSize: 60)
        var certifiedAny = false
        for epsilon in [0.03, 0.1] {
            let ibp = try Certifier(model, method: .ibp, norm: .linf).certify(data, epsilon: epsilon)
            let crown = try Certifier(model, method: .crown, norm: .linf).certify(data, epsilon: epsilon)
            let attack = try PGD(epsilon: Float(epsilon), stepSize: Float(epsilon) / 10, steps: 50)
            let robust = try runner.run(attack, on: data, seed: 1).robust
            for i in 0..<data.count {
                #expect(!crown.certified[i] || robust[i], "\(name): example \(i) certified by CROWN at ε \(epsilon) but broken by PGD")
                #expect(!ibp.certified[i] || crown.certified[i], "\(name): example \(i) certified by IBP but not by CROWN")
                #expect(crown.marginLowerBounds[i] >= ibp.marginLowerBounds[i])
            }
            #expect(crown.certifiedAccuracy.value <= Double(robust.filter { $0 }.count) / Double(data.count))
            #expect(crown.cleanAccuracy == ibp.cleanAccuracy)
            certifiedAny = certifiedAny || crown.certifiedAccuracy.successes > 0
        }
        #expect(certifiedAny, "\(name): nothing certified at ε = 0.03 or 0.1")
    }

    @Test("At ε = 0 every correctly classified example with a margin is certified, by every method")
    func zeroRadius() throws {
        let model = try Self.shippedModel("mlp-standard")
        let data = try Self.sample(30)
        for method in CertificationMethod.allCases {
            let result = try Certifier(model, method: method, norm: .l2).certify(data, epsilon: 0)
            #expect(result.certifiedAccuracy == result.cleanAccuracy, "\(method)")
        }
    }

    @Test("Certified radii: certified at the radius, not at twice the bisection precision above it; misclassified get 0")
    func radii() throws {
        let model = try Self.shippedModel("mlp-pgd")
        let data = try Self.sample(12)
        for (method, norm) in [(CertificationMethod.ibp, Norm.linf), (.crown, .linf), (.lipschitz, .l2)] {
            let certifier = try Certifier(model, method: method, norm: norm)
            let radii = try certifier.certifiedRadii(data, iterations: 12)
            let correct = try certifier.cleanCorrectness(data)
            let precision = (norm == .linf ? 1 : 28.0) / 4096
            let certifiedAt = try certifier.marginLowerBounds(data, epsilons: radii)
            let beyond = try certifier.marginLowerBounds(data, epsilons: radii.map { $0 + 2 * precision })
            for i in 0..<data.count {
                if !correct[i] { #expect(radii[i] == 0); continue }
                if radii[i] > 0 { #expect(certifiedAt[i] > Certifier.tolerance, "\(method) example \(i)") }
                #expect(beyond[i] <= Certifier.tolerance, "\(method) example \(i) is certified beyond its radius \(radii[i])")
            }
            #expect(radii.contains { $0 > 0 })
        }
    }

    @Test("Lipschitz radius in closed form: the smallest margin over its pairwise constant")
    func lipschitzClosedForm() throws {
        let model = try Self.shippedModel("mlp-pgd")
        let data = try Self.sample(20)
        let certifier = try Certifier(model, method: .lipschitz, norm: .l2)
        let bound = try #require(certifier.lipschitz)
        let radii = try certifier.certifiedRadii(data, iterations: 30)
        let correct = try certifier.cleanCorrectness(data)
        let points = data.features.scalars.map(Double.init)
        let logits = certifier.network.logits(points, rows: data.count)
        for i in 0..<data.count where correct[i] {
            let y = data.labels[i]
            let closed = (0..<10).filter { $0 != y }.map { j in
                (logits[i * 10 + y] - logits[i * 10 + j] - Certifier.tolerance) / bound.marginConstant(y, j) }.min()!
            #expect(abs(radii[i] - max(closed, 0)) < 1e-6 * 28, "example \(i): bisection \(radii[i]) vs closed form \(closed)")
        }
    }

    @Test("Results do not depend on the thread count")
    func threadIndependence() throws {
        let model = try Self.shippedModel("mlp-pgd")
        let data = try Self.sample(60)
        var one = try Certifier(model, method: .crown, norm: .linf)
        one.pool = WorkerPool(threadCount: 1)
        var two = try Certifier(model, method: .crown, norm: .linf)
        two.pool = WorkerPool(threadCount: 2)
        #expect(try one.marginLowerBounds(data, epsilons: .init(repeating: 0.05, count: 60))
                == two.marginLowerBounds(data, epsilons: .init(repeating: 0.05, count: 60)))
    }

    @Test("Bad requests are refused with the reason")
    func badRequests() throws {
        let model = try Self.shippedModel("mlp-pgd")
        let data = try Self.sample(5)
        let certifier = try Certifier(model, method: .ibp, norm: .linf)
        #expect(throws: CertificationError.self) { try certifier.certify(data, epsilon: -0.1) }
        #expect(throws: CertificationError.self) { try certifier.certify(data, epsilon: .nan) }
        let narrow = LabeledData(features: Tensor(shape: [1, 3], scalars: [0, 0, 0]), labels: [0], classCount: 10)
        #expect(throws: CertificationError.self) { try certifier.certify(narrow, epsilon: 0.1) }
        // Pixels outside [0, 1] (unscaled 0–255 data): the clipped L∞ box is not the ball; refused, naming the fix.
        var unscaled = data
        unscaled.features.scalars = unscaled.features.scalars.map { $0 * 255 }
        do {
            _ = try certifier.certify(unscaled, epsilon: 0.1)
            Issue.record("unscaled data was certified")
        } catch {
            #expect("\(error)".contains("--feature-scale"))
        }
        #expect(try Certifier(model, method: .ibp, norm: .l2).certify(unscaled, epsilon: 0.1).n == 5)
    }
}

import Foundation
import Testing
import Attacks
import NeuralNet
import TensorCore
import _TestSupport

@Suite("Attack specs: one typed, strict description")
struct AttackSpecTests {
    func decode(_ json: String) throws -> AttackSpec {
        try JSONDecoder().decode(AttackSpec.self, from: Data(json.utf8))
    }

    func message(_ json: String) -> String {
        do { _ = try decode(json); return "" } catch { return "\(error)" }
    }

    @Test("specs decode with defaults, round-trip, and build the attack they describe")
    func roundTrip() throws {
        let pgd = try decode(#"{"type":"pgd","steps":20,"relative_step_size":0.1}"#)
        #expect(pgd == .pgd(try PGD.Parameters(steps: 20, stepSize: .relative(0.1))))
        let attack = try #require(try pgd.makeAttack(epsilon: 0.1) as? PGD)
        #expect(attack.steps == 20 && abs(attack.stepSize - 0.01) < 1e-7 && attack.restarts == 1 && attack.randomStart && attack.stopAtFirstSuccess)
        #expect(try #require(try pgd.makeAttack(epsilon: 0.1, purpose: .training) as? PGD).stopAtFirstSuccess == false)
        #expect(try decode(#"{"type":"fgsm"}"#) == .fgsm(FGSM.Parameters()))
        let defaultPGD = try #require(try decode(#"{"type":"pgd"}"#).makeAttack(epsilon: 0.1) as? PGD)
        #expect(defaultPGD.steps == PGD.defaultSteps && abs(defaultPGD.stepSize - 0.025) < 1e-7)
        for spec in [pgd, .fgsm(FGSM.Parameters(norm: .l2, loss: .dlr)), .pgd(try PGD.Parameters(norm: .l2, steps: 3, stepSize: .absolute(0.5), restarts: 2, randomStart: false))] {
            #expect(try decode(String(decoding: JSONEncoder().encode(spec), as: UTF8.self)) == spec)
        }
    }

    @Test("unknown, misspelled and inapplicable keys are errors that name them")
    func strictness() {
        #expect(message(#"{"type":"pgd","relative_stepsize":0.1}"#).contains(#"did you mean "relative_step_size""#))
        #expect(message(#"{"type":"pgd","restart":3}"#).contains(#"did you mean "restarts""#))
        #expect(message(#"{"type":"fgsm","steps":50}"#).contains("is a parameter of pgd, mi-fgsm, apgd, apgd-t, fab-t, deepfool, cw and ddn attacks, not fgsm"))
        #expect(message(#"{"type":"pgd","step_size":0.1,"relative_step_size":0.1}"#).contains("not both"))
        #expect(message(#"{"type":"pdg"}"#).contains(#"did you mean "pgd""#))
        #expect(message(#"{"type":"pgd","steps":0}"#).contains("steps 0"))
        #expect(message(#"{"type":"pgd","norm":"l3"}"#) != "")
    }

    @Test("attack goals decode as \"random\" or a class, and are checked against the model")
    func goals() throws {
        #expect(try JSONDecoder().decode(TargetSelection.self, from: Data(#""random""#.utf8)) == .random)
        #expect(try JSONDecoder().decode(TargetSelection.self, from: Data("3".utf8)) == .fixed(3))
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(TargetSelection.self, from: Data(#""all""#.utf8)) }
        #expect(throws: AttackError.self) { try AttackGoal(targets: .fixed(10)).validate(classes: 10, loss: .crossEntropy) }
        #expect(throws: AttackError.self) { try AttackGoal(targets: .random, labels: .predictions).validate(classes: 10, loss: .crossEntropy) }
        #expect(throws: AttackError.self) { try AttackGoal(targets: .random).validate(classes: 3, loss: .dlr) }
    }

    @Test("attack entry points refuse inputs that do not fit the workspace or the model")
    func shapeChecks() throws {
        let model = Sequential(spec: try ModelSpec.parse("20-8-3"), seed: 1)
        model.reserve(rows: 8, shards: 1)
        let attack = try PGD(epsilon: 0.1, steps: 2)
        let small = attack.makeWorkspace(rows: 4, features: 20)
        var clean = TestSupport.randomTensor(rows: 8, columns: 20, seed: 1, in: 0, 1)
        var output = Tensor(zeros: [8, 20])
        let labels = [Int](repeating: 0, count: 8)
        var generator = RandomGenerator(seed: 0)
        try clean.withMatrix { x in
            try output.withMatrix { y in
                try labels.withUnsafeBufferPointer { l in
                    #expect(throws: AttackError.self) {
                        try attack.perturb(x, labels: l.baseAddress!, targets: nil, into: y, classifier: model, shard: 0,
                                           workspace: small, generator: &generator)
                    }
                    #expect(throws: AttackError.self) {
                        try attack.perturb(x, labels: l.baseAddress!, targets: nil, into: y.rows(0..<4), classifier: model, shard: 0,
                                           workspace: attack.makeWorkspace(rows: 8, features: 20), generator: &generator)
                    }
                    let fgsmWorkspace = try FGSM(epsilon: 0.1).makeAnyWorkspace(rows: 8, features: 20)
                    #expect(throws: AttackError.self) {
                        try attack.perturb(x, labels: l.baseAddress!, targets: nil, into: y, classifier: model, shard: 0,
                                           anyWorkspace: fgsmWorkspace, generator: &generator)
                    }
                }
            }
        }
    }
}

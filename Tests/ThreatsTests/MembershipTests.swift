import Foundation
import NeuralNet
import TensorCore
import Testing
@testable import Threats
import Training
import _TestSupport

@Suite("Membership inference")
struct MembershipTests {
    @Test("AUC and TPR at FPR are exact on constructed score sets")
    func rocExact() {
        // Members 4, 3, 2; non-members 2.5, 1, 0 ... hand-counted: pairs (m > n): 4 beats 3, 3 beats 3,
        // 2 beats 2 → 8 of 9.
        let roc = ROCCurve(scores: [4, 3, 2, 2.5, 1, 0], isMember: [true, true, true, false, false, false])
        #expect(abs(roc.auc - 8.0 / 9.0) < 1e-15)
        #expect(roc.tpr(atFPR: 0) == 2.0 / 3.0)
        #expect(roc.tpr(atFPR: 1.0 / 3.0) == 1)
        // Ties count one half: all scores equal gives 0.5.
        #expect(ROCCurve(scores: [1, 1, 1, 1], isMember: [true, false, true, false]).auc == 0.5)
        // A tie between one member and one non-member, the rest separated: 3 of 4 pairs plus ½.
        let tied = ROCCurve(scores: [5, 2, 2, 0], isMember: [true, true, false, false])
        #expect(abs(tied.auc - 3.5 / 4) < 1e-15)
        #expect(tied.tpr(atFPR: 0) == 0.5)  // the tied pair cannot be split at FPR 0
        #expect(tied.tpr(atFPR: 0.5) == 1)
        // Perfect and inverted separation.
        #expect(ROCCurve(scores: [3, 2, 1, 0], isMember: [true, true, false, false]).auc == 1)
        #expect(ROCCurve(scores: [0, 1, 2, 3], isMember: [true, true, false, false]).auc == 0)
    }

    @Test("TPR at 0.1% FPR on 1,000 non-members allows exactly one false positive")
    func tprAtLowFPR() {
        // 1000 non-members at 0..<1000; members at 10,000 (beats all), 998.5 (all but one), 500.5
        // (499 above it) and −1.
        var scores = (0..<1000).map(Double.init)
        var members = [Bool](repeating: false, count: 1000)
        scores += [10_000, 998.5, 500.5, -1]
        members += [true, true, true, true]
        let roc = ROCCurve(scores: scores, isMember: members)
        #expect(roc.tpr(atFPR: 0) == 0.25)
        #expect(roc.tpr(atFPR: 0.001) == 0.5)
        #expect(roc.tpr(atFPR: 0.0099) == 0.5)
        #expect(roc.tpr(atFPR: 0.5) == 0.75)
        // Mann–Whitney by brute force.
        var wins = 0.0
        for (s, m) in zip(scores, members) where m {
            for (t, n) in zip(scores, members) where !n { wins += s > t ? 1 : (s == t ? 0.5 : 0) }
        }
        #expect(abs(roc.auc - wins / 4000) < 1e-12)
        let points = roc.points()
        #expect(points.count <= 200 && points.first == ROCCurve.Point(fpr: 0, tpr: 0.25) && points.last?.tpr == 1)
        #expect(roc.points(maxPoints: 10).count <= 10)
    }

    @Test("attack scores: loss, confidence and entropy from log space; LiRA's statistic is exact where p rounds to 1")
    func scores() {
        let logits = Tensor(shape: [2, 3], scalars: [2, 0, -1, 50, 0, 0])
        let labels = [0, 0]
        let loss = MembershipAttack.scores(.loss, logits: logits, labels: labels)
        let expected = -(Foundation.log(Foundation.exp(2.0) + 1 + Foundation.exp(-1.0)) - 2)
        #expect(abs(loss[0] - expected) < 1e-12)
        let confidence = MembershipAttack.scores(.confidence, logits: logits, labels: [1, 2])
        #expect(abs(confidence[0] - expected) < 1e-12)  // log maxⱼ pⱼ, whatever the label
        // A confident row keeps a distinct, exact loss: −log p_y = log1p(2e^{−50}), not 0.
        #expect(abs(loss[1] + 2 * Foundation.exp(-50.0)) < 1e-30 && loss[1] != 0)
        let entropy = MembershipAttack.scores(.entropy, logits: logits, labels: labels)
        #expect(entropy[1] > entropy[0] && entropy[1] <= 0)
        let phi = MembershipAttack.scaledConfidence(logits: logits, labels: labels)
        #expect(abs(phi[1] - (50 - Foundation.log(2.0))) < 1e-9)  // log(p/(1−p)) with 1 − p ≈ 2e-22
        #expect(abs(phi[0] - (2 - Foundation.log(1 + Foundation.exp(-1.0)))) < 1e-12)
    }

    @Test("LiRA separates records whose IN and OUT distributions differ, online better than offline")
    func liraSynthetic() {
        var generator = RandomGenerator(seed: 3)
        let records = 400, shadows = 16
        // Record r: φ ~ N(μ_r + 2, 1) when trained on, N(μ_r, 1) otherwise, with μ_r spread widely:
        // the per-record calibration is what LiRA adds over a global threshold.
        let base = (0..<records).map { _ in 6 * Double(generator.nextGaussian()) }
        let inShadow = MembershipExperiment.shadowMembership(records: records, shadows: shadows, seed: 1, target: 0)
        let shadowPhi = (0..<shadows).map { s in (0..<records).map { r in base[r] + (inShadow[s][r] ? 2 : 0) + Double(generator.nextGaussian()) } }
        let isMember = MembershipExperiment.targetMembership(records: records, seed: 1, target: 0)
        let target = (0..<records).map { r in base[r] + (isMember[r] ? 2 : 0) + Double(generator.nextGaussian()) }
        let online = ROCCurve(scores: LiRA.scores(target: target, shadows: shadowPhi, inShadow: inShadow, online: true), isMember: isMember)
        let offline = ROCCurve(scores: LiRA.scores(target: target, shadows: shadowPhi, inShadow: inShadow, online: false), isMember: isMember)
        let global = ROCCurve(scores: target, isMember: isMember)
        #expect(online.auc > 0.8 && offline.auc > 0.8, "online \(online.auc), offline \(offline.auc)")
        #expect(global.auc < 0.7, "a global threshold cannot see through the per-record spread: \(global.auc)")
        // Each record is in exactly half of the shadow models; the target has exactly half members.
        #expect((0..<records).allSatisfy { r in inShadow.filter { $0[r] }.count == shadows / 2 })
        #expect(isMember.filter { $0 }.count == records / 2)
    }

    @Test("a small experiment: an overfit target leaks, results repeat exactly, DP-SGD records its ε")
    func smallExperiment() throws {
        let data = TestSupport.syntheticData(count: 400, features: 20, classes: 4, seed: 8)
        let test = TestSupport.syntheticData(count: 200, features: 20, classes: 4, seed: 9)
        let overfit = TrainingRecipe(architecture: try ModelSpec.parse("20-64-4"), epochs: 60, batchSize: 20)
        let dp = TrainingRecipe(architecture: try ModelSpec.parse("20-64-4"), epochs: 5, batchSize: 20,
                                objective: .dpSGD(DPSGDSpec(noiseMultiplier: 1, clip: 1, noise: .seeded)))
        let configuration = MembershipConfiguration(seed: 2, shadows: 4, threads: 2, targets: [
            .init(name: "overfit", pool: 400, recipe: overfit), .init(name: "dp", pool: 400, recipe: dp)])
        let result = try MembershipExperiment(configuration: configuration).run(train: data, test: test)
        let leaky = result.targets[0]
        #expect(leaky.members == 200 && leaky.nonMembers == 200 && leaky.modelsTrained == 5)
        #expect(leaky.attacks.map(\.attack) == MembershipAttack.allCases)
        let loss = try #require(leaky.attacks.first { $0.attack == .loss })
        #expect(loss.roc.auc > 0.6, "an overfit model leaks membership: AUC \(loss.roc.auc)")
        #expect(leaky.privacy == nil)
        let privacy = try #require(result.targets[1].privacy)
        // q = 20/200, σ = 1, 5 epochs of 10 steps.
        #expect(abs(privacy.epsilon - RDPAccountant.guarantee(samplingRate: 0.1, noiseMultiplier: 1, steps: 50, delta: 1e-5).epsilon) < 1e-12)
        var oneThread = configuration
        oneThread.threads = 1
        let again = try MembershipExperiment(configuration: oneThread).run(train: data, test: test)
        #expect(again.targets.map { $0.attacks.map(\.scores) } == result.targets.map { $0.attacks.map(\.scores) },
                "the same seed gives the same scores with one thread or two")
    }

    @Test("membership configurations decode strictly and name what is wrong")
    func configuration() throws {
        let good = #"{"schema": "bulwark-membership-config/1", "targets": [{"name": "a", "pool": 100, "recipe": {"architecture": "20-8-4"}}]}"#
        let decoded = try MembershipConfiguration.decode(Array(good.utf8), source: "good.json")
        #expect(decoded.shadows == 16 && decoded.attacks == MembershipAttack.allCases)
        func problem(_ json: String) -> String {
            do { _ = try MembershipConfiguration.decode(Array(json.utf8), source: "bad.json"); return "" } catch { return "\(error)" }
        }
        #expect(problem(#"{"schema": "bulwark-membership-config/1", "shadow": 4, "targets": []}"#).contains("shadows"))
        #expect(problem(#"{"schema": "bulwark-membership-config/1", "targets": []}"#).contains("targets"))
        #expect(problem(#"{"schema": "bulwark-membership-config/1", "shadows": 3, "targets": [{"name": "a", "pool": 100, "recipe": {"architecture": "20-8-4"}}]}"#).contains("even"))
        #expect(problem(#"{"schema": "bulwark-membership-config/1", "attacks": ["lira"], "targets": [{"name": "a", "pool": 100, "recipe": {"architecture": "20-8-4"}}]}"#).contains("lira"))
        #expect(problem(#"{"schema": "bulwark-membership-config/1", "targets": [{"name": "../x", "pool": 100, "recipe": {"architecture": "20-8-4"}}]}"#).contains("letters"))
        #expect(problem(#"{"schema": "bulwark-membership-config/2", "targets": [{"name": "a", "pool": 100, "recipe": {"architecture": "20-8-4"}}]}"#).contains("schema"))
        // The default configuration is valid and round-trips.
        try MembershipConfiguration.standard.validate()
        let encoded = try JSONEncoder().encode(MembershipConfiguration.standard)
        #expect(try MembershipConfiguration.decode(Array(encoded), source: "x") == MembershipConfiguration.standard)
    }
}

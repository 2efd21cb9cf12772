import ArgumentParser
import Foundation
import NeuralNet
import TensorCore
import Threats
import Training
import _FileSystem

/// `bulwark threat membership`: membership inference against target models trained by Bulwark
/// (`MembershipExperiment`).
struct ThreatMembershipCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "membership",
        abstract: "Membership inference (loss, confidence, entropy, LiRA online/offline) against target models.",
        discussion: """
        Each target model trains on a seeded random half of its pool (the first "pool" training \
        examples); the other half are the non-members. LiRA (Carlini et al., 2022) trains shadow \
        models with the target's recipe, each record in exactly half of them, side by side on \
        --threads threads. Results: ROC AUC and TPR at 0.1% and 1% FPR per attack and target. \
        Without --config, the README's table: the standard, an overfit, a PGD-trained and a DP-SGD \
        model, 16 shadow models each (about ten minutes on two cores).

        Sharded shadow training: --shard I/N --part PATH trains every N-th model (targets and shadows, \
        in order) and writes their logits to a part file; --merge PART... (with the same configuration, \
        seed, shadows and data) checks that the N parts belong together and scores them, exactly as an \
        unsharded run does (each model's seed and training set derive from the seed and its position). \
        Run the shards as a Slurm job array or a Kubernetes Indexed Job, like bench's (see the README).

        Examples:
          bulwark threat membership --json
          bulwark threat membership --config membership.json --seed 1 --save-scores scores/
          bulwark threat membership --config membership.json --shard 0/8 --part parts/membership-0.json
          bulwark threat membership --config membership.json --merge parts/membership-*.json --report membership.json
        """
    )

    @Option(help: ArgumentHelp("A membership configuration (JSON, schema bulwark-membership-config/1; default: the README's).", valueName: "file"))
    var config: String?

    @Option(help: "Seed of the memberships and of every model's training (default: the configuration's).")
    var seed: UInt64?

    @Option(help: "Shadow models per target for LiRA (default: the configuration's, 16).")
    var shadows: Int?

    @Option(help: ArgumentHelp("Write one CSV per target and attack here (<target>-<attack>.csv, header score,member).", valueName: "dir"))
    var saveScores: String?

    @Option(help: ArgumentHelp("Write the results as a threat report (JSON) that bulwark gate compares.", valueName: "file"))
    var report: String?

    @Flag(help: "Replace an existing file of another kind at --report or --part.")
    var force = false

    @Option(help: ArgumentHelp("Train only shard I of N of the models (0 ≤ I < N) and write them to --part.", valueName: "I/N"))
    var shard: String?

    @Option(help: ArgumentHelp("With --shard: where to write the shard's trained models (JSON).", valueName: "path"))
    var part: String?

    @Option(parsing: .upToNextOption, help: ArgumentHelp("Score the models of these parts (every shard's) instead of training.", valueName: "part"))
    var merge: [String] = []

    @Flag(help: "Print one JSON object per attack and target on stdout.")
    var json = false

    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Security") var security: SecurityOptions
    @OptionGroup(title: "Engine") var engine: EngineOptions

    func validate() throws {
        try data.checkCSVOptions()
        if let shadows, shadows < 2 || shadows % 2 != 0 || shadows > MembershipConfiguration.maximumShadows {
            throw ValidationError("--shadows must be even, ≥ 2 and at most \(MembershipConfiguration.maximumShadows), got \(shadows)")
        }
        if let shard {
            do { _ = try WorkShard(parsing: shard) } catch { throw ValidationError("--shard: \(error)") }
            guard let part, part.hasSuffix(".json") else { throw ValidationError("--shard writes the trained models to --part PATH.json; give it") }
            if !merge.isEmpty { throw ValidationError("--shard trains, --merge scores: run the shards first, then one --merge") }
            if saveScores != nil || report != nil || json {
                throw ValidationError("--save-scores, --report and --json apply to the scored results: give them with --merge")
            }
        } else if part != nil {
            throw ValidationError("--part is the output of --shard I/N")
        }
    }


    func run() throws {
        engine.apply()
        var configuration = MembershipConfiguration.standard
        if let config {
            let bytes: [UInt8]
            do { bytes = try FileReader.readAll(config, limit: 1 << 20) } catch { throw CLIError.unusableInput("--config: \(error)") }
            configuration = try MembershipConfiguration.decode(bytes, source: config)
        }
        if let seed { configuration.seed = seed }
        if let shadows { configuration.shadows = shadows }
        if engine.threads != nil { configuration.threads = WorkerPool.shared.threadCount }
        try configuration.validate()
        if let saveScores { try prepareScoreDirectory(saveScores, configuration: configuration) }
        if let report { try ThreatReportFile.prepare(report, inputs: data.spec.namedFiles + (config.map { [$0] } ?? []) + merge, force: force) }
        if let part { try OutputPath.prepare(part, for: "--part", replacing: [.membershipPart], inputs: data.spec.namedFiles + (config.map { [$0] } ?? []), force: force) }

        let loader = try security.loader()
        let (train, trainDescription) = try data.spec.load(.train, loader: loader)
        let (test, testDescription) = try data.spec.load(.test, loader: loader)
        log.info("training data: \(trainDescription)")
        var experiment = MembershipExperiment(configuration: configuration)
        let progress = ModelTrainingProgress("membership")
        experiment.progress = { progress.update(done: $0, total: $1) }
        if let shard, let part {
            let slice = try WorkShard(parsing: shard)
            let trained = try MembershipPart.train(experiment, shard: slice, train: train, test: test, log: { log.info("\($0)") })
            try AtomicFile.write(trained.encoded(), to: part)
            print("shard \(slice): \(trained.models.count) models trained; part: \(part)\n"
                  + "score all \(slice.count) parts with: bulwark threat membership (same configuration and data) --merge PART...")
            return
        }
        let result: MembershipExperiment.Result
        if merge.isEmpty {
            result = try experiment.run(train: train, test: test, log: { log.info("\($0)") })
        } else {
            let parts = try merge.map { path in
                (source: path, part: try MembershipPart.decode(Data(try FileReader.readAll(path, limit: 1 << 30)), source: path))
            }
            try experiment.check(train: train, test: test)
            result = try experiment.score(try MembershipPart.merge(parts, experiment: experiment, train: train, test: test), train: train, test: test)
        }
        if let saveScores { try writeScores(result, to: saveScores) }
        if let report {
            var settings = configuration
            settings.seed = 0  // reports with other seeds still compare (the gate notes the difference)
            settings.threads = 1
            settings.targets = settings.targets.map { .init(name: $0.name, pool: $0.pool, recipe: $0.recipe.asRunByThreatExperiments) }
            try ThreatReportFile.write(report, experiment: "membership", settings: settings, seed: configuration.seed,
                                       data: "\(trainDescription); \(testDescription)", train: train, test: test,
                                       groups: result.metricGroups)
        }
        if json {
            for target in result.targets {
                for attack in target.attacks { try JSONOutput.line(JSONLine(target: target, attack: attack)) }
            }
        } else {
            print(Self.table(result))
        }
    }

    /// Creates the directory if needed and refuses to overwrite a file there that is not a score file.
    private func prepareScoreDirectory(_ directory: String, configuration: MembershipConfiguration) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw CLIError.cannotWrite("--save-scores: cannot create the directory \(displayable(directory)): \(error.localizedDescription)")
        }
        for target in configuration.targets {
            for attack in configuration.attacks {
                try OutputPath.prepare(Self.scorePath(directory, target: target.name, attack: attack), for: "--save-scores",
                                       replacing: [.membershipScores], inputs: data.spec.namedFiles + (config.map { [$0] } ?? []), force: false)
            }
        }
    }

    static func scorePath(_ directory: String, target: String, attack: MembershipAttack) -> String {
        (directory as NSString).appendingPathComponent("\(target)-\(attack.rawValue).csv")
    }

    private func writeScores(_ result: MembershipExperiment.Result, to directory: String) throws {
        for target in result.targets {
            for attack in target.attacks {
                var text = "score,member\n"
                for (score, member) in zip(attack.scores, attack.isMember) { text += "\(score),\(member ? 1 : 0)\n" }
                try AtomicFile.write(Data(text.utf8), to: Self.scorePath(directory, target: target.name, attack: attack.attack))
            }
        }
        log.info("scores written to \(directory)")
    }

    /// One `--json` object: the fields, the target's accuracy and privacy, and ROC points.
    struct JSONLine: Encodable {
        let target: MembershipExperiment.TargetResult
        let attack: MembershipExperiment.AttackResult

        enum CodingKeys: String, CodingKey {
            case attack, target, auc, roc
            case tprAtFPR = "tpr_at_fpr", members = "n_members", nonMembers = "n_nonmembers"
            case testAccuracy = "target_test_accuracy", memberAccuracy = "target_member_accuracy"
            case dpEpsilon = "dp_epsilon", dpDelta = "dp_delta", recipe = "target_recipe"
            case trainingSeconds = "training_seconds", modelsTrained = "models_trained"
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(attack.attack.rawValue, forKey: .attack)
            try c.encode(target.name, forKey: .target)
            try c.encode(attack.roc.auc, forKey: .auc)
            var rates: [String: Double] = [:]
            for fpr in MembershipExperiment.reportedFPRs { rates[String(fpr)] = attack.tpr(atFPR: fpr) }
            try c.encode(rates, forKey: .tprAtFPR)
            try c.encode(target.members, forKey: .members)
            try c.encode(target.nonMembers, forKey: .nonMembers)
            try c.encode(target.testAccuracy.value, forKey: .testAccuracy)
            try c.encode(target.memberAccuracy.value, forKey: .memberAccuracy)
            try c.encodeIfPresent(target.privacy?.epsilon, forKey: .dpEpsilon)
            try c.encodeIfPresent(target.privacy?.delta, forKey: .dpDelta)
            try c.encode(target.recipe, forKey: .recipe)
            try c.encode(target.trainingSeconds, forKey: .trainingSeconds)
            try c.encode(target.modelsTrained, forKey: .modelsTrained)
            try c.encode(attack.roc.points(), forKey: .roc)
        }
    }

    static func table(_ result: MembershipExperiment.Result) -> String {
        var lines = ["target        attack         AUC     TPR@0.1%FPR  TPR@1%FPR  (members / non-members; test accuracy)"]
        for target in result.targets {
            let privacy = target.privacy.map { String(format: "; DP ε = %.2f at δ = %g", $0.epsilon, $0.delta) } ?? ""
            for attack in target.attacks {
                lines.append("\(target.name.padding(13)) \(attack.attack.rawValue.padding(13))  \(attack.roc.auc.formatted(4))  "
                             + "\(attack.tpr(atFPR: 0.001).formatted(4).padding(11))  \(attack.tpr(atFPR: 0.01).formatted(4))")
            }
            lines.append("  \(target.members) / \(target.nonMembers) records; test accuracy \(target.testAccuracy.value.formatted(4)), "
                         + "member accuracy \(target.memberAccuracy.value.formatted(4))\(privacy); \(target.modelsTrained) models in "
                         + "\(target.trainingSeconds.formatted(1)) s")
        }
        return lines.joined(separator: "\n")
    }
}

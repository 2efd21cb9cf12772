import ArgumentParser
import Datasets
import Foundation
import NeuralNet
import TensorCore
import Training

/// `bulwark train`: maps its flags onto a `TrainingJob` and prints the epochs and the result.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a dense network and save it as safetensors (loads into torch.nn.Sequential).",
        discussion: """
        A checkpoint is written atomically after every epoch (default: OUT with .checkpoint.safetensors); \
        --resume CHECKPOINT continues to exactly the weights an uninterrupted run reaches. The model and \
        checkpoint are recorded in the manifest beside them.

        Examples:
          bulwark train --model 784-256-256-10 --epochs 5 --out models/mine.safetensors
          bulwark train --adversarial pgd --train-eps 8/255 --train-steps 7 --epochs 30 --schedule cosine --out models/robust.safetensors
          bulwark train --recipe madry --model 784-512-512-10 --out models/madry-512.safetensors
          bulwark train --from models/mlp-standard.safetensors --adversarial pgd --train-steps 7 --epochs 10 --lr 1e-4 --out models/finetuned.safetensors
          bulwark train --model 20-64-3 --train-csv train.csv --test-csv test.csv --label-column -1 --out csv-model.safetensors
        """
    )

    @OptionGroup(title: "Recipe") var recipe: TrainingOptions

    @Option(help: ArgumentHelp("Where to write the trained model (.safetensors); its directory is created if needed.", valueName: "path"))
    var out: String

    @Option(help: ArgumentHelp("Checkpoint path (default: OUT with .checkpoint.safetensors).", valueName: "path"))
    var checkpoint: String?

    @Option(help: ArgumentHelp("Continue from this checkpoint (same options as the original run).", valueName: "checkpoint"))
    var resume: String?

    @Flag(help: "Replace an existing output file of another kind (never one of the command's inputs).")
    var force = false

    @Flag(help: "JSON Lines on stdout: one object per epoch, then a summary.")
    var json = false

    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Security") var security: SecurityOptions
    @OptionGroup(title: "Engine") var engine: EngineOptions

    func validate() throws {
        try data.checkCSVOptions()
        if !out.hasSuffix(".safetensors") {
            throw ValidationError("--out must name a .safetensors file, got '\(out)'")
        }
    }

    func run() throws {
        engine.apply()
        let loader = try security.loader(model: resume ?? recipe.from)
        // Without --model, a --from model's own architecture is the one trained (read from the
        // checkpoint when resuming, which no longer needs the --from file's weights).
        var initialModel: TrainingJob.InitialModel?
        var fromArchitecture: ModelSpec?
        if let from = recipe.from, recipe.model == nil {
            if let resume {
                fromArchitecture = try Checkpoint.architecture(of: resume, loader: loader)
            } else {
                initialModel = try TrainingJob.InitialModel.load(from, loader: loader)
                fromArchitecture = initialModel?.architecture
            }
        }
        var job = TrainingJob(recipe: try recipe.recipe(fromArchitecture: fromArchitecture), data: data.spec, output: out,
                              checkpoint: checkpoint, resume: resume)
        job.initialModel = initialModel
        job.force = force
        let display = ProgressDisplay()
        var events = TrainingJob.Events()
        events.log = { log.info("\($0)") }
        events.warning = { log.warning("\($0)") }
        events.progress = { display.update($0) }
        let epochs = job.recipe.epochs
        events.epochFinished = { metrics in
            display.finishLine()
            print(json ? JSONOutput.text(EpochLine(metrics)) : Self.describe(metrics, epochs: epochs))
            Console.flushStandardOutput()
        }
        let result = try job.run(loader: loader, events: events)
        if json {
            try JSONOutput.line(TrainSummary(
                testAccuracy: result.testAccuracy.value, n: result.testAccuracy.trials, model: result.model, sha256: result.sha256,
                seconds: result.seconds, epochs: result.history.count, checkpoint: result.checkpoint))
        } else {
            let (lower, upper) = result.testAccuracy.wilsonInterval()
            print("test accuracy \(result.testAccuracy.value.formatted(4)) (n = \(result.testAccuracy.trials), 95% CI \(lower.formatted(4))–\(upper.formatted(4)))")
            print("saved \(result.model) (SHA-256 \(result.sha256))")
        }
    }

    static func describe(_ m: EpochMetrics, epochs: Int?) -> String {
        var text = "epoch \(m.epoch)\(epochs.map { "/\($0)" } ?? "")  loss \(m.loss.formatted(4))  train \(m.trainAccuracy.formatted(4))"
        if let v = m.validationAccuracy { text += "  val \(v.formatted(4))" }
        text += "  \(m.seconds.formatted(2)) s  \(Int(m.samplesPerSecond)) samples/s"
        for (key, value) in m.extra.sorted(by: { $0.key < $1.key }) { text += "  \(key) \(value.formatted(4))" }
        for warning in m.warnings { text += "\n  warning: \(warning)" }
        return text
    }
}

/// One `--json` line per epoch.
struct EpochLine: Encodable {
    let metrics: EpochMetrics
    init(_ metrics: EpochMetrics) { self.metrics = metrics }

    enum CodingKeys: String, CodingKey {
        case type, epoch, loss, seconds, extra, warnings
        case trainAccuracy = "train_accuracy", validationAccuracy = "val_accuracy"
        case samplesPerSecond = "samples_per_second", learningRate = "learning_rate"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("epoch", forKey: .type)
        try c.encode(metrics.epoch, forKey: .epoch)
        try c.encode(metrics.loss, forKey: .loss)
        try c.encode(metrics.trainAccuracy, forKey: .trainAccuracy)
        try c.encode(metrics.validationAccuracy, forKey: .validationAccuracy)  // null without validation
        try c.encode(metrics.seconds, forKey: .seconds)
        try c.encode(metrics.samplesPerSecond, forKey: .samplesPerSecond)
        try c.encode(metrics.learningRate, forKey: .learningRate)
        if !metrics.extra.isEmpty { try c.encode(metrics.extra, forKey: .extra) }
        if !metrics.warnings.isEmpty { try c.encode(metrics.warnings, forKey: .warnings) }
    }
}

/// The final `--json` line of `bulwark train`.
struct TrainSummary: Encodable {
    let type = "summary"
    let testAccuracy: Double
    let n: Int
    let model: String
    let sha256: String
    let seconds: Double
    let epochs: Int
    let checkpoint: String?

    enum CodingKeys: String, CodingKey {
        case type, n, model, sha256, seconds, epochs, checkpoint
        case testAccuracy = "test_accuracy"
    }
}

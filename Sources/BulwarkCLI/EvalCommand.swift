import ArgumentParser
import Datasets
import Foundation
import NeuralNet
import TensorCore

/// `bulwark eval MODEL`: clean test accuracy with n and a 95% Wilson interval, computed through the
/// model's `InferenceModel` (the gradient-free view a server shares).
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Clean test accuracy of a model (with n and a 95% Wilson confidence interval).",
        discussion: """
        Examples:
          bulwark eval models/mlp-standard.safetensors
          bulwark eval mine.safetensors --test-csv test.csv --label-column -1 --json
          bulwark eval torch-model.safetensors --activation relu --allow-unverified
        """
    )

    @Argument(help: "Model file (.safetensors).")
    var model: String

    @Flag(help: "Print one JSON object on stdout.")
    var json = false

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Security") var security: SecurityOptions
    @OptionGroup(title: "Engine") var engine: EngineOptions

    struct Result: Encodable {
        let accuracy: Double
        let n: Int
        let correct: Int
        let ciLower: Double
        let ciUpper: Double
        let model: String
        let data: String

        enum CodingKeys: String, CodingKey {
            case accuracy, n, correct, model, data
            case ciLower = "ci95_lower", ciUpper = "ci95_upper"
        }
    }

    func validate() throws { try data.checkCSVOptions() }

    func run() throws {
        engine.apply()
        let loader = try security.loader(model: model)
        let inference = try modelOptions.load(model, loader: loader).network.inferenceModel(pool: .shared)
        let (test, description) = try data.spec.load(.test, loader: loader)
        guard test.featureCount == inference.inputWidth else {
            throw CLIError.unusableInput("\(model) expects \(inference.inputWidth) features, the data has \(test.featureCount)")
        }
        if let label = test.labelOutside(classes: inference.classCount) {
            throw CLIError.unusableInput("the data has label \(label), but \(model) has only \(inference.classCount) classes (0…\(inference.classCount - 1)); "
                                         + "check --label-column, or evaluate a model trained on these classes")
        }
        let accuracy = try inference.accuracy(on: test)
        let (lower, upper) = accuracy.wilsonInterval()
        if json {
            try JSONOutput.line(Result(accuracy: accuracy.value, n: test.count, correct: accuracy.successes,
                                       ciLower: lower, ciUpper: upper, model: model, data: description))
        } else {
            log.info("test data: \(description)")
            print("accuracy \(accuracy.value.formatted(4)) (\(accuracy.successes)/\(test.count), 95% CI \(lower.formatted(4))–\(upper.formatted(4)))")
        }
    }
}

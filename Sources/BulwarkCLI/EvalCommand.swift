import ArgumentParser
import Datasets
import Foundation
import NeuralNet
import TensorCore

/// `bulwark eval MODEL`: clean test accuracy with n and a 95% Wilson interval.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Clean test accuracy of a model (with n and a 95% Wilson confidence interval)."
    )

    @Argument(help: "Model file (.safetensors written by bulwark train).")
    var model: String

    @Flag(help: "Print one JSON object on stdout.")
    var json = false

    @OptionGroup var data: DataOptions
    @OptionGroup var security: SecurityOptions
    @OptionGroup var engine: EngineOptions

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

    func run() throws {
        engine.apply()
        let loader = try security.loader(model: model)
        let loaded = try ModelLoading.load(model, loader: loader)
        let (test, description) = try data.load(.test, loader: loader)
        guard test.featureCount == loaded.network.inputWidth else {
            throw ValidationError("\(model) expects \(loaded.network.inputWidth) features, the data has \(test.featureCount)")
        }
        let correct = loaded.network.correctPredictions(on: test)
        let accuracy = Proportion(successes: correct, trials: test.count)
        let (lower, upper) = accuracy.wilsonInterval()
        if json {
            try JSONOutput.line(Result(accuracy: accuracy.value, n: test.count, correct: correct,
                                       ciLower: lower, ciUpper: upper, model: model, data: description))
        } else {
            log.info("test data: \(description)")
            print("accuracy \(accuracy.value.formatted(4)) (\(correct)/\(test.count), 95% CI \(lower.formatted(4))–\(upper.formatted(4)))")
        }
    }
}

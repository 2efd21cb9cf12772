import Attacks
import Datasets
import Foundation
import NeuralNet
import TensorCore
import Testing
import Training
import _FileSystem
import _TestSupport

@Suite("Training recipes and jobs")
struct TrainingRecipeTests {
    func decode(_ json: String) throws -> TrainingRecipe {
        try JSONDecoder().decode(TrainingRecipe.self, from: Data(json.utf8))
    }

    func message(_ json: String) -> String {
        do { _ = try decode(json); return "" } catch { return "\(error)" }
    }

    @Test("recipes round-trip through JSON; omitted fields take bulwark train's defaults")
    func json() throws {
        for recipe in [TrainingRecipe.standardMLP, .pgdMLP] {
            #expect(try TrainingRecipe.decode(json: recipe.json) == recipe)
        }
        let minimal = try decode(#"{"architecture":"784-256-256-10"}"#)
        #expect(minimal == TrainingRecipe.standardMLP)
        let pgd = try decode(#"{"architecture":"784-256-256-10","epochs":100,"schedule":{"type":"cosine"},"objective":{"type":"adversarial","attack":{"type":"pgd","steps":7,"step_size":0.025},"epsilon":0.1,"mix":0.9}}"#)
        #expect(pgd == TrainingRecipe.pgdMLP)
        var fineTuning = TrainingRecipe.madryMLP
        fineTuning.initialModel = "models/mlp-standard.safetensors"
        #expect(try TrainingRecipe.decode(json: fineTuning.json) == fineTuning)
        #expect(fineTuning.json.contains(#""initial_model":"models/mlp-standard.safetensors""#))
        #expect(fineTuning.commandLineArguments.joined(separator: " ").contains("--seed 0 --from models/mlp-standard.safetensors"))
        #expect(fineTuning.resumeConflict(with: .madryMLP)?.contains("initial weights") == true)
        #expect(message(#"{"architecture":"784-10","initial_model":"m.bin"}"#).contains(".safetensors model file"))
    }

    @Test("unknown keys in a recipe are errors that name them")
    func strictness() {
        #expect(message(#"{"architecture":"784-10","epoch":3}"#).contains(#"did you mean "epochs""#))
        #expect(message(#"{"architecture":"784-10","optimizer":{"type":"adam","lr":0.1,"momentum":0.9}}"#).contains("momentum"))
        #expect(message(#"{"architecture":"784-10","objective":{"type":"adversarial","attack":{"type":"fgsm","steps":3},"epsilon":0.1}}"#).contains("pgd"))
        #expect(message(#"{"architecture":"784-10","schedule":{"type":"cosine","every":3}}"#).contains("every"))
        #expect(message(#"{"architecture":"784-10","epochs":0}"#).contains("epochs 0"))
        #expect(message(#"{"architecture":"784-x"}"#).contains("dash-separated"))
    }

    @Test("the rendered train command names every setting that is not a default")
    func commandLine() {
        #expect(TrainingRecipe.standardMLP.commandLineArguments.joined(separator: " ")
            == "--model 784-256-256-10 --epochs 5 --batch 128 --optimizer adam --lr 0.001 --seed 0")
        #expect(TrainingRecipe.pgdMLP.commandLineArguments.joined(separator: " ")
            == "--model 784-256-256-10 --epochs 100 --batch 128 --optimizer adam --lr 0.001 --schedule cosine --seed 0 "
            + "--adversarial pgd --train-eps 0.1 --train-steps 7 --train-step-size 0.025 --adversarial-mix 0.9")
    }

    @Test("the time estimate reflects the attack's cost (PGD-7 training is about 5.5 times standard)")
    func estimate() {
        let standard = TrainingRecipe.standardMLP.estimatedSeconds(trainingExamples: 54_000)
        let pgd = TrainingRecipe.pgdMLP.estimatedSeconds(trainingExamples: 54_000)
        #expect(standard > 1 && standard < 10)
        #expect(abs(pgd / standard / 20 - 5.5) < 0.1)  // 20× the epochs, 5.5× the work per example
    }

    @Test("a split that leaves no training examples is an error that says what to change")
    func emptySplit() throws {
        var recipe = TrainingRecipe.standardMLP
        recipe.validationFraction = 0.5
        let directory = TestSupport.temporaryDirectory()
        let job = TrainingJob(recipe: recipe, data: DataSpec(source: .mnistFormat(directory: TestSupport.sampleDirectory), limit: 1),
                              output: directory + "/m.safetensors")
        let error = #expect(throws: TrainingError.self) { try job.run(loader: PlainFileLoader()) }
        #expect("\(error!)".contains("leaves no training examples"))
    }

    @Test("output paths are checked before any work: missing directories are created, impossible paths refused")
    func outputPaths() throws {
        let directory = TestSupport.temporaryDirectory()
        var job = TrainingJob(recipe: .standardMLP, output: directory + "/new/nested/m.safetensors")
        try job.validate()
        #expect(FileManager.default.fileExists(atPath: directory + "/new/nested"))
        try "x".write(toFile: directory + "/file", atomically: true, encoding: .utf8)
        job.output = directory + "/file/m.safetensors"
        #expect(throws: FileSystemError.self) { try job.validate() }
        job.output = directory + "/new"
        #expect(throws: TrainingError.self) { try job.validate() }
    }
}

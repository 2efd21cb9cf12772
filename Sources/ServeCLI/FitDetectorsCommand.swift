#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ArgumentParser
import Attacks
import BulwarkCLI
import Datasets
import Foundation
import NeuralNet
import ServingCore
import TensorCore
import _FileSystem

/// `bulwark serve fit-detectors MODEL --out FILE`: fits the anomaly detectors the service runs
/// beside a model, sets their thresholds at a false-positive rate on held-out clean data, and
/// measures them on the test set: the false-positive rate on clean inputs, and the detection rate on
/// FGSM and PGD examples that fool the model.
struct FitDetectorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit-detectors",
        abstract: "Fit the out-of-distribution (Mahalanobis), adversarial-input (noise instability) and model-extraction (PRADA) detectors for a model.",
        discussion: """
        The Mahalanobis detector is fitted on the first --fit-n training examples; both thresholds are set so \
        that at most --fpr of the next --calibration-n training examples are flagged. The evaluation runs on the \
        first --evaluate-n test examples. PRADA's δ is set so that at most --fpr of --extraction-streams benign \
        query streams (--extraction-stream-length training examples each, after the calibration examples, in a \
        seeded order) is ever flagged. Detectors are not a defence: an attacker who knows them can adapt \
        (Carlini & Wagner 2017); they are a tripwire for naive attacks and drift.

        Example:
          bulwark serve fit-detectors models/mlp-standard.safetensors --out models/mlp-standard.detectors.json
          bulwark serve --model std=models/mlp-standard.safetensors --detectors std=models/mlp-standard.detectors.json …
        """)

    @Argument(help: "Model file (.safetensors).")
    var model: String

    @Option(help: ArgumentHelp("Detector file to write (JSON).", valueName: "file"))
    var out: String

    @Option(help: "False-positive rate the thresholds are set at, on held-out clean data.")
    var fpr = 0.01

    @Option(name: .customLong("fit-n"), help: "Training examples the Mahalanobis detector is fitted on.")
    var fitN = 20000

    @Option(name: .customLong("calibration-n"), help: "Further training examples the thresholds are set on.")
    var calibrationN = 5000

    @Option(name: .customLong("evaluate-n"), help: "Test examples the detectors are measured on (0: no evaluation).")
    var evaluateN = 1000

    @Option(name: .customLong("noise-sigma"), help: "Noise detector: half-width of the uniform noise.")
    var noiseSigma: Float = 0.1

    @Option(name: .customLong("noise-draws"), help: "Noise detector: noisy copies per input (each costs one more forward pass).")
    var noiseDraws = 8

    @Flag(name: .customLong("no-mahalanobis"), help: "Leave out the Mahalanobis detector.")
    var noMahalanobis = false

    @Flag(name: .customLong("no-noise"), help: "Leave out the noise-instability detector.")
    var noNoise = false

    @Option(name: .customLong("extraction-streams"), help: "PRADA: benign query streams δ is fitted on (0 leaves PRADA out).")
    var extractionStreams = 20

    @Option(name: .customLong("extraction-stream-length"), help: "PRADA: queries per benign stream.")
    var extractionStreamLength = 1000

    @Option(help: "L∞ budget of the FGSM and PGD examples of the evaluation.")
    var eps: Float = 0.1

    @Option(help: "Seed of the noise and the attacks.")
    var seed: UInt64 = 0

    @Flag(name: .customLong("force"), help: "Replace an existing detector file.")
    var force = false

    @Flag(help: "Print the evaluation as one JSON object.")
    var json = false

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Security") var security: SecurityOptions
    @OptionGroup(title: "Engine") var engine: EngineOptions

    func validate() throws {
        guard fpr > 0, fpr < 0.5 else { throw ValidationError("--fpr must be in (0, 0.5)") }
        guard fitN >= 100, calibrationN >= 100 else { throw ValidationError("--fit-n and --calibration-n must be at least 100") }
        guard evaluateN >= 0 else { throw ValidationError("--evaluate-n must be at least 0") }
        guard noiseSigma > 0, noiseSigma <= 1, (1...64).contains(noiseDraws) else {
            throw ValidationError("--noise-sigma must be in (0, 1] and --noise-draws 1 to 64")
        }
        guard !(noMahalanobis && noNoise && extractionStreams == 0) else {
            throw ValidationError("--no-mahalanobis, --no-noise and --extraction-streams 0 leave no detector")
        }
        guard (0...1000).contains(extractionStreams), extractionStreams == 0 || (300...ShapiroWilk.sizes.upperBound).contains(extractionStreamLength) else {
            throw ValidationError("--extraction-streams must be 0 to 1000 and --extraction-stream-length 300 to \(ShapiroWilk.sizes.upperBound)")
        }
        guard eps > 0, eps <= 1 else { throw ValidationError("--eps must be in (0, 1]") }
        try data.checkCSVOptions()
    }

    struct Evaluation: Encodable {
        struct Rates: Encodable {
            let falsePositiveRate: Double
            let fgsmDetectionRate: Double?
            let pgdDetectionRate: Double?
            let pgdFirstSuccessDetectionRate: Double?
            /// Out-of-distribution inputs: uniform noise images, and test images with inverted intensities.
            let noiseImageDetectionRate: Double
            let invertedDetectionRate: Double
            enum CodingKeys: String, CodingKey {
                case falsePositiveRate = "clean_fpr", fgsmDetectionRate = "fgsm_detection_rate", pgdDetectionRate = "pgd_detection_rate"
                case pgdFirstSuccessDetectionRate = "pgd_first_success_detection_rate"
                case noiseImageDetectionRate = "uniform_noise_detection_rate", invertedDetectionRate = "inverted_detection_rate"
            }
        }
        let model: String, out: String, targetFPR: Double, epsilon: Float
        let cleanN: Int, fgsmFooled: Int, pgdFooled: Int, pgdFirstSuccessFooled: Int
        let detectors: [String: Rates]
        enum CodingKeys: String, CodingKey {
            case model, out, targetFPR = "target_fpr", epsilon, cleanN = "clean_n", fgsmFooled = "fgsm_fooled_n", pgdFooled = "pgd_fooled_n"
            case pgdFirstSuccessFooled = "pgd_first_success_fooled_n", detectors
        }
    }

    func run() throws {
        engine.apply()
        try OutputPath.prepare(out, for: "the detector file", replacing: [], inputs: [model], force: force)
        let loader = try security.loader(model: model)
        let network = try modelOptions.load(model, loader: loader).network
        guard let sha256 = loader.digests[model] else { throw CLIError.unusableInput("\(model): no digest recorded (internal error)") }
        let inference = network.inferenceModel(pool: .shared)
        let (train, _) = try data.spec.load(.train, loader: loader)
        let streamExamples = extractionStreams * extractionStreamLength
        guard train.count >= fitN + calibrationN + streamExamples else {
            throw CLIError.unusableInput("the training data has \(train.count) examples; --fit-n \(fitN) + --calibration-n \(calibrationN) + "
                                         + "--extraction-streams × --extraction-stream-length \(streamExamples) need more")
        }
        let fit = train.subset(Array(0..<fitN)), calibration = train.subset(Array(fitN..<(fitN + calibrationN)))
        var generator = RandomGenerator(seed: seed)

        var mahalanobis: MahalanobisDetector?
        if !noMahalanobis {
            let fitFeatures = try features(fit.features, inference), calibrationFeatures = try features(calibration.features, inference)
            var detector = try fitFeatures.withReadOnlyMatrix {
                try MahalanobisDetector.fit(features: $0, labels: fit.labels, classCount: inference.classCount)
            }
            detector.threshold = AnomalyDetectors.threshold(for: calibrationFeatures.withReadOnlyMatrix { detector.scores($0) },
                                                            falsePositiveRate: fpr)
            mahalanobis = detector
            log.info("Mahalanobis detector fitted on \(fitN) examples; threshold \(detector.threshold)")
        }
        var noise: NoiseInstabilityDetector?
        if !noNoise {
            var detector = NoiseInstabilityDetector(sigma: noiseSigma, draws: noiseDraws, threshold: noiseDraws + 1)
            let changes = try changes(calibration.features, detector, inference, &generator)
            detector.threshold = AnomalyDetectors.threshold(for: changes, draws: noiseDraws, falsePositiveRate: fpr)
            noise = detector
            log.info("noise detector: flags \(detector.threshold) or more changed predictions of \(noiseDraws)")
        }
        var extraction: PRADADetector?
        if extractionStreams > 0 {
            var order = Array((fitN + calibrationN)..<train.count)
            generator.shuffle(&order)
            var minima: [Double] = []
            for s in 0..<extractionStreams {
                let stream = train.features.gatherRows(Array(order[(s * extractionStreamLength)..<((s + 1) * extractionStreamLength)]))
                let predicted = try inference.predictions(stream)
                guard let w = stream.withReadOnlyMatrix({ PRADADetector(delta: 0.5).minimumW(of: $0, predicted: predicted, classes: inference.classCount) }) else {
                    throw CLIError.unusableInput("benign stream \(s) of \(extractionStreamLength) queries never had enough distances for a test "
                                                 + "(more than 100 in classes with 10 or more); give a longer --extraction-stream-length")
                }
                minima.append(w)
            }
            extraction = PRADADetector(delta: PRADADetector.delta(forBenignMinimumW: minima, falsePositiveRate: fpr))
            log.info("PRADA: benign streams' smallest W \(String(format: "%.4f", minima.min() ?? 1)) (median \(String(format: "%.4f", minima.sorted()[minima.count / 2]))); δ = \(String(format: "%.4f", extraction!.delta))")
        }
        let detectors = AnomalyDetectors(modelSHA256: sha256, targetFalsePositiveRate: fpr, mahalanobis: mahalanobis, noise: noise, extraction: extraction)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(Array(try encoder.encode(detectors)), to: out)
        try ModelLoading.record(out, recipe: nil)  // so the service verifies it like the model
        log.info("wrote \(out)")
        guard evaluateN > 0 else { return }
        try evaluate(detectors, network: network, inference: inference, loader: loader, generator: &generator)
    }

    /// Measures each detector: flagged clean test inputs, and flagged FGSM/PGD examples among those that fool the model.
    private func evaluate(_ detectors: AnomalyDetectors, network: Sequential, inference: InferenceNetwork, loader: any FileLoading,
                          generator: inout RandomGenerator) throws {
        let (testAll, _) = try data.spec.load(.test, loader: loader)
        let test = testAll.prefix(min(evaluateN, testAll.count))
        let runner = AttackRunner(classifier: network)
        var adversarial: [String: (features: Tensor, fooled: [Int])] = [:]
        // PGD's highest-loss iterate (deep in the wrong class) and its first fooling iterate (just
        // across the boundary), the two ends of what an attacker may send.
        let attacks: [(String, AttackSpec, AttackSpec.Purpose)] = [
            ("fgsm", .fgsm(FGSM.Parameters()), .examples), ("pgd", .pgd(try PGD.Parameters()), .examples),
            ("pgd-first", .pgd(try PGD.Parameters()), .evaluation)]
        for (name, spec, purpose) in attacks {
            let outcome = try runner.run(try spec.makeAttack(epsilon: eps, purpose: purpose), on: test, seed: seed)
            let fooled = outcome.fooled.indices.filter { outcome.fooled[$0] }
            adversarial[name] = (outcome.adversarial, fooled)
        }
        func flags(_ x: Tensor) throws -> (ood: [Bool], unstable: [Bool]) {
            let findings = try x.withReadOnlyMatrix { input -> AnomalyDetectors.Findings in
                let rows = input.rows
                var logits = [Float](repeating: 0, count: rows * inference.classCount)
                var featureValues = [Float](repeating: 0, count: rows * inference.featureWidth)
                return try logits.withUnsafeMutableBufferPointer { z in
                    try featureValues.withUnsafeMutableBufferPointer { f in
                        let y = MatrixRef(z.baseAddress!, rows: rows, columns: inference.classCount)
                        let features = MatrixRef(f.baseAddress!, rows: rows, columns: inference.featureWidth)
                        try inference.logits(input, into: y, features: features)
                        return try detectors.inspect(input: input, logits: y, features: features, model: inference, generator: &generator)
                    }
                }
            }
            return (findings.outOfDistribution, findings.unstable)
        }
        let clean = try flags(test.features)
        let fgsm = try flags(adversarial["fgsm"]!.features), pgd = try flags(adversarial["pgd"]!.features)
        let pgdFirst = try flags(adversarial["pgd-first"]!.features)
        let noiseImages = try flags(Tensor.uniform(rows: test.count, columns: test.featureCount, using: &generator))
        let inverted = try flags(Tensor(shape: [test.count, test.featureCount],
                                        scalars: test.features.withReadOnlyMatrix { m in (0..<m.rows).flatMap { r in (0..<m.columns).map { 1 - m[r, $0] } } }))
        func rate(_ flags: [Bool], over indices: [Int]) -> Double? {
            indices.isEmpty ? nil : Double(indices.filter { flags[$0] }.count) / Double(indices.count)
        }
        var rates: [String: Evaluation.Rates] = [:]
        let all = Array(0..<test.count)
        if detectors.mahalanobis != nil {
            rates["mahalanobis"] = .init(falsePositiveRate: rate(clean.ood, over: all)!, fgsmDetectionRate: rate(fgsm.ood, over: adversarial["fgsm"]!.fooled),
                                         pgdDetectionRate: rate(pgd.ood, over: adversarial["pgd"]!.fooled),
                                         pgdFirstSuccessDetectionRate: rate(pgdFirst.ood, over: adversarial["pgd-first"]!.fooled),
                                         noiseImageDetectionRate: rate(noiseImages.ood, over: all)!, invertedDetectionRate: rate(inverted.ood, over: all)!)
        }
        if detectors.noise != nil {
            rates["noise"] = .init(falsePositiveRate: rate(clean.unstable, over: all)!, fgsmDetectionRate: rate(fgsm.unstable, over: adversarial["fgsm"]!.fooled),
                                   pgdDetectionRate: rate(pgd.unstable, over: adversarial["pgd"]!.fooled),
                                   pgdFirstSuccessDetectionRate: rate(pgdFirst.unstable, over: adversarial["pgd-first"]!.fooled),
                                   noiseImageDetectionRate: rate(noiseImages.unstable, over: all)!, invertedDetectionRate: rate(inverted.unstable, over: all)!)
        }
        let evaluation = Evaluation(model: model, out: out, targetFPR: fpr, epsilon: eps, cleanN: test.count,
                                    fgsmFooled: adversarial["fgsm"]!.fooled.count, pgdFooled: adversarial["pgd"]!.fooled.count,
                                    pgdFirstSuccessFooled: adversarial["pgd-first"]!.fooled.count, detectors: rates)
        if json {
            try JSONOutput.line(evaluation)
        } else {
            print("detector      clean FPR   FGSM detected   PGD detected   PGD first-success   noise images   inverted   (ε = \(eps), \(test.count) test inputs; fooled: FGSM \(evaluation.fgsmFooled), PGD \(evaluation.pgdFooled), PGD first success \(evaluation.pgdFirstSuccessFooled))")
            for (name, r) in rates.sorted(by: { $0.key < $1.key }) {
                func text(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "–" }
                print(name.padding(toLength: 13, withPad: " ", startingAt: 0) + " " + text(r.falsePositiveRate).padding(toLength: 11, withPad: " ", startingAt: 0)
                      + " " + text(r.fgsmDetectionRate).padding(toLength: 15, withPad: " ", startingAt: 0) + " " + text(r.pgdDetectionRate).padding(toLength: 14, withPad: " ", startingAt: 0)
                      + " " + text(r.pgdFirstSuccessDetectionRate).padding(toLength: 19, withPad: " ", startingAt: 0)
                      + " " + text(r.noiseImageDetectionRate).padding(toLength: 14, withPad: " ", startingAt: 0) + " " + text(r.invertedDetectionRate))
            }
        }
    }

    private func features(_ x: Tensor, _ model: InferenceNetwork) throws -> Tensor {
        var features = Tensor(zeros: [x.matrixShape.rows, model.featureWidth])
        var logits = Tensor(zeros: [x.matrixShape.rows, model.classCount])
        try x.withReadOnlyMatrix { input in
            try logits.withMatrix { y in try features.withMatrix { f in try model.logits(input, into: y, features: f) } }
        }
        return features
    }

    private func changes(_ x: Tensor, _ detector: NoiseInstabilityDetector, _ model: InferenceNetwork,
                         _ generator: inout RandomGenerator) throws -> [Int] {
        let predicted = try model.predictions(x)
        return try x.withReadOnlyMatrix { input in try detector.changes(of: input, predicted: predicted, model: model, generator: &generator) }
    }
}
#endif

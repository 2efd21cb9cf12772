import ArgumentParser
import Attacks
import Certification
import Datasets
import Foundation
import NeuralNet
import TensorCore

/// `bulwark certify MODEL`: certified accuracy (a lower bound on robust accuracy, where attacks give
/// an upper bound) by IBP, CROWN or Lipschitz bounds, or each example's largest certified radius.
struct CertifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certify",
        abstract: "Certified robust accuracy of a ReLU network (IBP, CROWN or Lipschitz bounds).",
        discussion: """
        An example is certified at ε when the model classifies it correctly and a lower bound of its \
        logit margin min_j (z_y − z_j) over the whole ε-ball (L∞ balls are clipped to [0, 1]) exceeds \
        \(Certifier.tolerance): no attack can then change its class. Attacks give upper bounds on \
        robust accuracy, certificates lower bounds.

        Methods: ibp (interval bounds; any monotone activation), crown (linear relaxation; relu and \
        leaky_relu; never looser than ibp), lipschitz (exact spectral norms by LAPACK; an L2 method: \
        an L∞ ball of radius ε reaches L2 distance up to ε√d, so L∞ certificates by it are weak).

        Examples:
          bulwark certify models/mlp-pgd.safetensors --eps 0.1
          bulwark certify models/mlp-pgd.safetensors --method ibp --eps 0.05 --n 1000 --json
          bulwark certify models/mlp-pgd.safetensors --norm l2 --method lipschitz --radius --json
        """
    )

    @Argument(help: "Model file (.safetensors).")
    var model: String

    @Option(help: "Bound: ibp, crown or lipschitz.")
    var method: CertificationMethod = .crown

    @Option(help: "Norm of the ball: linf or l2.")
    var norm: Norm = .linf

    @Option(name: .customLong("eps"), help: ArgumentHelp("Radius ε of the ball (required unless --radius).", valueName: "ε"))
    var epsilon: Real?

    @Flag(help: "Find each example's largest certified radius by bisection (20 halvings of [0, 1] for L∞, [0, √d] for L2).")
    var radius = false

    @Option(name: .customLong("n"), help: ArgumentHelp("Certify the first N test examples (default: all).", valueName: "N"))
    var count: Int?

    @Flag(help: "Print one JSON object on stdout.")
    var json = false

    @Flag(help: "With --json and --eps: add each example's margin lower bound at ε, every bound computed in full.")
    var perExample = false

    @OptionGroup(title: "Model") var modelOptions: ModelOptions
    @OptionGroup(title: "Data") var data: DataOptions
    @OptionGroup(title: "Security") var security: SecurityOptions
    @OptionGroup(title: "Engine") var engine: EngineOptions

    struct Result: Encodable {
        let model: String
        let data: String
        let method: String
        let norm: String
        let epsilon: Double?
        let n: Int
        let cleanAccuracy: Double
        let certifiedAccuracy: Double?
        let certified: Int?
        let ci95: [Double]?
        let seconds: Double
        let tolerance: Double
        let spectralNorms: [Double]?
        let medianRadius: Double?
        let radii: [Double]?
        let marginLowerBounds: [Double]?

        enum CodingKeys: String, CodingKey {
            case model, data, method, norm, epsilon, n, certified, seconds, tolerance, radii
            case cleanAccuracy = "clean_accuracy", certifiedAccuracy = "certified_accuracy", ci95
            case spectralNorms = "spectral_norms", medianRadius = "median_radius", marginLowerBounds = "margin_lower_bounds"
        }
    }

    func validate() throws {
        try data.checkCSVOptions()
        if let epsilon, !(epsilon.value.isFinite && epsilon.value >= 0) {
            throw ValidationError("--eps must be a finite number ≥ 0, got \(epsilon)")
        }
        if epsilon == nil && !radius { throw ValidationError("give --eps ε (e.g. --eps 0.1), or --radius for each example's largest radius") }
        if let count, count < 1 { throw ValidationError("--n must be at least 1, got \(count)") }
        if count != nil && data.limit != nil { throw ValidationError("--n and --limit both limit the examples; give one") }
        if perExample && !json { throw ValidationError("--per-example adds arrays to the JSON output; add --json") }
        if perExample && epsilon == nil { throw ValidationError("--per-example gives the margin bounds at --eps ε; add --eps (--radius alone already lists every radius)") }
    }

    func run() throws {
        engine.apply()
        let loader = try security.loader(model: model)
        let network = try modelOptions.load(model, loader: loader).network
        var spec = data.spec
        if let count { spec.limit = count }
        let (test, description) = try spec.load(.test, loader: loader)
        let certifier = try Certifier(network, method: method, norm: norm)
        if method == .lipschitz && norm == .linf {
            log.warning("Lipschitz bounds are L2 bounds: the L∞ ball of radius ε is covered by the L2 ball of radius up to ε√\(test.featureCount), so few examples certify; use --norm l2, or --method crown for L∞")
        }
        let start = DispatchTime.now()
        let result = try epsilon.map { try certifier.certify(test, epsilon: Double($0.value), exhaustive: perExample) }
        let radii = radius ? try certifier.certifiedRadii(test) : nil
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let clean = try result?.cleanAccuracy ?? Proportion(successes: certifier.cleanCorrectness(test).filter { $0 }.count, trials: test.count)
        let median = radii.map { $0.sorted()[$0.count / 2] }
        if json {
            let interval = result.map { $0.certifiedAccuracy.wilsonInterval() }
            try JSONOutput.line(Result(
                model: model, data: description, method: method.rawValue, norm: norm.rawValue, epsilon: epsilon.map { Double($0.value) },
                n: test.count, cleanAccuracy: clean.value, certifiedAccuracy: result?.certifiedAccuracy.value,
                certified: result?.certifiedAccuracy.successes, ci95: interval.map { [$0.lower, $0.upper] }, seconds: seconds,
                tolerance: Certifier.tolerance, spectralNorms: certifier.spectralNorms, medianRadius: median,
                radii: radii, marginLowerBounds: perExample ? result?.marginLowerBounds : nil))
            return
        }
        log.info("test data: \(description)")
        let ball = "\(norm == .linf ? "L∞" : "L2")"
        if let result {
            let accuracy = result.certifiedAccuracy
            let (lower, upper) = accuracy.wilsonInterval()
            print("certified accuracy \(accuracy.value.formatted(4)) (\(accuracy.successes)/\(test.count), 95% CI "
                  + "\(lower.formatted(4))–\(upper.formatted(4))) by \(method.displayName) at \(ball) ε = \(epsilon!); "
                  + "clean accuracy \(clean.value.formatted(4)); \(result.seconds.formatted(2)) s")
        }
        if let radii, let median {
            let sorted = radii.sorted()
            print("certified \(ball) radius by \(method.displayName): median \(median.formatted(4)), "
                  + "quartiles \(sorted[sorted.count / 4].formatted(4)) and \(sorted[3 * sorted.count / 4].formatted(4)), "
                  + "largest \(sorted.last!.formatted(4)) (0 for misclassified examples; --json lists every example's)")
        }
        if let norms = certifier.spectralNorms {
            print("spectral norms of the layers: " + norms.map { $0.formatted(3) }.joined(separator: ", "))
        }
    }
}

extension CertificationMethod: ExpressibleByArgument {}

import Attacks

extension TrainingRecipe {
    /// Sustained training throughput assumed by `estimatedSeconds`, in floating-point operations per
    /// second: measured for the standard recipe on the 2-core machine behind Bulwark's figures
    /// (0.85 s per epoch of 54,000 images, 784-256-256-10).
    public static let assumedFLOPS = 1.0e11

    /// A rough estimate of the training time on `examples` training examples (validation excluded),
    /// from the arithmetic of the recipe: 6 FLOPs per parameter and example for a forward and
    /// backward pass, plus the training attack's passes (2 per forward, 2 per input gradient).
    public func estimatedSeconds(trainingExamples examples: Int) -> Double {
        let parameters = Double(architecture.parameterCount)
        var flopsPerExample = 6 * parameters
        if case .adversarial(let spec) = objective {
            let attackPasses: Double = switch spec.attack {
            case .fgsm: 4
            case .pgd(let p): Double(p.restarts) * (4 * Double(p.steps) + 2)
            default: 4 * Double(spec.attack.maximumSteps) + 2
            }
            flopsPerExample += Double(spec.mix) * attackPasses * parameters
        }
        if case .dpSGD = objective { flopsPerExample += 2 * parameters }  // the reverse pass for per-example norms
        if case .trades(let spec) = objective { flopsPerExample += (4 * Double(spec.steps) + 8) * parameters }  // the KL attack; two rows per example
        if case .fastAdversarial = objective { flopsPerExample += 4 * parameters }  // one input gradient
        if case .certified(let spec) = objective {
            flopsPerExample += 14 * parameters  // centres and radii forward and back, |W|
            if spec.crownIBP { flopsPerExample += 4 * Double(architecture.classCount - 1) * parameters }  // one coefficient row per margin, there and back
        }
        return Double(epochs) * Double(examples) * flopsPerExample / Self.assumedFLOPS
    }
}

import Foundation

/// How the learning rate changes over training, evaluated every step from the base rate η₀.
///
/// - `constant`: η₀.
/// - `step(every:gamma:)`: η₀·γ^⌊epoch/every⌋ (PyTorch `StepLR`).
/// - `cosine(minimum:)`: η_min + (η₀ − η_min)·(1 + cos(π·t/T))/2 over all T steps (Loshchilov & Hutter,
///   2017, "SGDR", without restarts; PyTorch `CosineAnnealingLR`).
/// - `oneCycle`: linear warm-up from η₀/25 to η₀ over the first 30% of steps, then cosine annealing to
///   η₀/10⁴ (Smith & Topin, 2019, "Super-Convergence"; PyTorch `OneCycleLR` with linear warm-up).
/// - `cyclic(epochsPerCycle:)`: triangular cycles between η₀/10 and η₀ (Smith, 2017, "Cyclical
///   Learning Rates"; PyTorch `CyclicLR`, mode "triangular").
public enum LearningRateSchedule: Equatable, Sendable {
    case constant
    case step(every: Int, gamma: Float)
    case cosine(minimum: Float)
    case oneCycle
    case cyclic(epochsPerCycle: Int)

    /// - Throws: `NeuralNetError.invalidHyperparameter` naming a bad value.
    public func validate() throws {
        switch self {
        case .constant, .oneCycle: break
        case .step(let every, let gamma):
            try require(every >= 1, "step schedule period", every, "must be at least 1 epoch")
            try require(gamma > 0 && gamma <= 1, "step schedule gamma", gamma, "must be in (0, 1]")
        case .cosine(let minimum):
            try require(minimum >= 0 && minimum.isFinite, "cosine minimum learning rate", minimum, "must be ≥ 0")
        case .cyclic(let epochs):
            try require(epochs >= 1, "cyclic schedule period", epochs, "must be at least 1 epoch")
        }
    }

    /// The learning rate for global step `step` (0-based) of `totalSteps`, with `stepsPerEpoch` steps per epoch.
    public func rate(base: Float, step: Int, stepsPerEpoch: Int, totalSteps: Int) -> Float {
        let progress = Double(step) / Double(max(totalSteps, 1))
        switch self {
        case .constant:
            return base
        case .step(let every, let gamma):
            return base * Float(Foundation.pow(Double(gamma), Double(step / max(stepsPerEpoch, 1) / every)))
        case .cosine(let minimum):
            return minimum + (base - minimum) * Float((1 + Foundation.cos(Double.pi * progress)) / 2)
        case .oneCycle:
            let warmup = 0.3
            let (start, end) = (Double(base) / 25, Double(base) / 1e4)
            if progress < warmup { return Float(start + (Double(base) - start) * progress / warmup) }
            let t = (progress - warmup) / (1 - warmup)
            return Float(end + (Double(base) - end) * (1 + Foundation.cos(Double.pi * t)) / 2)
        case .cyclic(let epochs):
            let period = Double(epochs * max(stepsPerEpoch, 1))
            let phase = Double(step).truncatingRemainder(dividingBy: period) / period
            let triangle = 1 - abs(2 * phase - 1)
            return Float(Double(base) / 10 + (Double(base) - Double(base) / 10) * triangle)
        }
    }
}

import TensorCore

/// The norm that bounds a perturbation δ = x_adv − x.
public enum Norm: String, Sendable, CaseIterable, Codable {
    /// ‖δ‖∞ = maxᵢ |δᵢ|
    case linf
    /// ‖δ‖₂ = √Σᵢ δᵢ²
    case l2
}

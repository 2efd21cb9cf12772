/// Why a model cannot be certified, or a certification request is invalid; each names the fix.
public enum CertificationError: Error, CustomStringConvertible, Equatable {
    /// The method cannot bound this architecture (e.g. CROWN on tanh layers).
    case unsupportedModel(String)
    case invalidRequest(String)
    /// The data does not fit the model.
    case dataMismatch(String)
    /// LAPACK failed (non-finite weights).
    case numericalFailure(String)

    public var description: String {
        switch self {
        case .unsupportedModel(let problem): return "cannot certify this model: \(problem)"
        case .invalidRequest(let problem): return "invalid certification request: \(problem)"
        case .dataMismatch(let problem): return "the data does not fit the model: \(problem)"
        case .numericalFailure(let problem): return "certification failed numerically: \(problem)"
        }
    }
}

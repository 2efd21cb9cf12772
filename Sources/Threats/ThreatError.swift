/// Errors of threat experiments, each naming the problem and the fix.
public enum ThreatError: Error, CustomStringConvertible, Equatable {
    case invalidParameter(name: String, value: String, requirement: String)
    case invalidConfiguration(String)
    case dataMismatch(String)
    /// A remote prediction API failed or refused (its answer named).
    case predictionAPI(String)

    public var description: String {
        switch self {
        case .invalidParameter(let name, let value, let requirement):
            return "invalid \(name) \(value): \(requirement)"
        case .invalidConfiguration(let problem):
            return "invalid threat configuration: \(problem)"
        case .dataMismatch(let problem):
            return "the data does not fit the experiment: \(problem)"
        case .predictionAPI(let problem):
            return "the prediction API: \(problem)"
        }
    }
}

func require(_ condition: Bool, _ name: String, _ value: Any, _ requirement: String) throws {
    guard condition else { throw ThreatError.invalidParameter(name: name, value: "\(value)", requirement: requirement) }
}

/// Errors from reading data files. Each names the file and what is wrong with it.
public enum DatasetError: Error, CustomStringConvertible, Equatable {
    case invalidIDX(path: String, problem: String)
    case invalidGzip(path: String, problem: String)
    case invalidCSV(path: String, line: Int, problem: String)
    case mismatch(String)
    case notFound(String)
    case invalidSpec(String)

    public var description: String {
        switch self {
        case .invalidIDX(let path, let problem): return "\(path) is not a valid IDX file: \(problem)"
        case .invalidGzip(let path, let problem): return "\(path) is not a valid gzip file: \(problem)"
        case .invalidCSV(let path, let line, let problem): return "\(path), line \(line): \(problem)"
        case .mismatch(let problem): return problem
        case .notFound(let problem): return problem
        case .invalidSpec(let problem): return "invalid data options: \(problem)"
        }
    }
}

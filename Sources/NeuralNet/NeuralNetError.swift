/// Errors from building, training, saving and loading networks. Each message says what is wrong
/// and how to fix it.
public enum NeuralNetError: Error, CustomStringConvertible, Equatable {
    case invalidModelSpec(String)
    case invalidHyperparameter(name: String, value: String, requirement: String)
    case invalidModelFile(path: String, problem: String)
    case incompatibleCheckpoint(path: String, problem: String)
    case diverged(epoch: Int, step: Int, loss: Float, checkpoint: String?)
    case invalidData(String)

    public var description: String {
        switch self {
        case .invalidModelSpec(let problem):
            return "invalid model spec: \(problem). Use a spec such as 784-256-256-10 or a JSON layer list like "
                + #"[{"type":"dense","in":784,"out":256},{"type":"relu"},{"type":"dense","out":10}]"#
        case .invalidHyperparameter(let name, let value, let requirement):
            return "invalid \(name) \(value): \(requirement)"
        case .invalidModelFile(let path, let problem):
            return "\(path) is not a usable Bulwark model file: \(problem)"
        case .incompatibleCheckpoint(let path, let problem):
            return "cannot resume from \(path): \(problem)"
        case .invalidData(let problem):
            return "the data cannot be used for training: \(problem)"
        case .diverged(let epoch, let step, let loss, let checkpoint):
            let kept = checkpoint.map { "the last good checkpoint is kept at \($0)" } ?? "no checkpoint had been written yet"
            return "training diverged: loss became \(loss) at epoch \(epoch), step \(step); \(kept). "
                + "Lower the learning rate (--lr), add gradient clipping (--clip-norm) or check the data"
        }
    }
}

/// Checks a hyperparameter, throwing `NeuralNetError.invalidHyperparameter` with a message that names
/// the value when `condition` fails.
@inline(__always)
func require(_ condition: Bool, _ name: String, _ value: some CustomStringConvertible, _ requirement: String) throws {
    if !condition {
        throw NeuralNetError.invalidHyperparameter(name: name, value: value.description, requirement: requirement)
    }
}

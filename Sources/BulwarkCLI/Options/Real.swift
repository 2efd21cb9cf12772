import ArgumentParser

/// A number on the command line: a decimal (`0.1`, `1e-3`) or a fraction (`8/255`), as papers
/// write budgets.
struct Real: ExpressibleByArgument, Equatable, CustomStringConvertible, Sendable {
    let value: Float
    let text: String

    init(_ value: Float) {
        self.value = value
        text = "\(value)"
    }

    init?(argument: String) {
        let parts = argument.split(separator: "/", omittingEmptySubsequences: false)
        switch parts.count {
        case 1:
            guard let value = Double(argument), value.isFinite else { return nil }
            self.value = Float(value)
        case 2:
            guard let numerator = Double(parts[0]), let denominator = Double(parts[1]), denominator != 0,
                  (numerator / denominator).isFinite else { return nil }
            value = Float(numerator / denominator)
        default:
            return nil
        }
        text = argument
    }

    var description: String { text }
    var defaultValueDescription: String { text }
}

import Foundation

/// What a key's predictions reveal (less output leaks less to model extraction and
/// membership-inference attacks: Tramèr et al. 2016, Shokri et al. 2017).
public enum OutputPolicy: Sendable, Hashable, CustomStringConvertible, Codable {
    /// Every class probability.
    case full
    /// The k most probable classes with their probabilities.
    case topK(Int)
    /// Every probability rounded to d decimals.
    case rounded(Int)
    /// The predicted class only.
    case label

    /// Parses `full`, `top-k:K`, `rounded:D` or `label`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        switch (parts.first, parts.count) {
        case ("full", 1): self = .full
        case ("label", 1): self = .label
        case ("top-k", 2):
            guard let k = Int(parts[1]), (1...1000).contains(k) else { throw ServeError.invalidOutputPolicy(text) }
            self = .topK(k)
        case ("rounded", 2):
            guard let d = Int(parts[1]), (0...8).contains(d) else { throw ServeError.invalidOutputPolicy(text) }
            self = .rounded(d)
        default: throw ServeError.invalidOutputPolicy(text)
        }
    }

    public var description: String {
        switch self {
        case .full: "full"
        case .topK(let k): "top-k:\(k)"
        case .rounded(let d): "rounded:\(d)"
        case .label: "label"
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

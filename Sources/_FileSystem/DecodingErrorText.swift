import Foundation

/// A readable one-line description of a JSON decoding error, with the path of the offending value,
/// for messages about files a user wrote (configurations, reports, headers).
public func decodingErrorText(_ error: any Error) -> String {
    func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            .trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }
    switch error {
    case DecodingError.dataCorrupted(let context):
        return context.debugDescription + (context.codingPath.isEmpty ? "" : " at \(path(context.codingPath))")
    case DecodingError.typeMismatch(_, let context):
        return "\(context.debugDescription) at \(path(context.codingPath))"
    case DecodingError.keyNotFound(let key, let context):
        return "missing \"\(key.stringValue)\"" + (context.codingPath.isEmpty ? "" : " in \(path(context.codingPath))")
    case DecodingError.valueNotFound(_, let context):
        return "\(context.debugDescription) at \(path(context.codingPath))"
    default:
        return "\(error)"
    }
}

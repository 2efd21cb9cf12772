#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import HTTPTypes

/// Finds the API key of a request: `Authorization: Bearer KEY` (scheme case-insensitive) or
/// `X-API-Key: KEY`. Both present and different, or either given twice, is a malformed request.
enum Authentication {
    static let apiKeyField = HTTPField.Name("X-API-Key")!

    enum Outcome {
        case missing
        case malformed(String)
        case presented(APIKey?)  // nil: not of the key's form (answered like an unknown key)
    }

    static func presentedKey(in headers: HTTPFields) -> Outcome {
        let authorizations = headers[values: .authorization]
        let apiKeys = headers[values: apiKeyField]
        guard authorizations.count <= 1, apiKeys.count <= 1 else {
            return .malformed("give one Authorization or one X-API-Key header, not several")
        }
        var bearer: Substring?
        if let authorization = authorizations.first {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                return .malformed("the Authorization header must be 'Bearer <key>'")
            }
            bearer = parts[1].drop { $0 == " " }
        }
        let header = apiKeys.first.map { Substring($0) }
        if let bearer, let header, bearer != header {
            return .malformed("the Authorization and X-API-Key headers hold different keys; send one")
        }
        guard let text = bearer ?? header else { return .missing }
        return .presented(APIKey(parsing: text))
    }
}
#endif

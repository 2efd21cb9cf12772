#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import _FileSystem

/// An error answer as RFC 9457 `application/problem+json`: a stable `type` per kind of problem,
/// the status, a `detail` that names what is wrong and how to fix it, and, for invalid input, the
/// JSON Pointer (RFC 6901) of the offending `field`. Deliberately not an `HTTPResponseError`: the
/// router passes it up to `ServiceResponder`, which answers with the request id and closes the
/// connection when a body was left unread.
public struct Problem: Error, CustomStringConvertible, Sendable {
    public let status: HTTPResponse.Status
    /// The last part of the `type` URI (`tag:bulwark.dev,2026:problem/<slug>`), also the metrics label.
    public let slug: String
    public let title: String
    public let detail: String
    public let field: String?
    public var headers: HTTPFields
    /// Whether the connection must close after this answer (a body left unread, a stalled upload).
    public var closeConnection = false

    public init(_ status: HTTPResponse.Status, _ slug: String, _ title: String, detail: String, field: String? = nil,
                headers: HTTPFields = [:]) {
        (self.status, self.slug, self.title, self.detail, self.field, self.headers) = (status, slug, title, detail, field, headers)
    }

    public static let typePrefix = "tag:bulwark.dev,2026:problem/"
    public var description: String { "\(status.code) \(slug): \(detail)" }

    private struct Body: Encodable {
        let type: String, title: String, status: Int, detail: String
        let field: String?
        let instance: String?
        let requestID: String?
        enum CodingKeys: String, CodingKey { case type, title, status, detail, field, instance, requestID = "request_id" }
    }

    /// The JSON body (`instance` is the request path, `request_id` the id in the service's log).
    func body(instance: String?, requestID: String?) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = Body(type: Self.typePrefix + slug, title: title, status: Int(status.code), detail: detail, field: field,
                        instance: instance, requestID: requestID)
        return Array((try? encoder.encode(body)) ?? Data("{}".utf8))
    }

    func response(instance: String?, requestID: String?) -> Response {
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body(instance: instance, requestID: requestID))))
    }
}

extension Problem {
    /// A refused predict body, as the parser described it.
    init(_ input: InputProblem) {
        self.init(input.status == 400 ? .badRequest : .unprocessableContent, input.slug,
                  input.status == 400 ? "The request body is not valid JSON" : "The request body does not hold valid inputs",
                  detail: input.detail, field: input.field)
    }

    static func unauthorized(_ detail: String) -> Problem {
        Problem(.unauthorized, "unauthorized", "Missing or unknown API key", detail: detail,
                headers: [.wwwAuthenticate: "Bearer realm=\"bulwark\""])
    }

    static func forbidden(role: Role, route: String) -> Problem {
        Problem(.forbidden, "forbidden", "The key's role may not use this route",
                detail: "a key with role '\(role.rawValue)' may not use \(route) (\(Routes.rolesText(for: route)))")
    }

    static func invalidInput(_ detail: String, field: String) -> Problem {
        Problem(.unprocessableContent, "invalid-input", "The request body does not hold valid inputs", detail: detail, field: field)
    }

    static func tooLarge(_ detail: String) -> Problem {
        var problem = Problem(.contentTooLarge, "body-too-large", "The request body is too large", detail: detail)
        problem.closeConnection = true
        return problem
    }

    static func unsupportedMediaType(_ given: String?) -> Problem {
        Problem(.unsupportedMediaType, "unsupported-media-type", "Unsupported content type",
                detail: "Content-Type \(given.map { "'\(displayable($0, limit: 60))'" } ?? "is missing"): send application/json or application/octet-stream (little-endian float32 rows)")
    }

    static func notFound(_ detail: String) -> Problem {
        Problem(.notFound, "not-found", "Not found", detail: detail)
    }

    static func overloaded(_ detail: String) -> Problem {
        Problem(.serviceUnavailable, "overloaded", "The service is at capacity", detail: detail, headers: [.retryAfter: "1"])
    }
}
#endif

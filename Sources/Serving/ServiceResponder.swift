#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import _FileSystem

/// The outermost responder: every request passes here, matched or not. In order it matches the
/// route (`Routes.policy`; 404 and 405 answered here), authenticates the key (401) and checks its
/// role (403), applies the key's rate limit (429) and the global concurrency limit (503), then
/// hands the request to the router. Every error becomes `application/problem+json`; every request
/// is counted in the metrics and written to the access log (never with its key or inputs).
struct ServiceResponder<Inner: HTTPResponder>: HTTPResponder where Inner.Context == ServeContext {
    let inner: Inner
    let state: ServingState
    let tls: Bool

    func respond(to request: Request, context: ServeContext) async throws -> Response {
        let start = ContinuousClock.now
        var context = context
        context.requestID = Self.newRequestID()
        let path = request.uri.path
        var pattern = "unmatched"
        var rateHeaders: HTTPFields = [:]
        var response: Response
        var closeConnection = false
        do {
            switch Routes.match(method: request.method, path: path) {
            case .notFound:
                throw Problem.notFound("no route \(displayablePath(path)); the routes are \(Set(Routes.policy.map(\.pattern)).sorted().joined(separator: ", "))")
            case .methodNotAllowed(let matched, let allowed):
                pattern = matched
                throw Problem(.methodNotAllowed, "method-not-allowed", "Method not allowed",
                              detail: "\(matched) takes \(allowed.map(\.rawValue).joined(separator: ", ")), not \(request.method.rawValue)",
                              headers: [.allow: allowed.map(\.rawValue).joined(separator: ", ")])
            case .rule(let rule):
                pattern = rule.pattern
                if let roles = rule.roles {
                    let key = try authenticate(request, context: context, route: rule.pattern)
                    guard roles.contains(key.role) else {
                        state.metrics.increment("bulwark_auth_failures_total", [("reason", "forbidden")])
                        state.audit?.recordDenial(reason: "forbidden", key: key.name, remote: context.remote, route: rule.pattern)
                        throw Problem.forbidden(role: key.role, route: rule.pattern)
                    }
                    context.key = key
                    let decision = state.limiter.take(id: key.id, rate: key.rate, burst: key.burst)
                    rateHeaders[HTTPField.Name("RateLimit-Limit")!] = String(decision.limit)
                    rateHeaders[HTTPField.Name("RateLimit-Remaining")!] = String(decision.remaining)
                    rateHeaders[HTTPField.Name("RateLimit-Reset")!] = String(decision.resetSeconds)
                    guard decision.allowed else {
                        state.metrics.increment("bulwark_rate_limited_total", [("key", key.name)])
                        throw Problem(.tooManyRequests, "rate-limited", "Rate limit exceeded",
                                      detail: "key '\(key.name)' may send \(decision.limit) requests at once and \(key.rate) per second; retry after \(decision.retryAfterSeconds) s",
                                      headers: [.retryAfter: String(decision.retryAfterSeconds)])
                    }
                    if rule.pattern == Routes.predict, state.extraction.isFlagged(key: key.id) { try restrictFlagged(key) }
                }
                let keyID = context.key?.id
                switch state.admit(key: keyID) {
                case .service?:
                    throw Problem.overloaded("\(state.configuration.limits.maxConcurrentRequests) requests are in flight; retry after a second")
                case .key?:
                    throw Problem(.tooManyRequests, "too-many-concurrent", "Too many requests in flight for this key",
                                  detail: "key '\(context.key?.name ?? "")' has \(state.configuration.limits.maxConcurrentRequestsPerKey) requests in flight, the most one key may have",
                                  headers: [.retryAfter: "1"])
                case nil:
                    break
                }
                defer { state.release(key: keyID) }
                response = try await inner.respond(to: request, context: context)
            }
        } catch let problem as Problem {
            closeConnection = problem.closeConnection
            response = problem.response(instance: path, requestID: context.requestID)
        } catch let error as any HTTPResponseError {
            let problem = Problem(error.status, "http-\(error.status.code)", error.status.reasonPhrase, detail: "\(error)")
            response = problem.response(instance: path, requestID: context.requestID)
        } catch {
            state.logger.error("internal error", metadata: ["request_id": .string(context.requestID), "error": .string("\(error)")])
            response = Problem(.internalServerError, "internal-error", "Internal error",
                               detail: "the service failed to answer; the log has request id \(context.requestID)")
                .response(instance: path, requestID: context.requestID)
        }
        // A body the handler did not read would be read to its end before the next request on this
        // connection (a 401 to a 1 GB upload, a POST to /healthz that trickles in): close instead.
        if closeConnection || (Self.declaresBody(request) && !context.report.bodyConsumed) {
            response = Self.closingAfterWrite(response, channel: context.channel)
        }
        response.headers.append(contentsOf: rateHeaders)
        response.headers[HTTPField.Name("X-Request-Id")!] = context.requestID
        response.headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        if tls { response.headers[HTTPField.Name("Strict-Transport-Security")!] = "max-age=31536000" }
        record(request, context: context, pattern: pattern, status: response.status, elapsed: ContinuousClock.now - start)
        return response
    }

    /// A key flagged as extracting a model, with `extraction_action: block`, is refused before its
    /// body is read (`throttle` is applied per row by the predict endpoint, `log` does nothing).
    private func restrictFlagged(_ key: KeyEntry) throws {
        guard state.configuration.limits.extractionAction == .block else { return }
        state.metrics.increment("bulwark_extraction_refusals_total", [("key", key.name), ("action", "block")])
        throw Problem(.forbidden, "extraction-blocked", "Predictions refused for this key",
                      detail: "key '\(key.name)' sent a query stream flagged as model extraction; ask the service's administrator")
    }

    private func authenticate(_ request: Request, context: ServeContext, route: String) throws -> KeyEntry {
        func deny(_ reason: String, _ detail: String) -> Problem {
            state.metrics.increment("bulwark_auth_failures_total", [("reason", reason)])
            state.audit?.recordDenial(reason: reason, remote: context.remote, route: route)
            return reason == "malformed"
                ? Problem(.badRequest, "malformed-credentials", "Malformed credentials", detail: detail)
                : Problem.unauthorized(detail)
        }
        switch Authentication.presentedKey(in: request.headers) {
        case .missing:
            throw deny("missing", "send the API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        case .malformed(let detail):
            throw deny("malformed", detail)
        case .presented(let key):
            guard let key, let entry = state.keys.table.authenticate(key) else {
                throw deny("unknown", "the API key is unknown or revoked")
            }
            return entry
        }
    }

    private func record(_ request: Request, context: ServeContext, pattern: String, status: HTTPResponse.Status, elapsed: Duration) {
        let statusText = String(status.code)
        state.metrics.increment("bulwark_http_requests_total", [("route", pattern), ("method", request.method.rawValue), ("status", statusText)])
        state.metrics.recordDuration("bulwark_http_request_duration_seconds", [("route", pattern)], elapsed)
        var metadata: Logger.Metadata = [
            "request_id": .string(context.requestID), "route": .string(pattern), "method": .string(request.method.rawValue),
            "status": .stringConvertible(status.code), "latency_ms": .string(String(format: "%.3f", Double(elapsed.components.attoseconds) * 1e-15 + Double(elapsed.components.seconds) * 1e3)),
        ]
        if let key = context.key {
            metadata["key"] = .string(key.name)
            metadata["role"] = .string(key.role.rawValue)
        }
        if let remote = context.remote { metadata["remote"] = .string(remote) }
        if let rows = context.report.rows { metadata["rows"] = .stringConvertible(rows) }
        if let model = context.report.model { metadata["model"] = .string(model) }
        if let anomalies = context.report.anomalies { metadata["anomalies"] = .stringConvertible(anomalies) }
        state.logger.info("request", metadata: metadata)
    }

    private func displayablePath(_ path: String) -> String { displayable(path, limit: 100) }

    static func declaresBody(_ request: Request) -> Bool {
        if let length = request.headers[.contentLength] { return length != "0" }
        return request.headers[.transferEncoding] != nil
    }

    /// The response, after which the connection closes (the rest of a body is not waited for).
    /// The close comes half a second after the answer is written: closing at once, with the
    /// client's upload still in the receive buffer, makes the kernel send a reset that can destroy
    /// the answer before the client reads it.
    static func closingAfterWrite(_ response: Response, channel: any Channel) -> Response {
        var response = response
        let body = response.body
        response.headers[.connection] = "close"
        response.body = ResponseBody(contentLength: body.contentLength) { writer in
            try await body.write(writer)
            channel.eventLoop.scheduleTask(in: .milliseconds(500)) { channel.close(promise: nil) }
        }
        return response
    }

    static func newRequestID() -> String {
        var generator = SystemRandomNumberGenerator()
        return String(generator.next() as UInt64, radix: 16)
    }
}
#endif

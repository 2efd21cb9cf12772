#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import Foundation
import Logging
import Serving
import TensorCore
import Testing

@Suite("Routes and structured logs")
struct ServingUnitTests {
    @Test("routes: patterns match by segment; other methods give 405 with the allowed ones")
    func routes() {
        #expect(Routes.match(method: .post, path: "/v1/models/x/predict") == .rule(Routes.policy[0]))
        #expect(Routes.match(method: .get, path: "/v1/models//predict") == .notFound)
        #expect(Routes.match(method: .get, path: "/v1/models/x/predict/extra") == .notFound)
        #expect(Routes.match(method: .put, path: "/v1/models") == .methodNotAllowed(pattern: "/v1/models", allowed: [.get]))
        // Every route with a role list needs a key; only the probes are public.
        #expect(Set(Routes.policy.filter { $0.roles == nil }.map(\.pattern)) == ["/healthz", "/readyz"])
    }
}

@Suite("Structured logs")
struct JSONLogTests {
    @Test("every log line is one valid JSON object with escaped strings, numbers as numbers and an RFC 3339 time")
    func lines() throws {
        let lines = Locked<[String]>([])
        var logger = Logger(label: "t") { JSONLogHandler(label: $0) { line in lines.withLock { $0.append(line) } } }
        logger[metadataKey: "request_id"] = "abc"
        logger.info("quote \" backslash \\ newline \n control \u{1} unicode é", metadata: ["status": .stringConvertible(401), "route": "/v1/models"])
        let line = try #require(lines.withLock { $0.first })
        #expect(!line.contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["message"] as? String == "quote \" backslash \\ newline \n control \u{1} unicode é")
        #expect(object["status"] as? Int == 401 && object["request_id"] as? String == "abc" && object["level"] as? String == "info")
        let time = try #require(object["time"] as? String)
        #expect(time.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil)
    }
}
#endif

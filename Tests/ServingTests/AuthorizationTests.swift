#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import Foundation
import NIOHTTP1
import Serving
import Testing

@Suite("Authentication and the role matrix")
struct AuthorizationTests {
    enum Caller: CaseIterable, CustomStringConvertible {
        case none, unknown, malformed, revoked, admin, predictor, auditor
        var description: String { "\(self)" }
    }

    /// Every route of `Routes.policy` × every kind of caller: public routes answer everyone;
    /// otherwise no key, an unknown, malformed or revoked key get 401, a known key whose role is
    /// not allowed gets 403, and an allowed role gets through (200).
    @Test("every route × every caller gives the status the policy table says")
    func matrix() async throws {
        try await TestService().use { service in
            for rule in Routes.policy {
                let path = rule.pattern.replacingOccurrences(of: "{name}", with: "m")
                for caller in Caller.allCases {
                    var headers: [(String, String)] = []
                    let role: Role?
                    switch caller {
                    case .none: role = nil
                    case .unknown: role = nil; headers = [("Authorization", "Bearer " + service.unknownKey.text)]
                    case .malformed: role = nil; headers = [("X-API-Key", "bwk_not-a-key")]
                    case .revoked: role = nil; headers = [("Authorization", "Bearer " + service.revokedKey.text)]
                    case .admin: role = .admin
                    case .predictor: role = .predictor
                    case .auditor: role = .auditor
                    }
                    if let role { headers = [("X-API-Key", service.keys[role]!.text)] }
                    let body: [UInt8]? = rule.method == .post ? TestService.jsonBody(TestService.sampleRows(1)) : nil
                    let reply = try await service.request(rule.method == .post ? .POST : .GET, path, body: body, headers: headers)
                    let expected: Int
                    if let roles = rule.roles {
                        if let role { expected = roles.contains(role) ? 200 : 403 } else { expected = 401 }
                    } else {
                        expected = 200
                    }
                    #expect(reply.status == expected, "\(rule.method) \(rule.pattern) as \(caller): \(reply.text)")
                    if reply.status >= 400 {
                        #expect(reply.headers["Content-Type"].first == "application/problem+json")
                    }
                    if expected == 401 { #expect(reply.headers["WWW-Authenticate"].first == "Bearer realm=\"bulwark\"") }
                }
            }
            // Keys never appear in the service's logs.
            let log = service.logLines.withLock { $0.joined(separator: "\n") }
            for key in Array(service.keys.values) + [service.unknownKey, service.revokedKey] {
                #expect(!log.contains(key.secret))
            }
        }
    }

    @Test("two different keys in Authorization and X-API-Key are a 400; a wrong scheme too")
    func conflictingHeaders() async throws {
        try await TestService().use { service in
            let both = try await service.request(.GET, "/v1/models", headers: [
                ("Authorization", "Bearer " + service.keys[.admin]!.text), ("X-API-Key", service.keys[.auditor]!.text)])
            #expect(both.status == 400)
            let basic = try await service.request(.GET, "/v1/models", headers: [("Authorization", "Basic YWRtaW46YWRtaW4=")])
            #expect(basic.status == 400)
            let same = try await service.request(.GET, "/v1/models", headers: [
                ("authorization", "bearer " + service.keys[.admin]!.text), ("X-API-Key", service.keys[.admin]!.text)])
            #expect(same.status == 200)
        }
    }

    @Test("unknown paths are 404 and known paths with another method 405 with Allow, as problem+json")
    func unknownRoutes() async throws {
        try await TestService().use { service in
            let missing = try await service.request(.GET, "/v1/secret", key: service.keys[.admin])
            #expect(missing.status == 404)
            #expect(missing.headers["Content-Type"].first == "application/problem+json")
            let wrongMethod = try await service.request(.DELETE, "/v1/models", key: service.keys[.admin])
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.headers["Allow"].first == "GET")
            let noModel = try await service.request(.POST, "/v1/models/other/predict", key: service.keys[.predictor],
                                                    body: TestService.jsonBody(TestService.sampleRows(1)))
            #expect(noModel.status == 404)
        }
    }

    @Test("a key added to the file works after a reload; a revoked one is refused")
    func keyChangesTakeEffect() async throws {
        try await TestService().use { service in
            let newKey = APIKey.generate()
            try KeyFile.modify(service.directory + "/keys.json") { file in
                file.keys.append(KeyEntry(id: newKey.id, name: "late", role: .auditor, sha256: newKey.secretDigest, rate: 100, burst: 100,
                                          output: .full, created: "2026-11-27T00:00:00Z"))
            }
            service.server.state.keys.reload()
            #expect(try await service.request(.GET, "/metrics", key: newKey).status == 200)
            try KeyFile.modify(service.directory + "/keys.json") { file in
                file.keys[file.keys.firstIndex { $0.name == "late" }!].revoked = true
            }
            service.server.state.keys.reload()
            #expect(try await service.request(.GET, "/metrics", key: newKey).status == 401)
            // A key file made world-readable is refused and the keys in force stay.
            chmod(service.directory + "/keys.json", 0o644)
            #expect(service.server.state.keys.reload(force: true) == false)
            #expect(try await service.request(.GET, "/metrics", key: service.keys[.auditor]).status == 200)
        }
    }
}
#endif

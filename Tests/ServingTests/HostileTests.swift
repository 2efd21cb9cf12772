#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Serving
import Testing
import _TestSupport

@Suite("Hostile clients and unsafe configurations")
struct HostileTests {
    @Test("a body that trickles in is cut off at the body deadline (slowloris), and the service keeps serving")
    func slowBody() async throws {
        var limits = ServeConfiguration.Limits()
        limits.bodyTimeoutSeconds = 1
        try await TestService(limits: limits).use { service in
            var request = HTTPClientRequest(url: service.baseURL + "/v1/models/m/predict")
            request.method = .POST
            request.headers.add(name: "Authorization", value: "Bearer " + service.keys[.predictor]!.text)
            request.headers.add(name: "Content-Type", value: "application/json")
            let trickle = AsyncStream<ByteBuffer> { continuation in
                continuation.yield(ByteBuffer(string: "{\"inputs\": [[0.1,"))
                Task {
                    try? await Task.sleep(for: .seconds(30))
                    continuation.finish()
                }
            }
            request.body = .stream(trickle, length: .known(Int64(100_000)))
            let start = ContinuousClock.now
            var status: Int?
            do {
                let response = try await service.client.execute(request, timeout: .seconds(40))
                status = Int(response.status.code)
            } catch {
                status = nil  // the connection was closed on the client: also a refusal
            }
            let elapsed = ContinuousClock.now - start
            // Cut off near the 1 s deadline, long before the upload would end (30 s); the margin is for
            // a loaded test machine, where timers fire late.
            #expect(elapsed < .seconds(15), "the stalled upload held the request for \(elapsed)")
            #expect(status == nil || status == 408)
            let after = try await service.predict(TestService.sampleRows(1))
            #expect(after.status == 200)
        }
    }

    @Test("a TLS 1.1 client is refused; TLS 1.2 and 1.3 are accepted")
    func oldTLSRefused() async throws {
        try await TestService().use { service in
            for (version, accepted) in [(TLSVersion.tlsv11, false), (.tlsv12, true), (.tlsv13, true)] {
                var tls = TLSConfiguration.makeClientConfiguration()
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(service.certificatePEM.utf8)))
                tls.minimumTLSVersion = version == .tlsv11 ? .tlsv1 : version
                tls.maximumTLSVersion = version
                let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
                var ok = false
                do {
                    let response = try await client.execute(HTTPClientRequest(url: service.baseURL + "/healthz"), timeout: .seconds(10))
                    ok = response.status == .ok
                } catch {}
                try await client.shutdown()
                #expect(ok == accepted, "\(version)")
            }
        }
    }

    @Test("a flood of headers is refused and does not take the service down")
    func headerFlood() async throws {
        try await TestService().use { service in
            let headers = (0..<500).map { ("X-Junk-\($0)", String(repeating: "a", count: 100)) }
            let status = try? await service.request(.GET, "/healthz", headers: headers).status
            #expect(status != 200)
            let after = try await service.request(.GET, "/healthz")
            #expect(after.status == 200)
        }
    }

    @Test("plain HTTP is refused on any address but loopback; loopback addresses are recognised")
    func insecureHTTP() throws {
        for host in ["0.0.0.0", "192.168.1.10", "::", "example.com", "128.0.0.1"] {
            #expect(throws: ServeError.insecureHTTPOnPublicAddress(host)) {
                try ServeConfiguration(host: host, port: 8080, tls: nil, keysPath: "k", auditLogPath: nil).validate()
            }
        }
        for host in ["127.0.0.1", "127.1.2.3", "::1", "localhost"] {
            #expect(ServeConfiguration.isLoopback(host), "\(host)")
            try ServeConfiguration(host: host, port: 8080, tls: nil, keysPath: "k", auditLogPath: nil).validate()
        }
    }

    @Test("an API-key file readable by others, or not a key file at all, is refused with the fix")
    func keyFilePermissions() throws {
        let directory = TestSupport.temporaryDirectory()
        let path = directory + "/keys.json"
        try KeyFile.modify(path) { $0.keys = [] }
        chmod(path, 0o644)
        #expect(throws: ServeError.keyFilePermissions(path: path, mode: 0o100644)) { try KeyFile.read(path) }
        chmod(path, 0o600)
        _ = try KeyFile.read(path)
        try Data("{\"version\": 1, \"keys\": [], \"admin\": true}".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
        #expect(throws: ServeError.self) { try KeyFile.read(path) }
        symlink("/dev/zero", directory + "/zero.json")
        #expect(throws: (any Error).self) { try KeyFile.read(directory + "/zero.json") }
    }
}

@Suite("Connections and concurrency under abuse")
struct AbuseTests {
    @Test("an answer that leaves a request body unread closes the connection (no draining a 1 GB upload); HEAD works")
    func unreadBodiesClose() async throws {
        try await TestService().use { service in
            let body = Array(repeating: UInt8(ascii: "x"), count: 10_000)
            let unauthenticated = try await service.request(.POST, "/v1/models/m/predict", body: body)
            #expect(unauthenticated.status == 401)
            #expect(unauthenticated.headers["Connection"].first == "close")
            let wrongMethod = try await service.request(.POST, "/healthz", body: body)
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.headers["Connection"].first == "close")
            #expect(wrongMethod.json["request_id"] as? String == wrongMethod.headers["X-Request-Id"].first)
            let ok = try await service.predict(TestService.sampleRows(1))
            #expect(ok.status == 200 && ok.headers["Connection"].first != "close")
            #expect(try await service.request(.HEAD, "/healthz").status == 200)
        }
    }

    @Test("one key cannot hold every slot: beyond its in-flight limit it gets 429, another key still gets through")
    func perKeyConcurrency() async throws {
        var limits = ServeConfiguration.Limits()
        limits.maxConcurrentRequestsPerKey = 2
        try await TestService(limits: limits, wrap: { SlowModel(base: $0, delay: 0.5) }).use { service in
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<4 { group.addTask { try await service.predict(TestService.sampleRows(1, seed: UInt64(i))).status } }
                try await Task.sleep(for: .milliseconds(150))
                let other = try await service.predict(TestService.sampleRows(1), key: .admin).status
                var all = [other]
                for try await status in group { all.append(status) }
                return all
            }
            #expect(statuses[0] == 200)  // the other key
            #expect(statuses.dropFirst().sorted() == [200, 200, 429, 429])
        }
    }
}
#endif

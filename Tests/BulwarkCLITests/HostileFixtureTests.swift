import Foundation
import Testing
import _TestSupport

/// The hostile-input campaign's files (Hostile/README.md), each run against the command line: every
/// one must keep being refused with a message that names the problem.
@Suite("Hostile fixtures stay refused", .serialized)
struct HostileFixtureTests {
    static let root = Bundle.module.url(forResource: "Hostile", withExtension: nil)!.path

    struct Case: CustomTestStringConvertible, Sendable {
        let arguments: [String]
        let status: Int32
        let message: String
        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let cases: [Case] = {
        var cases: [Case] = []
        let models = [("dup-architecture", "\"architecture\" appears twice"), ("dup-metadata-key", "\"format\" appears twice"),
                      ("dup-tensor-key", "\"2.bias\" appears twice"), ("shape-float", "\"shape\" must be an integer"),
                      ("shape-1e400", "\"shape\" must be an integer"), ("shape-2p64", "a number does not fit its field"),
                      ("unknown-field", "unknown key \"evil\"")]
        for (name, message) in models {
            cases.append(Case(arguments: ["inspect", "models/\(name).safetensors", "--allow-unverified"], status: 2, message: message))
        }
        let reports = [("acc-1.5", "accuracy 1.5"), ("acc-neg3", "accuracy -3.0"), ("no-outcomes-acc-1.5", "accuracy 1.5"),
                       ("ci-inverted", "does not contain"), ("correct-gt-n", "5000 correct of 200"), ("metric-1.5", "a proportion lies in [0, 1]"),
                       ("dup-key", "\"data_sha256\" appears twice"), ("n-float", "\"n\" must be an integer"), ("n-neg", "n is -5"),
                       ("no-models", "it lists no models"), ("unknown-fields", "unknown field")]
        for (name, message) in reports {
            cases.append(Case(arguments: ["gate", "--baseline", "gate/base.json", "--report", "gate/\(name).json"], status: 2, message: message))
        }
        let configurations = [("dup-seed", "\"seed\" appears twice"), ("eps-1e39", "a number does not fit its field"),
                              ("n-float", "\"n\" must be an integer"), ("seed-1e30", "\"seed\" must be an integer"),
                              ("seed-neg1", "a number does not fit its field")]
        for (name, message) in configurations {
            cases.append(Case(arguments: ["bench", "--config", "bench/\(name).json", "--validate-config"], status: 2, message: message))
        }
        for name in ["future-2100", "future-2p40", "future-2p63", "future-2p64m1"] {
            cases.append(Case(arguments: ["data", "decrypt", "--key-file", "KEY", "fernet/\(name).fernet", "OUT"], status: 2, message: "in the future"))
        }
        let manifests = [("sig-dup-entry", "\"tiny.safetensors\" appears twice"), ("sig-dup-files", "\"files\" appears twice"),
                         ("sig-size-float", "\"size\" must be an integer"), ("sig-unknown-entry", "unknown key \"trusted\""),
                         ("sig-unknown-top", "unknown key \"note\"")]
        for (name, message) in manifests {
            cases.append(Case(arguments: ["manifest", "verify", "manifests/\(name)", "--public-key", "manifests/test-signing.pub"],
                              status: 2, message: message))
        }
        return cases
    }()

    @Test("each hostile file is refused, naming the problem", arguments: cases)
    func refused(_ fixture: Case) throws {
        let scratch = TestSupport.temporaryDirectory("hostile-fixture")
        // Git keeps no file modes: the test key gets the 0600 the CLI requires of key files.
        let key = scratch + "/test-data.key"
        try FileManager.default.copyItem(atPath: Self.root + "/fernet/test-data.key", toPath: key)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key)
        let arguments = fixture.arguments.map { argument -> String in
            switch argument {
            case "KEY": key
            case "OUT": scratch + "/out.bin"
            default: argument.contains("/") && FileManager.default.fileExists(atPath: Self.root + "/" + argument) ? Self.root + "/" + argument : argument
            }
        }
        let result = try CLIRun(arguments)
        #expect(result.status == fixture.status && result.stderr.contains(fixture.message), "\(result.status): \(result.stderr)")
        #expect(!result.stderr.contains("Fatal error"))
    }

    @Test("the signed original verifies, and inspect escapes the escape sequences of a hostile model's metadata")
    func controls() throws {
        let signed = try CLIRun(["manifest", "verify", Self.root + "/manifests/sig", "--public-key", Self.root + "/manifests/test-signing.pub"])
        #expect(signed.status == 0 && signed.stdout.contains("signature valid"), "\(signed.stderr)")
        let inspect = try CLIRun(["inspect", Self.root + "/models/ctrl-metadata.safetensors", "--allow-unverified"])
        #expect(inspect.status == 0 && !inspect.stdout.contains("\u{1B}") && inspect.stdout.contains("\\u{1B}"), "\(inspect.stdout)")
    }
}

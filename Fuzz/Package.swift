// swift-tools-version: 6.1
// libFuzzer targets for Bulwark's file parsers. Built and run by scripts/fuzz.sh:
//     swift build -c release --package-path Fuzz --sanitize=fuzzer --sanitize=address
import Foundation
import PackageDescription

// The parent package's identity is its directory name, which depends on where it was cloned.
let bulwark = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent
let targets = ["safetensors": "FuzzSafeTensors", "idx": "FuzzIDX", "csv": "FuzzCSV",
               "manifest": "FuzzManifest", "container": "FuzzContainer", "fernet": "FuzzFernet", "config": "FuzzConfig",
               "predict": "FuzzPredict", "keyfile": "FuzzKeyFile", "audit": "FuzzAudit", "servecfg": "FuzzServeConfig",
               "membership": "FuzzMembershipConfig", "threatreport": "FuzzThreatReport",
               "modelsig": "FuzzModelSignature"]

let package = Package(
    name: "BulwarkFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(path: "..")],
    targets: targets.values.sorted().map { name in
        .executableTarget(name: name, dependencies: [.product(name: "_FuzzTargets", package: bulwark)], path: "Sources/\(name)")
    }
)

// swift-tools-version: 6.1
// Benchmarks for Bulwark, kept in their own package so the benchmark dependency (and its malloc
// interposer) stays out of the main package. Run from this directory:
//     swift package benchmark
import Foundation
import PackageDescription

// The parent package's identity is its directory name, which depends on where it was cloned.
let bulwark = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "BulwarkBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
    ],
    targets: [
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TensorCore", package: bulwark),
                .product(name: "NeuralNet", package: bulwark),
                .product(name: "Attacks", package: bulwark),
                .product(name: "Datasets", package: bulwark),
                .product(name: "Certification", package: bulwark),
            ],
            path: "Benchmarks/EngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "SecurityBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "BulwarkSecurity", package: bulwark),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Benchmarks/SecurityBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)

// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Bulwark",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "bulwark", targets: ["bulwark"]),
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "NeuralNet", targets: ["NeuralNet"]),
        .library(name: "Datasets", targets: ["Datasets"]),
        .library(name: "Attacks", targets: ["Attacks"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Robustness", targets: ["Robustness"]),
        .library(name: "Security", targets: ["Security"]),
        .library(name: "_FuzzTargets", targets: ["_FuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
    ],
    targets: [
        // MARK: - C libraries (only TensorCore, and Datasets' gzip reader, touch C)
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),

        // MARK: - Helpers
        .target(name: "_FileSystem"),
        .target(name: "_CKernels"),

        // MARK: - Engine
        .target(name: "TensorCore", dependencies: ["CBLAS", "_CKernels"]),
        .target(name: "NeuralNet", dependencies: ["TensorCore", "_FileSystem"]),
        .target(name: "Datasets", dependencies: ["TensorCore", "CZlib", "_FileSystem"]),

        // MARK: - Attacks, training jobs and robustness evaluation
        // Attacks: the `Attack` protocol, `AttackSpec`, FGSM, PGD, the batch runner.
        .target(name: "Attacks", dependencies: ["TensorCore", "NeuralNet", "_FileSystem"]),
        // Training: typed recipes, objectives (adversarial training), the training job.
        .target(name: "Training", dependencies: ["TensorCore", "NeuralNet", "Datasets", "Attacks", "Security", "_FileSystem"]),
        // Robustness: bench configurations and jobs, the report schema and its renderers, the gate.
        .target(name: "Robustness", dependencies: ["TensorCore", "NeuralNet", "Datasets", "Attacks", "Training", "Security", "_FileSystem"]),

        // MARK: - Security
        .target(
            name: "Security",
            dependencies: [
                "_FileSystem",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),

        // MARK: - Fuzzing (entry points for Fuzz/ and the corpus replay test)
        .target(name: "_FuzzTargets", dependencies: ["TensorCore", "Datasets", "NeuralNet", "Robustness", "Security"]),

        // MARK: - Command line
        .target(
            name: "BulwarkCLI",
            dependencies: [
                "TensorCore", "NeuralNet", "Datasets", "Attacks", "Training", "Robustness", "Security", "_FileSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(name: "bulwark", dependencies: ["BulwarkCLI"]),

        // MARK: - Tests
        .target(name: "_TestSupport", dependencies: ["CBLAS", "TensorCore", "NeuralNet"], path: "Tests/_TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "_TestSupport"]),
        .testTarget(name: "NeuralNetTests", dependencies: ["NeuralNet", "Datasets", "_TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "_FileSystem", "_TestSupport"], resources: [.copy("Hostile")]),
        .testTarget(name: "AttacksTests", dependencies: ["Attacks", "Datasets", "_TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Datasets", "_FileSystem", "_TestSupport"]),
        .testTarget(name: "RobustnessTests", dependencies: ["Robustness", "Datasets", "Training", "_TestSupport"]),
        .testTarget(name: "SecurityTests", dependencies: ["Security", "NeuralNet", "Datasets", "_FuzzTargets", "_TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BulwarkCLITests", dependencies: ["BulwarkCLI", "_TestSupport"], resources: [.copy("Hostile")]),
    ]
)

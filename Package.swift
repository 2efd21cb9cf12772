// swift-tools-version: 6.1
import PackageDescription

/// Dependencies only the HTTPS service needs (the `Serve` trait).
let serve: TargetDependencyCondition? = .when(traits: ["Serve"])

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
        .library(name: "Threats", targets: ["Threats"]),
        .library(name: "Certification", targets: ["Certification"]),
        .library(name: "BulwarkSecurity", targets: ["BulwarkSecurity"]),
        .library(name: "_FuzzTargets", targets: ["_FuzzTargets"]),
    ],
    // The HTTPS service and its heavy dependencies (Hummingbird, NIO SSL with its own BoringSSL,
    // Prometheus, AsyncHTTPClient for its tests) are a default trait: `--disable-default-traits`
    // builds the engine, the command line without `serve` and `audit`, and ServingCore (CI's
    // sanitizer stages, where the server would double the build time).
    traits: [
        .default(enabledTraits: ["Serve"]),
        .trait(name: "Serve", description: "bulwark serve and bulwark audit (the Serving and ServeCLI targets)"),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
        // The HTTPS service (`Serving`, `ServeCLI`) only; the engine does not link them.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // HTML reports.
        .package(url: "https://github.com/JohnSundell/Plot", from: "0.14.0"),
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
        .target(name: "_OpenBLASCore"),

        // MARK: - Engine
        .target(name: "TensorCore", dependencies: ["CBLAS", "_CKernels", "_OpenBLASCore"]),
        .target(name: "NeuralNet", dependencies: ["TensorCore", "_FileSystem"]),
        .target(name: "Datasets", dependencies: ["TensorCore", "CZlib", "_FileSystem"]),

        // MARK: - Attacks, training jobs and robustness evaluation
        // Attacks: the `Attack` protocol, `AttackSpec`, FGSM, PGD, the batch runner.
        .target(name: "Attacks", dependencies: ["TensorCore", "NeuralNet", "_FileSystem"]),
        // Training: typed recipes, objectives (adversarial training), the training job.
        .target(name: "Training", dependencies: ["TensorCore", "NeuralNet", "Datasets", "Attacks", "Certification", "BulwarkSecurity", "_FileSystem"]),
        // Certification: IBP, CROWN and Lipschitz bounds for ReLU networks (LAPACKE for spectral norms).
        .target(name: "Certification", dependencies: ["CBLAS", "TensorCore", "NeuralNet", "Attacks"]),
        // Threats: poisoning (label flipping, BadNets) and its defences, membership inference (LiRA).
        .target(name: "Threats", dependencies: ["CBLAS", "TensorCore", "NeuralNet", "Datasets", "Attacks", "Training", "_FileSystem"]),
        // Robustness: bench configurations and jobs (threat experiments included), the report schema and its renderers, the gate.
        .target(name: "Robustness", dependencies: ["TensorCore", "NeuralNet", "Datasets", "Attacks", "Training", "Threats", "Certification", "BulwarkSecurity", "_FileSystem"]),

        // BillOfMaterials: CycloneDX 1.6 bills of materials (an ML-BOM per model, Bulwark's own SBOM).
        .target(name: "BillOfMaterials", dependencies: ["CBLAS", "CZlib", "TensorCore", "NeuralNet", "Robustness"],
                plugins: ["ResolvedDependenciesPlugin"]),
        // The exact Swift package versions of the build, from Package.resolved, for the SBOM.
        .plugin(name: "ResolvedDependenciesPlugin", capability: .buildTool()),

        // HTMLReport: a bench report as one self-contained HTML page (Plot; SVG plots).
        .target(name: "HTMLReport", dependencies: ["Robustness", "Attacks", "CZlib", .product(name: "Plot", package: "Plot")]),

        // MARK: - Security
        .target(
            name: "BulwarkSecurity",
            dependencies: [
                "_FileSystem",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),

        // MARK: - Fuzzing (entry points for Fuzz/ and the corpus replay test)
        .target(name: "_FuzzTargets", dependencies: ["TensorCore", "Datasets", "NeuralNet", "Robustness", "HTMLReport", "Threats", "BulwarkSecurity", "ServingCore",
                                            .product(name: "Crypto", package: "swift-crypto")]),

        // MARK: - Command line
        .target(
            name: "BulwarkCLI",
            dependencies: [
                "TensorCore", "NeuralNet", "Datasets", "Attacks", "Training", "Robustness", "HTMLReport", "Threats", "Certification", "BulwarkSecurity", "ServingCore", "BillOfMaterials", "_FileSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // MARK: - The HTTPS inference service (`bulwark serve`, `bulwark audit`)
        // ServingCore: what the service decides, without a network stack (keys, the request parser,
        // rate limits, the audit chain, micro-batching); fuzzed and tested without NIO.
        .target(
            name: "ServingCore",
            dependencies: [
                "CBLAS", "TensorCore", "NeuralNet", "BulwarkSecurity", "_FileSystem",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Serving: the HTTPS server around it (Hummingbird, TLS, metrics, lifecycle).
        .target(
            name: "Serving",
            dependencies: [
                "ServingCore", "TensorCore", "NeuralNet", "BulwarkSecurity", "_FileSystem",
                .product(name: "Hummingbird", package: "hummingbird", condition: serve),
                .product(name: "HummingbirdTLS", package: "hummingbird", condition: serve),
                .product(name: "NIOCore", package: "swift-nio", condition: serve),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: serve),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras", condition: serve),
                .product(name: "HTTPTypes", package: "swift-http-types", condition: serve),
                .product(name: "X509", package: "swift-certificates", condition: serve),
                .product(name: "SwiftASN1", package: "swift-asn1", condition: serve),
                .product(name: "Metrics", package: "swift-metrics", condition: serve),
                .product(name: "Prometheus", package: "swift-prometheus", condition: serve),
                .product(name: "Logging", package: "swift-log", condition: serve),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle", condition: serve),
                .product(name: "UnixSignals", package: "swift-service-lifecycle", condition: serve),
                .product(name: "Crypto", package: "swift-crypto", condition: serve),
            ]
        ),
        // ServingClient: a model thief's client of the predict API (AsyncHTTPClient; obeys 429 and Retry-After).
        .target(
            name: "ServingClient",
            dependencies: [
                "Threats", "NeuralNet", "TensorCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client", condition: serve),
                .product(name: "NIOCore", package: "swift-nio", condition: serve),
                .product(name: "NIOHTTP1", package: "swift-nio", condition: serve),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: serve),
            ]
        ),
        .target(
            name: "ServeCLI",
            dependencies: [
                .target(name: "Serving", condition: serve), "ServingCore", "BulwarkCLI", "NeuralNet", "BulwarkSecurity", "Attacks", "Datasets", "TensorCore", "_FileSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser", condition: serve),
                .product(name: "Crypto", package: "swift-crypto", condition: serve),
                .product(name: "Logging", package: "swift-log", condition: serve),
            ]
        ),
        .executableTarget(name: "bulwark", dependencies: ["BulwarkCLI", .target(name: "ServeCLI", condition: serve), .target(name: "ServingClient", condition: serve)]),

        // MARK: - Tests
        .target(name: "_TestSupport", dependencies: ["CBLAS", "TensorCore", "NeuralNet"], path: "Tests/_TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "_TestSupport"]),
        .testTarget(name: "NeuralNetTests", dependencies: ["NeuralNet", "Datasets", "_TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "_FileSystem", "_TestSupport"], resources: [.copy("Hostile")]),
        .testTarget(name: "AttacksTests", dependencies: ["Attacks", "Datasets", "_TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Datasets", "_FileSystem", "_TestSupport"]),
        .testTarget(name: "ThreatsTests", dependencies: ["Threats", "Training", "NeuralNet", "TensorCore", "_TestSupport"]),
        .testTarget(name: "CertificationTests", dependencies: ["Certification", "NeuralNet", "TensorCore", "Attacks", "Datasets", "_TestSupport"]),
        .testTarget(name: "HTMLReportTests", dependencies: ["HTMLReport", "Robustness", "Attacks", "NeuralNet", "BulwarkSecurity", "_TestSupport"]),
        .testTarget(name: "RobustnessTests", dependencies: ["Robustness", "Certification", "Datasets", "Training", "BulwarkSecurity", "_TestSupport"]),
        .testTarget(name: "SecurityTests", dependencies: ["BulwarkSecurity", "NeuralNet", "Datasets", "_FuzzTargets", "_TestSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "BulwarkCLITests", dependencies: ["BulwarkCLI", "_TestSupport"], resources: [.copy("Hostile")]),
        .testTarget(
            name: "ServingTests",
            dependencies: [
                .target(name: "Serving", condition: serve), .target(name: "ServingClient", condition: serve), "ServingCore", "Threats", "NeuralNet", "BulwarkSecurity", "TensorCore", "_TestSupport",
                .product(name: "AsyncHTTPClient", package: "async-http-client", condition: serve),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: serve),
                .product(name: "NIOCore", package: "swift-nio", condition: serve),
                .product(name: "NIOHTTP1", package: "swift-nio", condition: serve),
                .product(name: "Logging", package: "swift-log", condition: serve),
                .product(name: "Crypto", package: "swift-crypto", condition: serve),
                "_FileSystem",
            ]
        ),
        .testTarget(
            name: "ServingCoreTests",
            dependencies: ["ServingCore", "NeuralNet", "TensorCore", "Datasets", "_FileSystem", "_TestSupport", .product(name: "Crypto", package: "swift-crypto")],
            exclude: ["Fixtures"]  // read from the repository by path
        ),
    ]
)

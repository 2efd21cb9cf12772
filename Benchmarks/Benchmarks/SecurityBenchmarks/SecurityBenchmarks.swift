import Benchmark
import BulwarkSecurity
import Crypto
import Foundation

// Signatures and key wrapping, to compare the post-quantum options with the classical ones in one
// run (ratios, not absolute times):
// - manifest signatures: signing and verifying the shipped models' manifest (the bytes a signature
//   covers) with Ed25519, ECDSA P-256, ML-DSA-65 and the Ed25519 + ML-DSA-65 hybrid;
// - a file's data key wrapped for an X-Wing recipient (HPKE: ML-KEM-768 + X25519) and for a
//   key-encryption key (AES-256-GCM), and unwrapped again;
// - OMS: signing the shipped models directory (hashing ~8 MB dominates) and verifying it.

private func repositoryRoot() -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .mallocCountTotal], maxDuration: .seconds(3), maxIterations: 10_000)

    for algorithm in SigningAlgorithm.allCases {
        Benchmark("manifest signature, sign, \(algorithm.rawValue)") { benchmark in
            let key = try SigningPrivateKey.generate(algorithm)
            let bytes = try Manifest.load(directory: repositoryRoot() + "/models")!.signedBytes()
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { blackHole(try key.signature(for: bytes)) }
        }
        Benchmark("manifest signature, verify, \(algorithm.rawValue)") { benchmark in
            let key = try SigningPrivateKey.generate(algorithm)
            let bytes = try Manifest.load(directory: repositoryRoot() + "/models")!.signedBytes()
            let signature = try key.signature(for: bytes)
            let publicKey = key.publicKey
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { precondition(publicKey.isValidSignature(signature, for: bytes)) }
        }
    }

    let dataKey = DataKey.generate().bytes
    let header = [UInt8](repeating: 1, count: 15)
    Benchmark("data key, wrap and unwrap, X-Wing recipient") { benchmark in
        let identity = try XWingMLKEM768X25519.PrivateKey.generate()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let stanza = try KeyStanza.wrap(dataKey, for: .recipient(identity.publicKey), fixedHeader: header)
            let opened = try stanza.unwrap(with: .identity(identity), fixedHeader: header)
            precondition(opened == dataKey)
        }
    }
    Benchmark("data key, wrap and unwrap, key-encryption key") { benchmark in
        let kek = DataKey.generate()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let stanza = try KeyStanza.wrap(dataKey, for: .keyEncryptionKey(kek), fixedHeader: header)
            let opened = try stanza.unwrap(with: .keyEncryptionKey(kek), fixedHeader: header)
            precondition(opened == dataKey)
        }
    }

    Benchmark("OMS, sign the models directory, P-256", configuration: .init(maxDuration: .seconds(5), maxIterations: 20)) { benchmark in
        let key = ECDSAPrivateKey.p256(P256.Signing.PrivateKey())
        let signature = NSTemporaryDirectory() + "/bulwark-benchmark-\(getpid()).sig"
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try ModelSigning.sign(model: repositoryRoot() + "/models", key: key, signaturePath: signature))
        }
        benchmark.stopMeasurement()
        try? FileManager.default.removeItem(atPath: signature)
    }
}

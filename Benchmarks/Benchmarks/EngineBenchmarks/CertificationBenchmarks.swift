import Attacks
import Benchmark
import Certification
import Datasets
import Foundation
import NeuralNet
import TensorCore

// Certified accuracy over the 10,000 Fashion-MNIST test images (the committed 1,000-image sample if
// the Debian package is missing), as `bulwark certify` computes it, on the shipped models:
// - IBP (Gowal et al. 2018): one interval pass per image;
// - CROWN (Zhang et al. 2018) at ε = 0.05 and 0.1 on the PGD-trained model, the hard case (many
//   ReLUs unstable on the ball, most images needing the full back-substitution), and at ε = 0.1 on
//   the CROWN-IBP-trained one, whose ReLUs are mostly stable.
// The speed goal: CROWN on the full test set of the 784-256-256-10 model "in seconds".

private func repositoryRoot() -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path
}

private func testImages() throws -> LabeledData {
    let directory = MNISTFormat.hasSplit(.test, in: DataSource.debianDirectory)
        ? DataSource.debianDirectory : repositoryRoot() + "/" + DataSource.sampleDirectory
    return try MNISTFormat.load(directory: directory, split: .test)
}

let certificationBenchmarks: @Sendable () -> Void = {
    let cases: [(label: String, file: String, method: CertificationMethod, epsilon: Double)] = [
        ("IBP, PGD-trained model, ε 0.1", "mlp-pgd.safetensors", .ibp, 0.1),
        ("CROWN, PGD-trained model, ε 0.05", "mlp-pgd.safetensors", .crown, 0.05),
        ("CROWN, PGD-trained model, ε 0.1", "mlp-pgd.safetensors", .crown, 0.1),
        ("CROWN, CROWN-IBP-trained model, ε 0.1", "mlp-crown-ibp.safetensors", .crown, 0.1),
    ]
    for c in cases {
        Benchmark("Certify the 10,000 test images: \(c.label)",
                  configuration: .init(metrics: [.wallClock], warmupIterations: 0, scalingFactor: .one,
                                       maxDuration: .seconds(60), maxIterations: 3, thresholds: [:])) { benchmark in
            let network = try ModelFile.load(contentsOf: repositoryRoot() + "/models/\(c.file)").network
            let data = try testImages()
            let certifier = try Certifier(network, method: c.method, norm: .linf)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(try certifier.certify(data, epsilon: c.epsilon).certifiedAccuracy.successes)
            }
            benchmark.stopMeasurement()
        }
    }
}

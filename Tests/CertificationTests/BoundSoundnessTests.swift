import Attacks
@testable import Certification
import Datasets
import Foundation
import NeuralNet
import TensorCore
import Testing
import _TestSupport

/// Soundness of the bounds: the margins z_y − z_j of every point of the region, sampled densely
/// (a full grid in two dimensions, corners and uniform points above that), lie above the
/// certified lower bounds, and CROWN is never looser than IBP.
@Suite("Certification bounds")
struct BoundSoundnessTests {
    static func network(_ architecture: String, activation: Activation = .relu, seed: UInt64) throws -> CertifiableNetwork {
        CertifiableNetwork(Sequential(spec: try ModelSpec.parse(architecture, activation: activation), seed: seed))
    }

    static func region(_ norm: Norm, points: [Double], width: Int, labels: [Int], epsilon: Double) -> InputRegion {
        InputRegion(norm: norm, points: points, width: width, labels: labels,
                    epsilons: [Double](repeating: epsilon, count: labels.count))
    }

    /// The smallest margin z_y − z_j (per j) over `samples` points of row `row`'s region.
    static func sampledMinimumMargins(_ network: CertifiableNetwork, _ region: InputRegion, row: Int, samples: [[Double]]) -> [Double] {
        let classes = network.classCount, y = region.labels[row]
        var minimum = [Double](repeating: .infinity, count: classes)
        let logits = network.logits(samples.flatMap { $0 }, rows: samples.count)
        for s in 0..<samples.count {
            for j in 0..<classes where j != y {
                minimum[j] = min(minimum[j], logits[s * classes + y] - logits[s * classes + j])
            }
        }
        return minimum
    }

    /// Points of an L∞ region: every corner (small widths) or random corners, and uniform points.
    static func boxSamples(_ region: InputRegion, row: Int, count: Int, generator: inout RandomGenerator) -> [[Double]] {
        let width = region.width
        let low = (0..<width).map { region.center[row * width + $0] - region.radius[row * width + $0] }
        let high = (0..<width).map { region.center[row * width + $0] + region.radius[row * width + $0] }
        var samples: [[Double]] = []
        if width <= 10 {
            for mask in 0..<(1 << width) { samples.append((0..<width).map { mask & (1 << $0) != 0 ? high[$0] : low[$0] }) }
        }
        for s in 0..<count {
            samples.append((0..<width).map { j in
                s % 2 == 0 ? (generator.nextFloat(in: 0, 1) < 0.5 ? low[j] : high[j])
                           : low[j] + Double(generator.nextFloat(in: 0, 1)) * (high[j] - low[j])
            })
        }
        return samples
    }

    @Test("IBP and CROWN contain every margin on a dense grid of a 2-D input (ReLU, leaky ReLU)")
    func denseGrid() throws {
        for (architecture, activation) in [("2-16-16-3", Activation.relu), ("2-12-12-12-4", .relu), ("2-16-16-3", .leakyrelu)] {
            for seed in UInt64(1)...2 {
                let network = try Self.network(architecture, activation: activation, seed: seed)
                var generator = RandomGenerator(seed: seed, stream: RandomStream("test points"))
                let points = (0..<10).map { _ in Double(generator.nextFloat(in: 0.2, 0.8)) }
                let labels = (0..<5).map { $0 % network.classCount }
                let region = Self.region(.linf, points: points, width: 2, labels: labels, epsilon: 0.15)
                let ibp = IntervalBoundPropagation(network: network).bounds(region).margins
                let crown = CROWN(network: network)
                let crownMargins = crown.margins(region, workspace: .init(rows: crown.maximumRows, width: network.maximumWidth))
                for row in 0..<5 {
                    var grid: [[Double]] = []
                    let (c0, r0) = (region.center[row * 2], region.radius[row * 2])
                    let (c1, r1) = (region.center[row * 2 + 1], region.radius[row * 2 + 1])
                    for a in 0...100 {
                        for b in 0...100 {
                            let s = Double(a) / 50 - 1, t = Double(b) / 50 - 1
                            grid.append([c0 + r0 * s, c1 + r1 * t])
                        }
                    }
                    let truth = Self.sampledMinimumMargins(network, region, row: row, samples: grid)
                    for j in 0..<network.classCount where j != labels[row] {
                        let c = row * network.classCount + j
                        #expect(ibp[c] <= truth[j] + 1e-9, "IBP \(architecture) seed \(seed) row \(row) class \(j)")
                        #expect(crownMargins[c] <= truth[j] + 1e-9, "CROWN \(architecture) seed \(seed) row \(row) class \(j)")
                        #expect(crownMargins[c] >= ibp[c], "CROWN looser than IBP")
                    }
                }
            }
        }
    }

    @Test("CROWN is sound in 20 dimensions (corners and uniform points) and tighter than IBP on most margins")
    func highDimensional() throws {
        var tighter = 0, total = 0
        for seed in UInt64(1)...3 {
            let network = try Self.network("20-32-32-32-5", seed: seed)
            var generator = RandomGenerator(seed: seed, stream: RandomStream("test points"))
            let rows = 4
            let points = (0..<(rows * 20)).map { _ in Double(generator.nextFloat(in: 0, 1)) }
            let labels = (0..<rows).map { $0 % 5 }
            let region = Self.region(.linf, points: points, width: 20, labels: labels, epsilon: 0.05)
            let ibp = IntervalBoundPropagation(network: network).bounds(region).margins
            let crown = CROWN(network: network)
            let margins = crown.margins(region, workspace: .init(rows: crown.maximumRows, width: network.maximumWidth))
            for row in 0..<rows {
                let truth = Self.sampledMinimumMargins(network, region, row: row,
                                                       samples: Self.boxSamples(region, row: row, count: 8000, generator: &generator))
                for j in 0..<5 where j != labels[row] {
                    let c = row * 5 + j
                    #expect(margins[c] <= truth[j] + 1e-9)
                    #expect(ibp[c] <= margins[c])
                    total += 1
                    if margins[c] > ibp[c] + 1e-9 { tighter += 1 }
                }
            }
        }
        #expect(tighter * 2 > total, "CROWN tightened only \(tighter) of \(total) margins")
    }

    @Test("Bounds are exact for a linear classifier: the worst corner attains them")
    func linearExact() throws {
        let network = try Self.network("6-4", seed: 3)
        let points: [Double] = [0.5, 0.02, 0.98, 0.3, 0.7, 0.5]
        let region = Self.region(.linf, points: points, width: 6, labels: [2], epsilon: 0.1)
        let layer = network.affineLayers[0]
        for margins in [IntervalBoundPropagation(network: network).bounds(region).margins,
                        CROWN(network: network).margins(region, workspace: .init(rows: 4, width: 6))] {
            for j in 0..<4 where j != 2 {
                // The minimising corner: each pixel at the end the weight difference points away from.
                let corner = (0..<6).map { k in
                    layer.weight[2 * 6 + k] - layer.weight[j * 6 + k] >= 0 ? region.center[k] - region.radius[k]
                                                                          : region.center[k] + region.radius[k] }
                let logits = network.logits(corner, rows: 1)
                #expect(abs(margins[j] - (logits[2] - logits[j])) < 1e-12)
            }
        }
        // The box is clipped to [0, 1]: pixel 1 (0.02) reaches down to 0 only.
        #expect(abs(region.center[1] - 0.06) < 1e-15 && abs(region.radius[1] - 0.06) < 1e-15)
    }

    @Test("L2 balls: IBP, CROWN and Lipschitz bounds hold at points on and inside the sphere")
    func l2Soundness() throws {
        let network = try Self.network("10-24-24-4", seed: 5)
        var generator = RandomGenerator(seed: 5, stream: RandomStream("test points"))
        let rows = 3, epsilon = 0.3
        let points = (0..<(rows * 10)).map { _ in Double(generator.nextFloat(in: 0, 1)) }
        let labels = [0, 1, 3]
        let region = Self.region(.l2, points: points, width: 10, labels: labels, epsilon: epsilon)
        let crown = CROWN(network: network)
        let all = [IntervalBoundPropagation(network: network).bounds(region).margins,
                   crown.margins(region, workspace: .init(rows: crown.maximumRows, width: network.maximumWidth)),
                   try LipschitzBound(network: network).margins(region)]
        for row in 0..<rows {
            let samples = (0..<8000).map { s -> [Double] in
                let direction = (0..<10).map { _ in Double(generator.nextGaussian()) }
                let norm = direction.reduce(0) { $0 + $1 * $1 }.squareRoot()
                let scale = s % 2 == 0 ? epsilon : epsilon * Double(generator.nextFloat(in: 0, 1))
                return (0..<10).map { points[row * 10 + $0] + scale * direction[$0] / norm }
            }
            let truth = Self.sampledMinimumMargins(network, region, row: row, samples: samples)
            for margins in all {
                for j in 0..<4 where j != labels[row] { #expect(margins[row * 4 + j] <= truth[j] + 1e-9) }
            }
        }
        for c in 0..<(rows * 4) { #expect(all[1][c] >= all[0][c]) }
    }

    @Test("IBP is sound through tanh and sigmoid; CROWN refuses them and names the alternatives")
    func smoothActivations() throws {
        for activation in [Activation.tanh, .sigmoid] {
            let model = Sequential(spec: try ModelSpec.parse("8-16-16-3", activation: activation), seed: 2)
            let network = CertifiableNetwork(model)
            var generator = RandomGenerator(seed: 2, stream: RandomStream("test points"))
            let points = (0..<8).map { _ in Double(generator.nextFloat(in: 0, 1)) }
            let region = Self.region(.linf, points: points, width: 8, labels: [1], epsilon: 0.2)
            let margins = IntervalBoundPropagation(network: network).bounds(region).margins
            let truth = Self.sampledMinimumMargins(network, region, row: 0, samples: Self.boxSamples(region, row: 0, count: 5000, generator: &generator))
            for j in [0, 2] { #expect(margins[j] <= truth[j] + 1e-9) }
            #expect(throws: CertificationError.self) { try Certifier(model, method: .crown, norm: .linf) }
            do { _ = try Certifier(model, method: .crown, norm: .linf) } catch {
                #expect("\(error)".contains(activation.rawValue) && "\(error)".contains("--method ibp"))
            }
        }
    }

    @Test("Spectral norms from LAPACKE dgesdd match power iteration and known matrices")
    func spectralNorms() throws {
        // diag(3, 2, 0.5) padded to 3×5: σ_max = 3.
        var weight = [Double](repeating: 0, count: 15)
        weight[0] = 3; weight[6] = -2; weight[12] = 0.5
        let diagonal = CertifiableNetwork.AffineLayer(inputWidth: 5, outputWidth: 3, weight: weight, bias: [0, 0, 0])
        #expect(abs(try LipschitzBound.spectralNorm(diagonal) - 3) < 1e-12)
        // A rank-one matrix u vᵀ: σ_max = ‖u‖‖v‖.
        let u: [Double] = [1, 2, 2], v: [Double] = [3, 4]
        let rankOne = CertifiableNetwork.AffineLayer(inputWidth: 2, outputWidth: 3, weight: u.flatMap { a in v.map { a * $0 } }, bias: [0, 0, 0])
        #expect(abs(try LipschitzBound.spectralNorm(rankOne) - 15) < 1e-12)
        let network = try Self.network("784-256-256-10", seed: 7)
        for layer in network.affineLayers {
            let exact = try LipschitzBound.spectralNorm(layer)
            let iterated = LipschitzBound.spectralNormByPowerIteration(layer, iterations: 2000)
            #expect(abs(exact - iterated) / exact < 1e-3, "dgesdd \(exact) vs power iteration \(iterated)")
            #expect(iterated <= exact * (1 + 1e-12))
        }
    }
}

@Suite("CROWN in reduced precision")
struct ReducedPrecisionTests {
    @Test("Float32 products with their rounding bound stay close to the Float64 bounds (median 1e-4, worst 1e-2 relative)")
    func reducedPrecision() throws {
        let model = try ModelFile.load(contentsOf: TestSupport.repositoryRoot + "/models/mlp-pgd.safetensors").network
        let network = CertifiableNetwork(model)
        let data = try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .test, limit: 8)
        let region = InputRegion(norm: .linf, points: data.features.scalars.map(Double.init), width: 784, labels: data.labels,
                                 epsilons: [Double](repeating: 0.05, count: 8))
        let fast = CROWN(network: network), exact = CROWN(network: network, reducedPrecision: false)
        let a = fast.margins(region, workspace: .init(rows: fast.maximumRows, width: network.maximumWidth))
        let b = exact.margins(region, workspace: .init(rows: exact.maximumRows, width: network.maximumWidth))
        // Adaptive slopes may flip where an intermediate bound moves by the rounding slack, so single
        // bounds can move more than the slack itself; the bulk must not.
        let differences = a.indices.filter { a[$0].isFinite }.map { abs(a[$0] - b[$0]) / (1 + abs(b[$0])) }.sorted()
        #expect(differences[differences.count / 2] < 1e-4, "median relative difference \(differences[differences.count / 2])")
        #expect(differences.last! < 1e-2, "largest relative difference \(differences.last!)")
        #expect(differences.last! > 0, "the reduced-precision path was not taken")
    }
}

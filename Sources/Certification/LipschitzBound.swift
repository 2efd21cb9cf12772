import CBLAS

/// Lipschitz certificates for the L2 norm. Every affine map is Lipschitz with its spectral norm
/// σ_max(W) (computed exactly, by LAPACKE `dgesdd`), every activation with its own constant (1; ¼
/// for the sigmoid), so the margin z_y − z_j is Lipschitz with at most
/// ‖w_y − w_j‖₂ · Π_{layers before the last} σ_max(W_k) · Π Lip(σ) (the product bound; Szegedy et
/// al. 2014), and no input within L2 distance (z_y − z_j)(x) / L_yj of x changes the class
/// (Tsuzuku et al. 2018, "Lipschitz-Margin Training", with the pairwise constant instead of √2·L).
///
/// The bound is for L2. An L∞ ball of radius ε in d dimensions reaches L2 distance ε√d (2.8 for
/// ε = 0.1 on 784 pixels), so an L∞ certificate by this route is sound but weak.
struct LipschitzBound {
    let network: CertifiableNetwork
    /// σ_max of each affine layer, in `affineLayers` order.
    let spectralNorms: [Double]
    /// The Lipschitz constant (L2) of the map from the input to the last layer's input.
    let constantBeforeLastLayer: Double
    /// The Lipschitz constant of z_y − z_j at `y * classCount + j`.
    let marginConstants: [Double]

    init(network: CertifiableNetwork) throws {
        self.network = network
        spectralNorms = try network.affineLayers.map(Self.spectralNorm)
        var product = 1.0
        for operation in network.operations.dropLast() {
            switch operation {
            case .affine(let k): product *= spectralNorms[k]
            case .activation(let activation): product *= activation.lipschitzConstant
            }
        }
        constantBeforeLastLayer = product
        let classes = network.classCount
        marginConstants = (0..<(classes * classes)).map { [product] index in
            Self.marginConstant(network, index / classes, index % classes, constantBeforeLastLayer: product)
        }
    }

    /// The largest singular value of a layer's weight, from LAPACKE `dgesdd` (singular values only).
    static func spectralNorm(_ layer: CertifiableNetwork.AffineLayer) throws -> Double {
        var copy = layer.weight
        var singularValues = [Double](repeating: 0, count: min(layer.outputWidth, layer.inputWidth))
        let status = copy.withUnsafeMutableBufferPointer { a in
            singularValues.withUnsafeMutableBufferPointer { s in
                LAPACKE_dgesdd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), Int32(layer.outputWidth), Int32(layer.inputWidth),
                               a.baseAddress!, Int32(layer.inputWidth), s.baseAddress!, nil, Int32(layer.outputWidth), nil, Int32(layer.inputWidth))
            }
        }
        guard status == 0, let largest = singularValues.first, largest.isFinite else {
            throw CertificationError.numericalFailure("the singular values of a \(layer.outputWidth)×\(layer.inputWidth) layer "
                                                      + "did not converge (LAPACKE dgesdd status \(status)); are the weights finite?")
        }
        return largest
    }

    /// σ_max by power iteration on WᵀW, an independent check of `spectralNorm`.
    static func spectralNormByPowerIteration(_ layer: CertifiableNetwork.AffineLayer, iterations: Int = 500) -> Double {
        var v = [Double](repeating: 1 / Double(layer.inputWidth).squareRoot(), count: layer.inputWidth)
        var u = [Double](repeating: 0, count: layer.outputWidth)
        var estimate = 0.0
        for _ in 0..<iterations {
            cblas_dgemv(CblasRowMajor, CblasNoTrans, Int32(layer.outputWidth), Int32(layer.inputWidth), 1, layer.weight,
                        Int32(layer.inputWidth), v, 1, 0, &u, 1)
            estimate = cblas_dnrm2(Int32(layer.outputWidth), u, 1)
            guard estimate > 0 else { return 0 }
            cblas_dgemv(CblasRowMajor, CblasTrans, Int32(layer.outputWidth), Int32(layer.inputWidth), 1, layer.weight,
                        Int32(layer.inputWidth), u, 1, 0, &v, 1)
            let norm = cblas_dnrm2(Int32(layer.inputWidth), v, 1)
            guard norm > 0 else { return 0 }
            cblas_dscal(Int32(layer.inputWidth), 1 / norm, &v, 1)
        }
        return estimate
    }

    /// The Lipschitz constant of z_y − z_j (L2).
    func marginConstant(_ y: Int, _ j: Int) -> Double { marginConstants[y * network.classCount + j] }

    /// ‖w_y − w_j‖₂ (rows of the last layer) times the constant of the layers before it.
    private static func marginConstant(_ network: CertifiableNetwork, _ y: Int, _ j: Int, constantBeforeLastLayer: Double) -> Double {
        guard case .affine(let k)? = network.operations.last else { preconditionFailure("the last operation must be affine") }
        let layer = network.affineLayers[k]
        var squares = 0.0
        for c in 0..<layer.inputWidth {
            let d = layer.weight[y * layer.inputWidth + c] - layer.weight[j * layer.inputWidth + c]
            squares += d * d
        }
        return squares.squareRoot() * constantBeforeLastLayer
    }

    /// Lower bounds of z_y − z_j over each row's region (rows × classes, +∞ at j = y): the margin
    /// at the example minus the region's L2 reach times the margin's Lipschitz constant.
    func margins(_ region: InputRegion) -> [Double] {
        let classes = network.classCount
        let logits = network.logits(region.points, rows: region.rows)
        var margins = [Double](repeating: .infinity, count: region.rows * classes)
        for r in 0..<region.rows {
            let y = region.labels[r]
            let reach = region.l2Radius(row: r)
            for j in 0..<classes where j != y {
                margins[r * classes + j] = logits[r * classes + y] - logits[r * classes + j] - reach * marginConstant(y, j)
            }
        }
        return margins
    }
}

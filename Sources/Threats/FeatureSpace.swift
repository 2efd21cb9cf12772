import CBLAS
import NeuralNet
import TensorCore

/// What the poisoning defences look at: a trained network's penultimate activations (the input of
/// its last layer, as Tran et al. and Chen et al. use), and the linear algebra on them, in Double.
public enum FeatureSpace {
    /// Row i: the last layer's input for example i (rows × width, row-major).
    public static func penultimate(of network: Sequential, on data: LabeledData, batchSize: Int = 1000) throws -> (values: [Float], width: Int) {
        let model = network.inferenceModel(pool: network.pool)
        let width = model.featureWidth
        var values = [Float](repeating: 0, count: data.count * width)
        var logits = [Float](repeating: 0, count: batchSize * model.classCount)
        try data.features.withReadOnlyMatrix { x in
            try values.withUnsafeMutableBufferPointer { out in
                try logits.withUnsafeMutableBufferPointer { l in
                    var start = 0
                    while start < data.count {
                        let rows = min(batchSize, data.count - start)
                        try model.logits(x.rows(start..<(start + rows)),
                                         into: MatrixRef(l.baseAddress!, rows: rows, columns: model.classCount),
                                         features: MatrixRef(out.baseAddress! + start * width, rows: rows, columns: width))
                        start += rows
                    }
                }
            }
        }
        return (values, width)
    }

    /// The rows `indices` of `values` (width columns) as Double, centred on their mean.
    static func centredRows(_ values: [Float], width: Int, indices: [Int]) -> [Double] {
        var mean = [Double](repeating: 0, count: width)
        for i in indices { for j in 0..<width { mean[j] += Double(values[i * width + j]) } }
        for j in 0..<width { mean[j] /= Double(max(indices.count, 1)) }
        var result = [Double](repeating: 0, count: indices.count * width)
        for (r, i) in indices.enumerated() {
            for j in 0..<width { result[r * width + j] = Double(values[i * width + j]) - mean[j] }
        }
        return result
    }

    /// The `k` leading principal directions of centred rows (n × width): the eigenvectors of XᵀX
    /// with the largest eigenvalues (LAPACKE `dsyevd`), each as a row of the result (k × width).
    static func principalDirections(centred x: [Double], rows: Int, width: Int, k: Int) throws -> [Double] {
        var covariance = [Double](repeating: 0, count: width * width)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(width), Int32(rows), 1, x, Int32(width), 0, &covariance, Int32(width))
        var eigenvalues = [Double](repeating: 0, count: width)
        let status = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")), Int32(width),
                                    &covariance, Int32(width), &eigenvalues)
        guard status == 0 else {
            throw ThreatError.dataMismatch("the eigendecomposition of the feature covariance failed (LAPACKE dsyevd status \(status)); "
                                           + "the model's activations are probably not finite")
        }
        // Eigenvalues ascend; eigenvector j is column j.
        let k = min(k, width)
        var directions = [Double](repeating: 0, count: k * width)
        for d in 0..<k {
            let column = width - 1 - d
            for j in 0..<width { directions[d * width + j] = covariance[j * width + column] }
        }
        return directions
    }

    /// Rows projected onto directions: (rows × k).
    static func project(_ x: [Double], rows: Int, width: Int, onto directions: [Double], k: Int) -> [Double] {
        var result = [Double](repeating: 0, count: rows * k)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(k), Int32(width), 1, x, Int32(width),
                    directions, Int32(width), 0, &result, Int32(k))
        return result
    }

    /// Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii, 2007), the best of
    /// `restarts` runs by within-cluster sum of squares. Returns each row's cluster.
    static func kMeans(_ x: [Double], rows: Int, width: Int, k: Int, restarts: Int, generator: inout RandomGenerator) -> [Int] {
        precondition(rows >= k, "k-means needs at least \(k) rows")
        func distance(_ i: Int, _ c: [Double], _ j: Int) -> Double {
            var sum = 0.0
            for d in 0..<width { let t = x[i * width + d] - c[j * width + d]; sum += t * t }
            return sum
        }
        var best: (inertia: Double, assignment: [Int]) = (.infinity, [])
        for _ in 0..<restarts {
            var centres = [Double](repeating: 0, count: k * width)
            let first = generator.nextInt(below: rows)
            for d in 0..<width { centres[d] = x[first * width + d] }
            var nearest = (0..<rows).map { distance($0, centres, 0) }
            for c in 1..<k {
                let total = nearest.reduce(0, +)
                var target = Double(generator.nextUnitFloat()) * total
                var chosen = rows - 1
                for i in 0..<rows { target -= nearest[i]; if target <= 0 { chosen = i; break } }
                for d in 0..<width { centres[c * width + d] = x[chosen * width + d] }
                for i in 0..<rows { nearest[i] = min(nearest[i], distance(i, centres, c)) }
            }
            var assignment = [Int](repeating: 0, count: rows)
            var inertia = 0.0
            for _ in 0..<100 {
                var changed = false
                inertia = 0
                for i in 0..<rows {
                    var (bestCluster, bestDistance) = (0, Double.infinity)
                    for c in 0..<k { let dist = distance(i, centres, c); if dist < bestDistance { (bestCluster, bestDistance) = (c, dist) } }
                    if assignment[i] != bestCluster { assignment[i] = bestCluster; changed = true }
                    inertia += bestDistance
                }
                var counts = [Int](repeating: 0, count: k)
                let previous = centres
                centres = [Double](repeating: 0, count: k * width)
                for i in 0..<rows {
                    counts[assignment[i]] += 1
                    for d in 0..<width { centres[assignment[i] * width + d] += x[i * width + d] }
                }
                for c in 0..<k where counts[c] > 0 { for d in 0..<width { centres[c * width + d] /= Double(counts[c]) } }
                // An emptied cluster restarts at the row farthest from the centre it was assigned to.
                for c in 0..<k where counts[c] == 0 {
                    let farthest = (0..<rows).max { distance($0, previous, assignment[$0]) < distance($1, previous, assignment[$1]) } ?? 0
                    for d in 0..<width { centres[c * width + d] = x[farthest * width + d] }
                    changed = true
                }
                if !changed { break }
            }
            if inertia < best.inertia { best = (inertia, assignment) }
        }
        return best.assignment
    }
}

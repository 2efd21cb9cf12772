import CBLAS
import Foundation
import TensorCore

/// PRADA (Juuti et al. 2019, "PRADA: Protecting Against DNN Model Stealing Attacks", Algorithm 1):
/// model-extraction detection from one client's stream of queries. Natural inputs lie at
/// distances from each other that are close to normally distributed; the synthetic queries of
/// extraction attacks (Jacobian augmentation's small steps from earlier points, or noise) do not.
///
/// For each query x with predicted class c, d = min ‖x − y‖₂ over the class's growing set G_c; d
/// joins the class's minimum distances, and x joins G_c when d exceeds the class's threshold
/// T_c = max(T_c, mean − standard deviation of the distances that grew G_c, which start with the
/// 0 of the class's first input). Every `testInterval` queries, the distances of the classes with
/// at least 10 of them, without those more than 3 standard deviations from their mean, are
/// tested: once more than `minimumQueries` remain, the stream is flagged when their Shapiro–Wilk
/// W falls below δ. (The first input's 0, the 10-distance floor, the 3σ rejection and the
/// 10-query test interval follow the authors' published implementation; without them a Jacobian
/// stream against the shipped standard model is not told from benign traffic.)
///
/// These are the fitted settings (`bulwark serve fit-detectors`, δ from benign streams); a
/// `PRADAStream` holds one client's state.
public struct PRADADetector: Codable, Sendable, Equatable {
    /// Flag when W < δ.
    public var delta: Double
    /// Distances (after the outlier rejection) needed before a test: more than this many.
    public var minimumQueries: Int
    /// W is computed every `testInterval` queries.
    public var testInterval: Int
    /// Stored inputs per stream across the growing sets, split evenly between the classes (bounds
    /// the service's memory: 2,048 rows of 784 floats are 6.4 MB per key and model); a full class
    /// replaces its oldest input.
    public var maximumStoredInputs: Int

    enum CodingKeys: String, CodingKey {
        case delta, minimumQueries = "minimum_queries", testInterval = "test_interval", maximumStoredInputs = "maximum_stored_inputs"
    }

    public init(delta: Double, minimumQueries: Int = 100, testInterval: Int = 10, maximumStoredInputs: Int = 2048) {
        (self.delta, self.minimumQueries, self.testInterval, self.maximumStoredInputs) = (delta, minimumQueries, testInterval, maximumStoredInputs)
    }

    /// Why the settings cannot be used, or nil.
    public var problem: String? {
        guard delta.isFinite, delta > 0, delta < 1 else { return "delta must be in (0, 1)" }
        guard (3..<ShapiroWilk.sizes.upperBound).contains(minimumQueries) else { return "minimum_queries must be 3 to \(ShapiroWilk.sizes.upperBound - 1)" }
        guard (1...1000).contains(testInterval) else { return "test_interval must be 1 to 1000" }
        guard (1...1_000_000).contains(maximumStoredInputs) else { return "maximum_stored_inputs must be 1 to 1000000" }
        return nil
    }

    /// The largest δ that flags at most a fraction `rate` of benign streams, given the smallest W
    /// each benign stream reached (a stream whose W never falls below δ is never flagged). A
    /// little below that W, so that the benign stream it came from stays quiet.
    public static func delta(forBenignMinimumW minima: [Double], falsePositiveRate rate: Double) -> Double {
        let sorted = minima.sorted()
        guard !sorted.isEmpty else { return 0.5 }
        let allowed = Int((rate * Double(sorted.count)).rounded(.down))  // streams allowed below δ
        return max(1e-6, sorted[min(allowed, sorted.count - 1)] * (1 - 1e-6))
    }
}

extension PRADADetector {
    /// The smallest W a benign stream (rows × width, in the order sent, with the model's
    /// predictions) reaches under these settings, or nil if it is shorter than `minimumQueries`.
    public func minimumW(of stream: MatrixRef, predicted: [Int], classes: Int) -> Double? {
        var settings = self
        settings.delta = 1e-9  // never flags: only W is wanted
        let state = PRADAStream(settings: settings, width: stream.columns, classes: classes)
        state.observe(stream, predicted: predicted)
        return state.minimumW
    }
}

/// One client's PRADA state: its growing sets, their distance thresholds, and D (the most recent
/// `ShapiroWilk.sizes.upperBound` minimum distances). Not thread-safe: the service keeps one per
/// key behind a lock.
public final class PRADAStream {
    public let settings: PRADADetector
    public let width: Int
    /// Stored inputs per class: `maximumStoredInputs / classes` (at least 1). A full class replaces
    /// its oldest input, so a thief cannot freeze the sets with natural images and then go unseen.
    public let capacityPerClass: Int
    private var rows: [[Float]] = []        // G_c, row-major, `capacityPerClass` slots
    private var norms: [[Float]] = []       // ‖y‖² of each stored row
    private var counts: [Int] = []          // stored rows per class
    private var nextSlot: [Int] = []        // the slot the next stored row of a full class replaces
    // The distances that grew G_c (from the first input's 0), as a running mean and sum of squares (Welford).
    private var grewCount: [Double] = [], grewMean: [Double] = [], grewSquares: [Double] = []
    private var thresholds: [Double] = []   // T_c
    /// The most recent minimum distances with their classes (at most the test's largest sample).
    private var distances: [(class: Int, distance: Double)] = []
    private var dots: [Float] = []
    /// Queries observed.
    public private(set) var queries = 0
    /// The last query's distance to its class's growing set (nil for a class's first query).
    public private(set) var lastDistance: Double?
    /// The most recent W, when the distances were tested, and the query count it was tested at.
    public private(set) var lastW: Double?
    public private(set) var lastTestQueries: Int?
    /// The smallest W seen (fitting δ uses it).
    public private(set) var minimumW: Double?
    /// The query count at which W first fell below δ, and that W.
    public private(set) var flaggedAfter: Int?
    public private(set) var flaggedW: Double?
    /// Inputs stored across the classes (at most `capacityPerClass` × classes).
    public var storedInputs: Int { counts.reduce(0, +) }

    public init(settings: PRADADetector, width: Int, classes: Int) {
        (self.settings, self.width) = (settings, width)
        capacityPerClass = max(1, settings.maximumStoredInputs / max(classes, 1))
        rows = Array(repeating: [], count: classes)
        norms = Array(repeating: [], count: classes)
        counts = Array(repeating: 0, count: classes)
        nextSlot = Array(repeating: 0, count: classes)
        grewCount = Array(repeating: 0, count: classes)
        grewMean = Array(repeating: 0, count: classes)
        grewSquares = Array(repeating: 0, count: classes)
        thresholds = Array(repeating: 0, count: classes)
    }

    /// Observes one query (its `width` inputs and the class the model predicted).
    /// - Returns: true when this query flags the stream for the first time.
    @discardableResult
    public func observe(_ x: UnsafePointer<Float>, predicted c: Int) -> Bool {
        precondition(rows.indices.contains(c), "class \(c) out of range")
        queries += 1
        var squaredNorm: Float = 0
        for j in 0..<width { squaredNorm += x[j] * x[j] }
        if counts[c] == 0 {  // the class's first input
            lastDistance = nil
            store(x, norm: squaredNorm, class: c)
            grow(c, by: 0)
        } else {
            let d = nearestDistance(x, squaredNorm: squaredNorm, class: c)
            lastDistance = d
            distances.append((c, d))
            if distances.count > ShapiroWilk.sizes.upperBound { distances.removeFirst(distances.count - ShapiroWilk.sizes.upperBound) }
            if d > thresholds[c] {
                store(x, norm: squaredNorm, class: c)
                grow(c, by: d)
                let deviation = (grewSquares[c] / grewCount[c]).squareRoot()
                thresholds[c] = max(thresholds[c], grewMean[c] - deviation)
            }
        }
        guard queries % settings.testInterval == 0, let w = test() else { return false }
        (lastW, lastTestQueries) = (w, queries)
        minimumW = min(minimumW ?? w, w)
        guard w < settings.delta, flaggedAfter == nil else { return false }
        (flaggedAfter, flaggedW) = (queries, w)
        return true
    }

    /// Observes every row of `inputs` (rows × width) with its prediction.
    /// - Returns: true when one of them flags the stream for the first time.
    @discardableResult
    public func observe(_ inputs: MatrixRef, predicted: [Int]) -> Bool {
        var flagged = false
        for r in 0..<inputs.rows where observe(UnsafePointer(inputs.row(r)), predicted: predicted[r]) { flagged = true }
        return flagged
    }

    /// W of the distances of classes with at least 10, without 3σ outliers; nil if too few.
    private func test() -> Double? {
        var perClass = [Int](repeating: 0, count: rows.count)
        for entry in distances { perClass[entry.class] += 1 }
        let sample = distances.filter { perClass[$0.class] >= 10 }.map(\.distance)
        guard sample.count > settings.minimumQueries else { return nil }
        let mean = sample.reduce(0, +) / Double(sample.count)
        let deviation = (sample.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(sample.count)).squareRoot()
        let kept = sample.filter { abs($0 - mean) < 3 * deviation }
        guard kept.count > settings.minimumQueries else { return nil }
        return ShapiroWilk.statistic(kept)
    }

    /// min ‖x − y‖₂ over G_c: ‖x‖² + ‖y‖² − 2 x·y for every y (one GEMV) finds the nearest, whose
    /// distance is then computed directly (no cancellation between large terms on near-duplicates).
    private func nearestDistance(_ x: UnsafePointer<Float>, squaredNorm: Float, class c: Int) -> Double {
        let count = counts[c]
        if dots.count < count { dots = [Float](repeating: 0, count: max(count, 2 * dots.count)) }
        rows[c].withUnsafeBufferPointer { g in
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(count), Int32(width), 1, g.baseAddress, Int32(width), x, 1, 0, &dots, 1)
        }
        var nearest = 0, best = Float.infinity
        for i in 0..<count {
            let squared = squaredNorm + norms[c][i] - 2 * dots[i]
            if squared < best { (best, nearest) = (squared, i) }
        }
        var exact: Double = 0
        rows[c].withUnsafeBufferPointer { g in
            let y = g.baseAddress! + nearest * width
            for j in 0..<width { let t = Double(x[j]) - Double(y[j]); exact += t * t }
        }
        return exact.squareRoot()
    }

    /// Adds x to G_c, replacing the class's oldest input when it is full.
    private func store(_ x: UnsafePointer<Float>, norm: Float, class c: Int) {
        let values = UnsafeBufferPointer(start: x, count: width)
        if counts[c] < capacityPerClass {
            rows[c].append(contentsOf: values)
            norms[c].append(norm)
            counts[c] += 1
        } else {
            let slot = nextSlot[c]
            rows[c].replaceSubrange((slot * width)..<((slot + 1) * width), with: values)
            norms[c][slot] = norm
            nextSlot[c] = (slot + 1) % capacityPerClass
        }
    }

    /// One more distance that grew G_c, into its running mean and sum of squared deviations.
    private func grow(_ c: Int, by d: Double) {
        grewCount[c] += 1
        let delta = d - grewMean[c]
        grewMean[c] += delta / grewCount[c]
        grewSquares[c] += delta * (d - grewMean[c])
    }
}

import Attacks
import Certification
import Foundation
import TensorCore
import _FileSystem

/// The JSON report of `bulwark bench` (schema `bulwark-report/2`): the full configuration, seeds,
/// model SHA-256s, Bulwark version, machine, every measurement with n and a 95% Wilson interval,
/// and each model's results as generic `Metric`s, which the gate compares. The schema only holds
/// data; renderers (`MarkdownReport`) turn it into text.
///
/// Version-1 reports still decode (their metrics are derived from their accuracies), so an older
/// baseline keeps working with `bulwark gate`.
public struct BenchReport: Codable, Equatable, Sendable {
    public static let schema = "bulwark-report/2"
    public static let readableSchemas = ["bulwark-report/1", schema]

    public var schema: String
    public var bulwarkVersion: String
    public var created: String
    public var machine: Machine
    public var configuration: BenchConfiguration
    public var data: String
    /// SHA-256 of the test examples used (`LabeledData.contentDigest`); nil in reports of older versions.
    public var dataSHA256: String?
    /// The test examples' labels (n of them; nil in reports of older versions): with the
    /// per-example outcomes, they give any metric per class.
    public var labels: [Int]?
    public var n: Int
    public var models: [ModelResult]
    /// The configuration's threat experiments, each with its rows of metrics (nil when none ran).
    public var threats: [ThreatResult]?

    /// One threat experiment's results: a subject per row (a poison rate, a membership target).
    public struct ThreatResult: Codable, Equatable, Sendable {
        public var name: String
        public var type: String
        public var subjects: [ThreatReport.Subject]
        public var seconds: Double

        public init(name: String, type: String, subjects: [ThreatReport.Subject], seconds: Double) {
            self.name = name
            self.type = type
            self.subjects = subjects
            self.seconds = seconds
        }
    }

    public init(bulwarkVersion: String = BulwarkVersion.current, created: String, machine: Machine,
                configuration: BenchConfiguration, data: String, dataSHA256: String? = nil, n: Int, models: [ModelResult],
                threats: [ThreatResult]? = nil) {
        schema = Self.schema
        self.bulwarkVersion = bulwarkVersion
        self.created = created
        self.machine = machine
        self.configuration = configuration
        self.data = data
        self.dataSHA256 = dataSHA256
        self.n = n
        self.models = models
        self.threats = threats
    }

    public struct Machine: Codable, Equatable, Sendable {
        public var hostname: String
        public var operatingSystem: String
        public var cpu: String
        public var cores: Int
        public var memoryBytes: UInt64
        public var threads: Int
        /// The OpenBLAS kernel family and why (`BLAS.kernels`); absent in reports before it was recorded.
        public var blasKernels: String?

        enum CodingKeys: String, CodingKey {
            case hostname, cpu, cores, threads
            case operatingSystem = "operating_system", memoryBytes = "memory_bytes", blasKernels = "blas_kernels"
        }

        /// Facts about this machine.
        public static func current(threads: Int) -> Machine {
            let info = ProcessInfo.processInfo
            let cpuInfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
            let model = cpuInfo.split(separator: "\n").first { $0.hasPrefix("model name") }
                .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown"
            return Machine(hostname: info.hostName, operatingSystem: info.operatingSystemVersionString, cpu: model,
                           cores: info.activeProcessorCount, memoryBytes: info.physicalMemory, threads: threads,
                           blasKernels: BLAS.kernels.description)
        }
    }

    /// An accuracy with its sample size and 95% Wilson interval.
    public struct Accuracy: Codable, Equatable, Sendable {
        public var accuracy: Double
        public var correct: Int
        public var n: Int
        public var ci95: [Double]

        public init(_ proportion: Proportion) {
            accuracy = proportion.value
            correct = proportion.successes
            n = proportion.trials
            let (lower, upper) = proportion.wilsonInterval()
            ci95 = [lower, upper]
        }

        public var proportion: Proportion { Proportion(successes: correct, trials: n) }
    }

    public struct AttackResult: Codable, Equatable, Sendable {
        public var attack: String
        public var description: String
        public var norm: Norm?
        public var epsilon: Float
        public var accuracy: Accuracy
        /// Untargeted: fooled among correctly classified inputs; targeted: reached the target among
        /// attacked inputs.
        public var successRate: Double
        public var successes: Int?
        /// The denominator of the success rate.
        public var successTrials: Int?
        public var meanPerturbation: Double
        public var maxPerturbation: Float
        public var seconds: Double
        public var imagesPerSecond: Double
        /// Iterative attacks: robust accuracy had the attack stopped after 10, 20, 50, 100, …
        /// iterations (queries for Square), at the end of each restart or target run, and at the end.
        public var convergence: [ConvergencePoint]?
        /// Minimum-norm attacks (DeepFool, C&W-L2, DDN): what one run says at every ε.
        public var minimalNorm: MinimalNorm?

        /// Each example's minimal ‖δ‖ in the attack's norm (nil where none was found, 0 where the
        /// clean input is misclassified), their median over the examples classified correctly clean
        /// (nil when fewer than half were fooled), and the robust accuracy that follows at
        /// ¼, ½, 1, 2 and 4 times the cell's ε (an example is robust at ε′ if it is correct clean and
        /// its minimal norm exceeds ε′).
        public struct MinimalNorm: Codable, Equatable, Sendable {
            public var median: Float?
            public var norms: [Float?]
            public var curve: [CurvePoint]

            public struct CurvePoint: Codable, Equatable, Sendable {
                public var epsilon: Float
                public var accuracy: Double
            }

            public init(median: Float?, norms: [Float?], curve: [CurvePoint]) {
                self.median = median
                self.norms = norms
                self.curve = curve
            }
        }

        public struct ConvergencePoint: Codable, Equatable, Sendable {
            public var iterations: Int
            public var accuracy: Double

            public init(iterations: Int, accuracy: Double) {
                self.iterations = iterations
                self.accuracy = accuracy
            }
        }

        public init(attack: String, description: String, norm: Norm?, epsilon: Float, accuracy: Accuracy, success: Proportion,
                    meanPerturbation: Double, maxPerturbation: Float, seconds: Double, imagesPerSecond: Double) {
            self.attack = attack
            self.description = description
            self.norm = norm
            self.epsilon = epsilon
            self.accuracy = accuracy
            successRate = success.value
            successes = success.successes
            successTrials = success.trials
            self.meanPerturbation = meanPerturbation
            self.maxPerturbation = maxPerturbation
            self.seconds = seconds
            self.imagesPerSecond = imagesPerSecond
        }

        enum CodingKeys: String, CodingKey {
            case attack, description, norm, epsilon, accuracy, seconds, successes, convergence
            case minimalNorm = "minimal_norm"
            case successRate = "success_rate", successTrials = "success_n", meanPerturbation = "mean_perturbation"
            case maxPerturbation = "max_perturbation", imagesPerSecond = "images_per_second"
        }
    }

    /// Per-example worst case over all attacks of one norm at one ε: an example is robust only if it
    /// is classified correctly and every attack failed on it.
    public struct WorstCase: Codable, Equatable, Sendable {
        public var norm: Norm?
        public var epsilon: Float
        public var accuracy: Accuracy

        public init(norm: Norm?, epsilon: Float, accuracy: Accuracy) {
            self.norm = norm
            self.epsilon = epsilon
            self.accuracy = accuracy
        }
    }

    /// Certified accuracy by one method at one ε: classified correctly and provably robust on the
    /// whole ball (a lower bound of robust accuracy, where attacks give an upper bound).
    public struct CertifiedResult: Codable, Equatable, Sendable {
        public var method: String
        public var norm: Norm
        public var epsilon: Float
        public var accuracy: Accuracy
        public var seconds: Double

        public init(method: String, norm: Norm, epsilon: Float, accuracy: Accuracy, seconds: Double) {
            self.method = method
            self.norm = norm
            self.epsilon = epsilon
            self.accuracy = accuracy
            self.seconds = seconds
        }
    }

    public struct CheckResult: Codable, Equatable, Sendable {
        public var id: String
        public var title: String
        public var passed: Bool
        public var message: String
        public var documentation: String
    }

    public struct ModelResult: Codable, Equatable, Sendable {
        public var name: String
        public var path: String
        public var sha256: String
        public var architecture: String
        public var parameters: Int
        public var clean: Accuracy
        public var attacks: [AttackResult]
        public var worstCase: [WorstCase]
        public var checks: [CheckResult]
        /// Certified accuracies (lower bounds), when the configuration asks for them.
        public var certified: [CertifiedResult]?
        /// Every number above as a generic metric (what the gate compares).
        public var metrics: [Metric]

        public init(name: String, path: String, sha256: String, architecture: String, parameters: Int, clean: Accuracy,
                    attacks: [AttackResult], worstCase: [WorstCase], checks: [CheckResult], metrics: [Metric]? = nil) {
            self.name = name
            self.path = path
            self.sha256 = sha256
            self.architecture = architecture
            self.parameters = parameters
            self.clean = clean
            self.attacks = attacks
            self.worstCase = worstCase
            self.checks = checks
            self.metrics = metrics ?? Self.derivedMetrics(clean: clean, attacks: attacks, worstCase: worstCase)
        }

        enum CodingKeys: String, CodingKey {
            case name, path, sha256, architecture, parameters, clean, attacks, checks, metrics, certified
            case worstCase = "worst_case"
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(name: try c.decode(String.self, forKey: .name), path: try c.decode(String.self, forKey: .path),
                      sha256: try c.decode(String.self, forKey: .sha256), architecture: try c.decode(String.self, forKey: .architecture),
                      parameters: try c.decode(Int.self, forKey: .parameters), clean: try c.decode(Accuracy.self, forKey: .clean),
                      attacks: try c.decode([AttackResult].self, forKey: .attacks),
                      worstCase: try c.decode([WorstCase].self, forKey: .worstCase),
                      checks: try c.decode([CheckResult].self, forKey: .checks),
                      metrics: try c.decodeIfPresent([Metric].self, forKey: .metrics))
            certified = try c.decodeIfPresent([CertifiedResult].self, forKey: .certified)
        }

        /// Metric names: `clean`, `<attack> ε=<ε>`, `worst case ε=<ε>` (with the norm when the
        /// worst case is not L∞).
        public static func metricName(attack: String, epsilon: Float) -> String { "\(attack) ε=\(formatEpsilon(epsilon))" }
        public static func worstCaseName(norm: Norm?, epsilon: Float) -> String {
            "worst case" + (norm == nil || norm == .linf ? "" : " \(norm!.rawValue)") + " ε=\(formatEpsilon(epsilon))"
        }

        /// `certified CROWN ε=0.1` (with the norm when it is not L∞), the name `CertificationResult` uses.
        public static func certifiedName(method: CertificationMethod, norm: Norm, epsilon: Float) -> String {
            CertificationResult.metricName(method: method, norm: norm, epsilon: Double(epsilon))
        }

        /// The metrics of a version-1 report (no per-example outcomes).
        static func derivedMetrics(clean: Accuracy, attacks: [AttackResult], worstCase: [WorstCase]) -> [Metric] {
            [Metric.accuracy("clean", clean.proportion)]
                + attacks.map { Metric.accuracy(metricName(attack: $0.attack, epsilon: $0.epsilon), $0.accuracy.proportion) }
                + worstCase.map { Metric.accuracy(worstCaseName(norm: $0.norm, epsilon: $0.epsilon), $0.accuracy.proportion) }
        }
    }

    enum CodingKeys: String, CodingKey {
        case schema, created, machine, configuration, data, n, models, threats, labels
        case bulwarkVersion = "bulwark_version", dataSHA256 = "data_sha256"
    }

    /// Failed checks over all models.
    public var failedChecks: [(model: String, check: CheckResult)] {
        models.flatMap { model in model.checks.filter { !$0.passed }.map { (model.name, $0) } }
    }

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }

    /// Reads a report, checking its schema.
    /// - Throws: `BenchError.invalidReport` naming the file and the problem.
    public static func decode(_ data: Data, source: String) throws -> BenchReport {
        struct Header: Decodable { let schema: String }
        guard let header = try? JSONDecoder().decode(Header.self, from: data) else {
            throw BenchError.invalidReport(path: source, problem: "it is not a JSON object with a \"schema\"")
        }
        guard readableSchemas.contains(header.schema) else {
            throw BenchError.invalidReport(path: source, problem: "its schema is '\(header.schema)', this Bulwark reads \(readableSchemas.joined(separator: " and "))")
        }
        let report: BenchReport
        do {
            report = try StrictJSON.decodeRejectingUnknownFields(BenchReport.self, from: data)
        } catch {
            throw BenchError.invalidReport(path: source, problem: "it does not parse (\(decodingErrorText(error)))")
        }
        if let problem = report.impossibleValue() {
            throw BenchError.invalidReport(path: source, problem: "it holds an impossible value: \(problem)")
        }
        return report
    }

    /// The first value no bench could have produced, if any: a report is data, and a gate decision
    /// must not rest on an accuracy of 1.5, more correct examples than examples, an interval that
    /// does not contain its value, or a report with no models.
    public func impossibleValue() -> String? {
        guard n > 0 else { return "n is \(n); a report covers at least one example" }
        guard !models.isEmpty else { return "it lists no models" }
        func check(_ a: Accuracy, _ what: String) -> String? {
            guard a.n == n else { return "\(what) has n = \(a.n), the report \(n)" }
            guard a.correct >= 0, a.correct <= a.n else { return "\(what) has \(a.correct) correct of \(a.n)" }
            guard a.accuracy.isFinite, abs(a.accuracy - Double(a.correct) / Double(a.n)) < 1e-9 else {
                return "\(what) has accuracy \(a.accuracy), but \(a.correct) of \(a.n) is \(Double(a.correct) / Double(a.n))"
            }
            guard a.ci95.count == 2, 0 <= a.ci95[0], a.ci95[0] <= a.accuracy + 1e-9, a.accuracy <= a.ci95[1] + 1e-9, a.ci95[1] <= 1 else {
                return "\(what) has the 95% interval \(a.ci95), which does not contain \(a.accuracy) within [0, 1]"
            }
            return nil
        }
        for model in models {
            if let problem = check(model.clean, "\(model.name) clean") { return problem }
            for attack in model.attacks {
                if let problem = check(attack.accuracy, "\(model.name) \(attack.attack) ε = \(attack.epsilon)") { return problem }
                if let problem = attack.impossibleValue() { return "\(model.name) \(problem)" }
            }
            for worst in model.worstCase {
                if let problem = check(worst.accuracy, "\(model.name) worst case ε = \(worst.epsilon)") { return problem }
            }
            for metric in model.metrics {
                if let problem = metric.impossibleValue() { return "\(model.name) metric \(metric.name) \(problem)" }
            }
        }
        if let labels {
            guard labels.count == n else { return "it has \(labels.count) labels for n = \(n) examples" }
            guard labels.allSatisfy({ (0..<100_000).contains($0) }) else { return "it has a label outside 0…99999" }
        }
        for threat in threats ?? [] {
            for subject in threat.subjects {
                for metric in subject.metrics {
                    if let problem = metric.impossibleValue() { return "threat \(threat.name) \(subject.name) metric \(metric.name) \(problem)" }
                }
            }
        }
        return nil
    }
}

extension BenchReport.AttackResult {
    /// The first number of an attack's row no attack could have produced (beyond its accuracy):
    /// a rate outside [0, 1], a negative or infinite time or perturbation, a curve point outside
    /// [0, 1] or at no iteration, a minimal norm below 0.
    public func impossibleValue() -> String? {
        guard attack.isEmpty == false, epsilon.isFinite, epsilon >= 0 else { return "an attack row has no name or an ε of \(epsilon)" }
        let label = "\(attack) ε = \(epsilon)"
        guard (0...1).contains(successRate) else { return "\(label) has success rate \(successRate)" }
        guard meanPerturbation.isFinite, meanPerturbation >= 0, maxPerturbation.isFinite, maxPerturbation >= 0 else {
            return "\(label) has a perturbation of \(meanPerturbation) (mean) or \(maxPerturbation) (max)"
        }
        guard seconds.isFinite, seconds >= 0, imagesPerSecond.isFinite, imagesPerSecond >= 0 else {
            return "\(label) took \(seconds) s at \(imagesPerSecond) images/s"
        }
        for point in convergence ?? [] where !(point.iterations > 0 && (0...1).contains(point.accuracy)) {
            return "\(label) has a convergence point of \(point.accuracy) after \(point.iterations) iterations"
        }
        if let minimalNorm {
            guard minimalNorm.norms.allSatisfy({ $0.map { $0.isFinite && $0 >= 0 } ?? true }), minimalNorm.median.map({ $0.isFinite && $0 >= 0 }) ?? true,
                  minimalNorm.curve.allSatisfy({ (0...1).contains($0.accuracy) && $0.epsilon.isFinite }) else {
                return "\(label) has a minimal norm or curve point out of range"
            }
        }
        return nil
    }
}

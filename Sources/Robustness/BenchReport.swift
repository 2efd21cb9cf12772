import Foundation
import TensorCore
import _FileSystem

/// The JSON report of `bulwark bench` (schema `bulwark-report/1`): the full configuration, seeds,
/// model SHA-256s, Bulwark version, machine, and every measurement with n and a 95% Wilson interval.
public struct BenchReport: Codable, Equatable, Sendable {
    public static let schema = "bulwark-report/1"

    public var schema: String
    public var bulwarkVersion: String
    public var created: String
    public var machine: Machine
    public var configuration: BenchConfiguration
    public var data: String
    public var n: Int
    public var models: [ModelResult]

    public struct Machine: Codable, Equatable, Sendable {
        public var hostname: String
        public var operatingSystem: String
        public var cpu: String
        public var cores: Int
        public var memoryBytes: UInt64
        public var threads: Int

        enum CodingKeys: String, CodingKey {
            case hostname, cpu, cores, threads
            case operatingSystem = "operating_system", memoryBytes = "memory_bytes"
        }

        /// Facts about this machine.
        public static func current(threads: Int) -> Machine {
            let info = ProcessInfo.processInfo
            let cpuInfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
            let model = cpuInfo.split(separator: "\n").first { $0.hasPrefix("model name") }
                .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown"
            return Machine(hostname: info.hostName, operatingSystem: info.operatingSystemVersionString, cpu: model,
                           cores: info.activeProcessorCount, memoryBytes: info.physicalMemory, threads: threads)
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
    }

    public struct AttackResult: Codable, Equatable, Sendable {
        public var attack: String
        public var description: String
        public var epsilon: Float
        public var accuracy: Accuracy
        /// Untargeted success rate among correctly classified inputs.
        public var successRate: Double
        public var meanPerturbation: Double
        public var maxPerturbation: Float
        public var seconds: Double
        public var imagesPerSecond: Double

        enum CodingKeys: String, CodingKey {
            case attack, description, epsilon, accuracy, seconds
            case successRate = "success_rate", meanPerturbation = "mean_perturbation"
            case maxPerturbation = "max_perturbation", imagesPerSecond = "images_per_second"
        }
    }

    /// Per-example worst case over all attacks at one ε: an example is robust only if it is
    /// classified correctly and every attack failed on it.
    public struct WorstCase: Codable, Equatable, Sendable {
        public var epsilon: Float
        public var accuracy: Accuracy
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

        enum CodingKeys: String, CodingKey {
            case name, path, sha256, architecture, parameters, clean, attacks, checks
            case worstCase = "worst_case"
        }
    }

    enum CodingKeys: String, CodingKey {
        case schema, created, machine, configuration, data, n, models
        case bulwarkVersion = "bulwark_version"
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
        let report: BenchReport
        do {
            report = try JSONDecoder().decode(BenchReport.self, from: data)
        } catch {
            throw BenchError.invalidReport(path: source, problem: "it does not parse (\(decodingErrorText(error)))")
        }
        guard report.schema == schema else {
            throw BenchError.invalidReport(path: source, problem: "its schema is '\(report.schema)', this Bulwark reads '\(schema)'")
        }
        return report
    }

    // MARK: - Markdown

    /// Clean vs. adversarial accuracy per model and attack across the ε grid, with 95% intervals,
    /// then timing and the sanity checks.
    public var markdown: String {
        let epsilons = configuration.epsilons
        func cell(_ a: Accuracy) -> String {
            String(format: "%.4f (%.3f–%.3f)", a.accuracy, a.ci95[0], a.ci95[1])
        }
        var lines: [String] = []
        lines.append("## Clean vs. adversarial accuracy (\(data), n = \(n), seed \(configuration.seed))")
        lines.append("")
        lines.append("| model | attack | " + epsilons.map { "ε = \(format($0))" }.joined(separator: " | ") + " |")
        lines.append("|---|---|" + String(repeating: "---|", count: epsilons.count))
        for model in models {
            for attack in configuration.attacks {
                let cells = epsilons.map { epsilon -> String in
                    epsilon == 0 ? cell(model.clean)
                        : model.attacks.first { $0.attack == attack.name && $0.epsilon == epsilon }.map { cell($0.accuracy) } ?? "–"
                }
                lines.append("| \(model.name) | \(attack.name) | " + cells.joined(separator: " | ") + " |")
            }
            let worst = epsilons.map { epsilon -> String in
                epsilon == 0 ? cell(model.clean) : model.worstCase.first { $0.epsilon == epsilon }.map { cell($0.accuracy) } ?? "–"
            }
            lines.append("| \(model.name) | **worst case** | " + worst.joined(separator: " | ") + " |")
        }
        lines.append("")
        lines.append("Accuracy (95% Wilson interval); ε = 0 is clean accuracy; L∞ budgets on pixels in [0, 1]. "
                     + "Worst case: an example counts as robust only if every attack failed on it.")
        lines.append("")
        lines.append("| model | attack | ε | success rate | mean ‖δ‖ | max ‖δ‖ | seconds | images/s |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for model in models {
            for result in model.attacks {
                lines.append("| \(model.name) | \(result.attack) | \(format(result.epsilon)) | "
                             + String(format: "%.4f | %.4f | %.4f | %.2f | %.0f |", result.successRate, result.meanPerturbation,
                                      Double(result.maxPerturbation), result.seconds, result.imagesPerSecond))
            }
        }
        lines.append("")
        for model in models {
            let sha = model.sha256.prefix(16)
            lines.append("- \(model.name): `\(model.path)` (\(model.architecture), sha256 \(sha)…)")
        }
        let failed = failedChecks
        lines.append("")
        if failed.isEmpty {
            lines.append("Sanity checks: all \(models.flatMap(\.checks).count) passed (docs/sanity-checks.md).")
        } else {
            lines.append("Sanity checks failed:")
            for (model, check) in failed {
                lines.append("- **\(check.id)** \(model): \(check.message) (see \(check.documentation))")
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// ε as short text (0.05, not 0.0500000007).
func format(_ epsilon: Float) -> String {
    let text = String(format: "%g", Double(epsilon))
    return text
}

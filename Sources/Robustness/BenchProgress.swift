import Attacks
import Foundation

/// Where a bench run stands: the cell starting now, how many are done, and an estimate of the time
/// left from the work done so far, weighted by each cell's rough cost (`BenchConfiguration.cost`).
public struct BenchProgress: Sendable {
    public let cell: BenchCell
    /// Cells finished before this one, and the run's total (a shard's, when sharded).
    public let done: Int
    public let total: Int
    /// Of the run's estimated work, the part done (0…1).
    public let fractionDone: Double
    public let secondsElapsed: Double
    /// nil until a cell has finished.
    public let secondsRemaining: Double?

    /// One line without a terminal: `bench 12/57 (34%, about 2 min left): pgd: APGD-T ε = 0.1`.
    public var line: String {
        "bench \(done + 1)/\(total) (\(Int((fractionDone * 100).rounded(.down)))%\(secondsRemaining.map { ", " + Self.duration($0) + " left" } ?? "")): \(cell)"
    }

    /// `about 40 s`, `about 3 min`, `about 1 h 20 min`.
    public static func duration(_ seconds: Double) -> String {
        let s = max(0, Int(seconds.rounded()))
        if s < 90 { return "about \(s) s" }
        if s < 5400 { return "about \((s + 30) / 60) min" }
        return "about \(s / 3600) h \((s % 3600 + 30) / 60) min"
    }
}

extension BenchConfiguration {
    /// A cell's rough cost in gradient evaluations per example, to weight progress: an attack's
    /// iteration budget (a quarter per query for a black-box attack, which needs no backward pass;
    /// AutoAttack as its stages), a certificate and a model's checks as a few dozen, a threat
    /// experiment as the models it trains.
    public func cost(of cell: BenchCell, classes: Int = 10) -> Double {
        switch cell {
        case let .attack(_, name, _):
            guard let spec = attacks.first(where: { $0.name == name })?.spec else { return 1 }
            if case let .autoattack(parameters) = spec {
                return Double(100 + 100 * 9 + 100 * 9) + Double(parameters.squareQueries) / 4
            }
            let budget = Double(spec.iterationBudget(classes: classes)?.total ?? 1)
            return (spec.isBlackBox ? budget / 4 : budget) + 2  // + the forward passes around the attack
        case .certify: return 20
        case .checks: return 300
        case .threat: return 20_000
        }
    }
}

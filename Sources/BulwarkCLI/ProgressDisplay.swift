import Foundation
import NeuralNet
import Robustness

/// A progress bar on stderr when it is a terminal; silent otherwise (CI logs get one line per epoch
/// from the command instead). For bench, a status line (overall progress, the current cell, the time
/// left) kept below the log lines on a terminal, and a plain line per cell otherwise.
final class ProgressDisplay {
    private let enabled: Bool
    private var lastDraw: UInt64 = 0
    /// The bench status line, redrawn after every log line (terminal only).
    private var status: String?
    /// When training progress was first drawn, and how far the run was then (for the time left).
    private var trainingStart: (Date, Double)?

    init(enabled: Bool = Console.stderrIsTerminal) { self.enabled = enabled }

    func update(_ progress: TrainingProgress) {
        guard enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        guard now - lastDraw > 100_000_000 || progress.step == progress.stepsPerEpoch else { return }
        lastDraw = now
        let width = 30
        let fraction = Double(progress.step) / Double(progress.stepsPerEpoch)
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        // The time left for the whole run, from the epochs and steps done since the first update.
        let overall = (Double(progress.epoch - 1) + fraction) / Double(max(progress.epochs, 1))
        if trainingStart == nil { trainingStart = (Date(), overall) }
        let (start, startFraction) = trainingStart!
        let elapsed = Date().timeIntervalSince(start)
        let left = overall > startFraction && elapsed > 2
            ? "  " + BenchProgress.duration(elapsed / (overall - startFraction) * (1 - overall)) + " left" : ""
        let text = "\r\u{1B}[Kepoch \(progress.epoch)/\(progress.epochs) [\(bar)] \(Int(fraction * 100))%  loss \(progress.runningLoss.formatted(4))\(left)"
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// A bench cell is starting.
    func update(_ progress: BenchProgress) {
        guard enabled else {
            log.info("\(progress.line)")
            return
        }
        let width = 24
        let filled = min(width, Int(progress.fractionDone * Double(width)))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let left = progress.secondsRemaining.map { " · " + BenchProgress.duration($0) + " left" } ?? ""
        status = "bench [\(bar)] \(progress.done + 1)/\(progress.total) cells \(Int(progress.fractionDone * 100))%\(left) · \(progress.cell)"
        drawStatus()
    }

    /// Writes log lines with `body` above the bench status line.
    func aboveStatus(_ body: () -> Void) {
        guard enabled, status != nil else { return body() }
        finishLine()
        body()
        drawStatus()
    }

    private func drawStatus() {
        guard let status else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(status)".utf8))
    }

    /// Removes the bench status line for good (the run is over).
    func endStatus() {
        guard status != nil else { return }
        status = nil
        finishLine()
    }

    /// Clears the bar so the next line starts clean.
    func finishLine() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

/// Progress of models trained side by side (threat experiments), safe to call from worker threads:
/// on a terminal a status line (`models 12/68 · about 3 min left`), otherwise a plain line per model.
final class ModelTrainingProgress: @unchecked Sendable {
    private let lock = NSLock()
    private let enabled: Bool
    private let label: String
    private var started = Date()

    init(_ label: String, enabled: Bool = Console.stderrIsTerminal) {
        self.label = label
        self.enabled = enabled
    }

    func update(done: Int, total: Int) {
        lock.lock()
        defer { lock.unlock() }
        if done == 0 {  // a new stage starts
            started = Date()
            return
        }
        let elapsed = Date().timeIntervalSince(started)
        let left = done < total ? " · " + BenchProgress.duration(elapsed / Double(max(done, 1)) * Double(total - done)) + " left" : ""
        let text = "\(label): \(done)/\(total) models trained\(left)"
        if enabled {
            FileHandle.standardError.write(Data("\r\u{1B}[K\(text)\(done == total ? "\n" : "")".utf8))
        } else {
            log.info("\(text)")
        }
    }
}

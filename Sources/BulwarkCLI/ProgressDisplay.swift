import Foundation
import NeuralNet

/// A progress bar on stderr when it is a terminal; silent otherwise (CI logs get one line per epoch
/// from the command instead).
final class ProgressDisplay {
    private let enabled: Bool
    private var lastDraw: UInt64 = 0

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
        let text = "\repoch \(progress.epoch)/\(progress.epochs) [\(bar)] \(Int(fraction * 100))%  loss \(progress.runningLoss.formatted(4))"
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Clears the bar so the next line starts clean.
    func finishLine() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

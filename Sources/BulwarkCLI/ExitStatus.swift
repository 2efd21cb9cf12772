import ArgumentParser
import Attacks
import Certification
import Datasets
import Foundation
import NeuralNet
import Robustness
import BulwarkSecurity
import Threats
import Training
import _FileSystem

/// Bulwark's exit codes, the same for every command (README, "Exit codes"):
///
/// | code | meaning |
/// |---|---|
/// | 0 | success |
/// | 1 | the command ran and a check failed: a gate regression, a failed sanity check with `bench --strict`, a manifest that does not verify |
/// | 2 | unusable input: a file, model, dataset, configuration, report or key that cannot be used (unreadable, invalid, failed verification, a model that does not fit the data, incomparable reports) |
/// | 64 | usage error: a bad flag, value or combination of flags (the message says which) |
/// | 70 | internal error: a broken invariant (please report it) |
/// | 73 | an output file cannot be written (checked before long work starts) |
package enum ExitStatus: Int32 {
    case success = 0
    case checkFailed = 1
    case unusableInput = 2
    case usage = 64
    case internalError = 70
    case cannotWrite = 73
}

/// Errors a command raises itself, each with its exit status.
package enum CLIError: Error, CustomStringConvertible {
    /// A flag, value or combination that is not valid (exit 64).
    case usage(String)
    /// The command ran and a check failed (exit 1).
    case checkFailed(String)
    /// An input cannot be used (exit 2).
    case unusableInput(String)
    /// An output cannot be written (exit 73).
    case cannotWrite(String)

    package var description: String {
        switch self {
        case .usage(let message), .checkFailed(let message), .unusableInput(let message), .cannotWrite(let message): message
        }
    }

    var status: ExitStatus {
        switch self {
        case .usage: .usage
        case .checkFailed: .checkFailed
        case .unusableInput: .unusableInput
        case .cannotWrite: .cannotWrite
        }
    }
}

/// The exit status of an error thrown while a command runs (after its flags parsed), or nil for an
/// error Bulwark does not know (ArgumentParser's own, which it reports itself).
func exitStatus(of error: any Error) -> ExitStatus? {
    switch error {
    case let error as CLIError: return error.status
    case AttackError.invariantViolated: return .internalError
    case let error as FileSystemError:
        if case .cannotWrite = error { return .cannotWrite }
        return .unusableInput
    case is AttackError, is NeuralNetError, is SafeTensorsError, is DatasetError, is SecurityError, is BenchError,
         is TrainingError, is ThreatError, is CertificationError, is InferenceError, is DecodingError, is Gate.GateError, is CocoaError:
        return .unusableInput
    default:
        return nil
    }
}

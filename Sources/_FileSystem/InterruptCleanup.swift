import Dispatch
import Foundation
import Glibc

/// Temporary files being written (`AtomicFile`'s `.NAME.tmp-XXXXXX`), removed if the process is
/// interrupted: after `install()`, SIGINT, SIGTERM and SIGHUP remove every registered file and exit
/// with 128 + the signal number, as a shell expects. A SIGKILL cannot be caught; the next atomic
/// write to the same path removes what it left (`AtomicFile.removeStaleTemporaries`).
public enum InterruptCleanup {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var paths = Set<String>()
    nonisolated(unsafe) private static var sources: [Int32: any DispatchSourceSignal] = [:]

    static func register(_ path: String) { lock.withLock { _ = paths.insert(path) } }
    static func unregister(_ path: String) { lock.withLock { _ = paths.remove(path) } }

    /// Routes the signals to a handler on a dispatch queue (not in signal context, so it may take
    /// locks and remove files). Call once, at the start of the command-line tool.
    public static func install() {
        lock.withLock {
            guard sources.isEmpty else { return }
            for signal in [SIGINT, SIGTERM, SIGHUP] {
                // A signal the process was started with ignored (nohup, a background job) stays ignored.
                var inherited = sigaction()
                sigaction(signal, nil, &inherited)
                if unsafeBitCast(inherited.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self) { continue }
                Glibc.signal(signal, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
                source.setEventHandler {
                    lock.withLock { for path in paths { unlink(path) } }
                    _exit(128 + signal)  // no atexit handlers while worker threads still run
                }
                source.resume()
                sources[signal] = source
            }
        }
    }

    /// Hands `signals` back to the process: a long-running service (`bulwark serve`) drains on
    /// SIGTERM and reloads on SIGHUP itself, and must not be killed by the cleanup handler. The
    /// signals stay ignored at the process level; the service's own dispatch sources receive them.
    public static func release(signals: [Int32]) {
        lock.withLock {
            for signal in signals { sources.removeValue(forKey: signal)?.cancel() }
        }
    }
}

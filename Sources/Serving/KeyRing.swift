#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import Foundation
import Glibc
import ServiceLifecycle
import TensorCore
import UnixSignals

/// The API keys the running service accepts, reloaded from the key file on change or SIGHUP.
/// A file that does not verify (bad JSON, wrong mode) is refused and the keys in force stay.
public final class KeyRing: Sendable {
    public let path: String
    private let state: Locked<(table: KeyTable, file: KeyFile, stamp: FileStamp?)>
    private let onChange: @Sendable (_ old: KeyFile, _ new: KeyFile) -> Void
    private let onRefused: @Sendable (any Error) -> Void
    /// One reload at a time (SIGHUP and the file watch may fire together): an older read never
    /// replaces a newer one, and each change is reported once.
    private let reloading = Locked<Void>(())

    /// What identifies a version of the file without reading it (it is replaced by rename).
    struct FileStamp: Equatable {
        let device: UInt64, inode: UInt64, size: Int64, modified: timespec
        static func == (a: Self, b: Self) -> Bool {
            a.device == b.device && a.inode == b.inode && a.size == b.size
                && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
        }
        static func of(_ path: String) -> FileStamp? {
            var info = stat()
            guard stat(path, &info) == 0 else { return nil }
            return FileStamp(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size), modified: info.st_mtim)
        }
    }

    /// - Throws: what `KeyFile.read` throws: the service does not start with an unusable key file.
    public init(path: String, onChange: @escaping @Sendable (KeyFile, KeyFile) -> Void = { _, _ in },
                onRefused: @escaping @Sendable (any Error) -> Void = { _ in }) throws {
        self.path = path
        let stamp = FileStamp.of(path)
        let file = try KeyFile.read(path)
        state = Locked((KeyTable(file), file, stamp))
        self.onChange = onChange
        self.onRefused = onRefused
    }

    public var table: KeyTable { state.withLock { $0.table } }

    /// Rereads the file if it changed (or always, with `force`).
    /// - Returns: whether new keys are in force.
    @discardableResult
    public func reload(force: Bool = false) -> Bool {
        reloading.withLock { _ in reloadLocked(force: force) }
    }

    private func reloadLocked(force: Bool) -> Bool {
        let stamp = FileStamp.of(path)
        let (old, unchanged) = state.withLock { ($0.file, $0.stamp == stamp) }
        if unchanged && !force { return false }
        do {
            let file = try KeyFile.read(path)
            state.withLock { $0 = (KeyTable(file), file, stamp) }
            if file != old { onChange(old, file) }
            return file != old
        } catch {
            state.withLock { $0.stamp = stamp }  // refused once per version of the file, not every second
            onRefused(error)
            return false
        }
    }
}

/// Reloads the keys on SIGHUP and when the file changes (checked every `interval`).
public struct KeyWatcher: Service {
    let keys: KeyRing
    let interval: Duration
    let watchSignal: Bool

    public init(keys: KeyRing, interval: Duration = .seconds(1), watchSignal: Bool = true) {
        (self.keys, self.interval, self.watchSignal) = (keys, interval, watchSignal)
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            if watchSignal {
                group.addTask {
                    for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
                        keys.reload(force: true)
                    }
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    keys.reload()
                }
            }
            group.addTask { try? await gracefulShutdown() }
            await group.next()
            group.cancelAll()
        }
    }
}
#endif

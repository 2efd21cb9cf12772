import Foundation
import Glibc
import _FileSystem

/// A key-encryption key held outside Bulwark, reached through a command (the pattern of sops'
/// and age's plugins): `/bin/sh -c COMMAND` runs with `BULWARK_KEK_OPERATION=wrap` and the 32-byte
/// data key on standard input, and prints the wrapped key (any bytes, at most 16 KiB); with
/// `BULWARK_KEK_OPERATION=unwrap` it reads the wrapped key and prints the 32 bytes (raw, or their
/// base64). `BULWARK_KEK_CONTEXT` holds the file's header (hex), for KMSs that bind a ciphertext to
/// an encryption context. So AWS KMS, GCP KMS, Vault transit or an HSM's command-line tool plug in
/// without Bulwark linking their SDKs, and the key-encryption key never reaches Bulwark's memory.
///
/// The command runs non-interactively, in its own process group without a terminal (a prompt for a
/// PIN or an MFA code cannot be answered: use the tool's agent or cached credentials), with
/// Bulwark's environment minus the secrets Bulwark was given (`$BULWARK_DATA_KEY` and the
/// `--kek-env` variable). A command that fails, times out (its whole process group is killed), or
/// prints something other than what is expected is an error that says so, with the command's own
/// error output; nothing is written then.
public struct KeyEncryptionCommand: Sendable, Equatable {
    public static let maximumWrappedSize = 16 << 10
    static let maximumErrorOutput = 4 << 10
    /// How long a finished command's background processes may keep its output open.
    static let drainNanoseconds: UInt64 = 200_000_000

    public let command: String
    public let timeout: Double
    /// Unwrap what was just wrapped before using it (needs the KMS's decrypt permission when
    /// encrypting; off for encrypt-only principals).
    public let checksRoundTrip: Bool
    /// Environment variables the command must not see (secrets given to Bulwark).
    public let hiddenVariables: [String]
    /// The environment the command starts from, before `hiddenVariables` are removed (nil: this process's).
    public let environment: [String: String]?

    public init(command: String, timeout: Double = 30, checksRoundTrip: Bool = true, hiddenVariables: [String] = [],
                environment: [String: String]? = nil) {
        self.command = command
        self.timeout = timeout
        self.checksRoundTrip = checksRoundTrip
        self.hiddenVariables = hiddenVariables
        self.environment = environment
    }

    /// Wraps a 32-byte data key for the file whose fixed header is `context`.
    public func wrap(_ dataKey: [UInt8], context: [UInt8] = []) throws -> [UInt8] {
        let wrapped = try run(operation: "wrap", input: dataKey, context: context)
        guard !wrapped.isEmpty, wrapped.count <= Self.maximumWrappedSize else {
            throw failure("wrap", "printed \(wrapped.count) bytes; a wrapped key is 1 to \(Self.maximumWrappedSize) bytes")
        }
        return wrapped
    }

    /// Unwraps what `wrap` printed back into the 32-byte data key.
    public func unwrap(_ wrapped: [UInt8], context: [UInt8] = []) throws -> [UInt8] {
        let output = try run(operation: "unwrap", input: wrapped, context: context)
        if output.count == 32 { return output }
        let text = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if let decoded = Base64.decodeEither(text), decoded.count == 32 { return decoded }
        throw failure("unwrap", "printed \(output.count) bytes, neither 32 raw bytes nor the base64 of 32 bytes (is it the command that wrapped this file's key?)")
    }

    func failure(_ operation: String, _ problem: String) -> SecurityError {
        .missingKey("the key-encryption command (\(operation)) '\(displayable(command, limit: 120))' \(problem)")
    }

    static func monotonicNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Runs the command with `input` on standard input; returns standard output.
    func run(operation: String, input: [UInt8], context: [UInt8]) throws -> [UInt8] {
        // Writing to a command that does not read its input must be an error, not Bulwark's death by SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        var descriptors = Set<Int32>()
        defer { descriptors.forEach { close($0) } }
        func closeNow(_ fd: Int32) { if descriptors.remove(fd) != nil { close(fd) } }
        func makePipe() throws -> (read: Int32, write: Int32) {
            var pair: [Int32] = [-1, -1]
            guard pipe(&pair) == 0 else { throw failure(operation, "could not start: no pipes (\(String(cString: strerror(errno))))") }
            for fd in pair {
                descriptors.insert(fd)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
            return (pair[0], pair[1])
        }
        let stdin = try makePipe(), stdout = try makePipe(), stderr = try makePipe()
        for fd in [stdin.write, stdout.read, stderr.read] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin.read, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout.write, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr.write, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t(), empty = sigset_t()
        sigfillset(&defaults)
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var environment = self.environment ?? ProcessInfo.processInfo.environment
        for name in hiddenVariables + [DataKey.environmentVariable] { environment[name] = nil }
        environment["BULWARK_KEK_OPERATION"] = operation
        environment["BULWARK_KEK_CONTEXT"] = context.map { String(format: "%02x", $0) }.joined()
        let words: [String] = ["/bin/sh", "-c", command]
        let arguments: [UnsafeMutablePointer<CChar>?] = words.map { word in strdup(word) } + [nil]
        let entries: [String] = environment.map { "\($0.key)=\($0.value)" }
        let environmentEntries: [UnsafeMutablePointer<CChar>?] = entries.map { entry in strdup(entry) } + [nil]
        defer { (arguments + environmentEntries).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/sh", &actions, &attributes, arguments, environmentEntries)
        for fd in [stdin.read, stdout.write, stderr.write] { closeNow(fd) }
        guard spawned == 0 else { throw failure(operation, "could not start: \(String(cString: strerror(spawned)))") }

        var output: [UInt8] = [], errors: [UInt8] = []
        var pending = input[...]
        var inputOpen = true, outputOpen = true, errorsOpen = true
        var status: Int32 = 0, exitedAt: UInt64?
        let deadline = Self.monotonicNanoseconds() + UInt64(timeout * 1e9)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let now = Self.monotonicNanoseconds()
            if exitedAt == nil, waitpid(pid, &status, WNOHANG) == pid { exitedAt = now }
            if let exitedAt {
                if !outputOpen && !errorsOpen { break }
                // The command finished; a process it left in the background still holds its output.
                if now > exitedAt + Self.drainNanoseconds {
                    kill(-pid, SIGKILL)
                    break
                }
            }
            if now >= deadline {
                kill(-pid, SIGKILL)
                if exitedAt == nil { waitpid(pid, &status, 0) }
                throw failure(operation, "did not finish within \(timeout) s and was stopped (--kek-timeout sets the limit)")
            }
            if inputOpen && pending.isEmpty {
                closeNow(stdin.write)
                inputOpen = false
            }
            var polled = [pollfd(fd: inputOpen ? stdin.write : -1, events: Int16(POLLOUT), revents: 0),
                          pollfd(fd: outputOpen ? stdout.read : -1, events: Int16(POLLIN), revents: 0),
                          pollfd(fd: errorsOpen ? stderr.read : -1, events: Int16(POLLIN), revents: 0)]
            _ = poll(&polled, 3, 10)
            if inputOpen && polled[0].revents != 0 {
                let written = pending.withUnsafeBytes { write(stdin.write, $0.baseAddress, $0.count) }
                if written > 0 {
                    pending = pending.dropFirst(written)
                } else if written < 0 && errno != EAGAIN && errno != EINTR {
                    pending = []  // the command closed its input (EPIPE): what it prints decides
                }
            }
            for (index, isOutput) in [(1, true), (2, false)] where polled[index].revents != 0 {
                let count = read(polled[index].fd, &buffer, buffer.count)
                if count > 0 {
                    if isOutput {
                        output += buffer[..<min(count, max(0, Self.maximumWrappedSize + 1 - output.count))]
                    } else {
                        errors += buffer[..<min(count, max(0, Self.maximumErrorOutput - errors.count))]
                    }
                } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
                    closeNow(polled[index].fd)
                    if isOutput { outputOpen = false } else { errorsOpen = false }
                }
            }
        }
        let detail = String(decoding: errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let exitedNormally = (status & 0x7f) == 0, exitCode = (status >> 8) & 0xff
        guard exitedNormally, exitCode == 0 else {
            let how = exitedNormally ? "exited with status \(exitCode)" : "was killed by signal \(status & 0x7f)"
            throw failure(operation, how + (detail.isEmpty ? "" : ": \(displayable(detail, limit: 500))"))
        }
        guard output.count <= Self.maximumWrappedSize else {
            throw failure(operation, "printed more than \(Self.maximumWrappedSize) bytes")
        }
        return output
    }
}

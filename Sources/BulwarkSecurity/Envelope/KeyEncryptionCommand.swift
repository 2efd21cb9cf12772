import Foundation
import Glibc
import _FileSystem

/// A key-encryption key held outside Bulwark, reached through a command (the pattern of sops'
/// and age's plugins): `/bin/sh -c COMMAND` runs with `BULWARK_KEK_OPERATION=wrap` and the 32-byte
/// data key on standard input, and prints the wrapped key (any bytes, at most 16 KiB); with
/// `BULWARK_KEK_OPERATION=unwrap` it reads the wrapped key and prints the 32 bytes (raw, or their
/// base64). So AWS KMS, GCP KMS, Vault transit or an HSM's command-line tool plug in without
/// Bulwark linking their SDKs, and the key-encryption key never reaches Bulwark's memory.
///
/// A command that fails, times out, or prints something other than what is expected is an error
/// that says so, with the command's own error output; nothing is written then.
public struct KeyEncryptionCommand: Sendable, Equatable {
    public static let maximumWrappedSize = 16 << 10
    static let maximumErrorOutput = 4 << 10

    public let command: String
    public let timeout: Double

    public init(command: String, timeout: Double = 30) {
        self.command = command
        self.timeout = timeout
    }

    /// Wraps a 32-byte data key.
    public func wrap(_ dataKey: [UInt8]) throws -> [UInt8] {
        let wrapped = try run(operation: "wrap", input: dataKey)
        guard !wrapped.isEmpty, wrapped.count <= Self.maximumWrappedSize else {
            throw failure("wrap", "printed \(wrapped.count) bytes; a wrapped key is 1 to \(Self.maximumWrappedSize) bytes")
        }
        return wrapped
    }

    /// Unwraps what `wrap` printed back into the 32-byte data key.
    public func unwrap(_ wrapped: [UInt8]) throws -> [UInt8] {
        let output = try run(operation: "unwrap", input: wrapped)
        if output.count == 32 { return output }
        let text = String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if let decoded = Base64.decodeEither(text), decoded.count == 32 { return decoded }
        throw failure("unwrap", "printed \(output.count) bytes, neither 32 raw bytes nor the base64 of 32 bytes (is it the command that wrapped this file's key?)")
    }

    func failure(_ operation: String, _ problem: String) -> SecurityError {
        .missingKey("the key-encryption command (\(operation)) '\(displayable(command, limit: 120))' \(problem)")
    }

    /// Runs the command with `input` on standard input; returns standard output. The command runs
    /// in its own process group, so a timeout stops everything it started.
    func run(operation: String, input: [UInt8]) throws -> [UInt8] {
        // Bulwark must not die of SIGPIPE when a command does not read its input.
        signal(SIGPIPE, SIG_IGN)
        var stdinPipe: [Int32] = [-1, -1], stdoutPipe: [Int32] = [-1, -1], stderrPipe: [Int32] = [-1, -1]
        func makePipe(_ fds: inout [Int32]) -> Bool {
            guard pipe(&fds) == 0 else { return false }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            return true
        }
        guard makePipe(&stdinPipe), makePipe(&stdoutPipe), makePipe(&stderrPipe) else {
            throw failure(operation, "could not start: no pipes (\(String(cString: strerror(errno))))")
        }
        defer { for fd in [stdinPipe[1], stdoutPipe[0], stderrPipe[0]] where fd >= 0 { close(fd) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
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

        var environment = ProcessInfo.processInfo.environment
        environment["BULWARK_KEK_OPERATION"] = operation
        let words: [String] = ["/bin/sh", "-c", command]
        let arguments: [UnsafeMutablePointer<CChar>?] = words.map { word in strdup(word) } + [nil]
        let entries: [String] = environment.map { "\($0.key)=\($0.value)" }
        let environmentEntries: [UnsafeMutablePointer<CChar>?] = entries.map { entry in strdup(entry) } + [nil]
        defer { (arguments + environmentEntries).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/sh", &actions, &attributes, arguments, environmentEntries)
        for fd in [stdinPipe[0], stdoutPipe[1], stderrPipe[1]] { close(fd) }
        guard spawned == 0 else { throw failure(operation, "could not start: \(String(cString: strerror(spawned)))") }

        var output: [UInt8] = [], errors: [UInt8] = []
        var pending = input[...]
        var open = (stdin: true, stdout: true, stderr: true)
        var status: Int32 = 0, exited = false
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while open.stdout || open.stderr || !exited {
            if !exited, waitpid(pid, &status, WNOHANG) == pid { exited = true }
            if exited && !open.stdout && !open.stderr { break }
            guard Date() < deadline else {
                kill(-pid, SIGKILL)
                if !exited { waitpid(pid, &status, 0) }
                throw failure(operation, "did not finish within \(timeout) s and was stopped (--kek-timeout sets the limit)")
            }
            if open.stdin && pending.isEmpty { close(stdinPipe[1]); stdinPipe[1] = -1; open.stdin = false }
            var fds = [pollfd(fd: open.stdout ? stdoutPipe[0] : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: open.stderr ? stderrPipe[0] : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: open.stdin ? stdinPipe[1] : -1, events: Int16(POLLOUT), revents: 0)]
            _ = poll(&fds, 3, 10)
            if fds[2].revents != 0 {
                let written = pending.withUnsafeBytes { write(stdinPipe[1], $0.baseAddress, $0.count) }
                if written > 0 { pending = pending.dropFirst(written) } else { pending = [] }
            }
            for (index, isOutput) in [(0, true), (1, false)] where fds[index].revents != 0 {
                let count = read(fds[index].fd, &buffer, buffer.count)
                if count <= 0 {
                    if isOutput { open.stdout = false } else { open.stderr = false }
                } else if isOutput {
                    output += buffer[..<min(count, Self.maximumWrappedSize + 1 - output.count)]
                } else if errors.count < Self.maximumErrorOutput {
                    errors += buffer[..<min(count, Self.maximumErrorOutput - errors.count)]
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

#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import ArgumentParser
import BulwarkCLI
import BulwarkSecurity
import Crypto
import Foundation
import Serving

/// `bulwark audit verify FILE`: checks the service's hash-chained audit log.
public struct AuditCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Check the audit log of bulwark serve.",
        subcommands: [Verify.self]
    )

    public init() {}

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify the hash chain: any edited, deleted, inserted or reordered line is reported with its line number (exit 1).",
            discussion: "A cut tail is visible against a recorded head: the one the service keeps in FILE.head (checked by default), or one recorded elsewhere (the service logs its head every minute and at stop, and GET /v1/audit returns it), given with --expect-head.")

        @Argument(help: "The audit log (JSON Lines).")
        var file: String

        @Option(name: .customLong("expect-head"), help: ArgumentHelp("A head SHA-256 recorded earlier; the log must contain that line.", valueName: "hex"))
        var expectHead: String?

        @Option(name: .customLong("key-file"), help: ArgumentHelp("The chain key the log was written with (bulwark serve --audit-key).", valueName: "file"))
        var keyFile: String?

        @Flag(help: "Print {\"ok\", \"lines\", \"head\", \"error\"} as JSON.")
        var json = false

        func run() throws {
            struct Result: Encodable {
                let ok: Bool, lines: Int?, head: String?, anchorLine: Int?, error: String?
                enum CodingKeys: String, CodingKey { case ok, lines, head, anchorLine = "anchor_line", error }
            }
            guard FileManager.default.fileExists(atPath: file) else { throw CLIError.unusableInput("\(file) does not exist") }
            do {
                let key = try keyFile.map { SymmetricKey(data: try DataKey.load(path: $0).bytes) }
                // The head the service recorded beside the log, unless one is given.
                let recorded = expectHead == nil ? try AuditLog.recordedHead(of: file) : nil
                let summary = try AuditVerifier.verify(path: file, expectHead: expectHead?.lowercased() ?? recorded?.sha256, key: key)
                if json {
                    try JSONOutput.line(Result(ok: true, lines: summary.count, head: summary.head, anchorLine: summary.anchorLine, error: nil))
                } else {
                    print("\(file): \(summary.count) lines, chain intact; head \(summary.head)"
                          + (summary.anchorLine.map { "; the \(recorded == nil ? "expected" : "recorded (\(file).head)") head is line \($0)" } ?? ""))
                }
            } catch let failure as AuditVerifier.Failure {
                if json { try JSONOutput.line(Result(ok: false, lines: nil, head: nil, anchorLine: nil, error: failure.description)) }
                throw CLIError.checkFailed("\(file): \(failure)")
            }
        }
    }
}
#endif

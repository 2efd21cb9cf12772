#if Serve  // the `Serve` trait (Package.swift): built by default, left out by --disable-default-traits
import ServingCore
import ArgumentParser
import BulwarkCLI
import Foundation
import Serving
import _FileSystem

/// `bulwark serve dev-cert --out DIR`: a self-signed certificate for local use.
struct DevCertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev-cert",
        abstract: "Write a self-signed certificate (cert.pem) and key (key.pem, mode 0600) for localhost, valid 30 days.",
        discussion: "For local use and tests only: clients must trust cert.pem explicitly (curl --cacert DIR/cert.pem). In production give --tls-cert and --tls-key from a real CA.")

    @Option(help: ArgumentHelp("Directory to write cert.pem and key.pem into (created with mode 0700 if missing).", valueName: "dir"))
    var out: String

    @Option(help: "Days of validity.")
    var days = 30

    @Flag(help: "Replace cert.pem and key.pem if they exist.")
    var force = false

    func validate() throws {
        guard (1...825).contains(days) else { throw ValidationError("--days must be 1 to 825") }
    }

    func run() throws {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory) {
            guard mkdir(out, 0o700) == 0 else { throw CLIError.cannotWrite("cannot create \(out): \(String(cString: strerror(errno)))") }
        } else if !isDirectory.boolValue {
            throw CLIError.cannotWrite("\(out) is not a directory")
        }
        for name in ["cert.pem", "key.pem"] where !force && FileManager.default.fileExists(atPath: out + "/" + name) {
            throw CLIError.cannotWrite("\(out)/\(name) exists; give --force to replace it")
        }
        let files = try DevCertificate.make(days: days)
        let (certificate, key) = try DevCertificate.write(files, to: out)
        print("wrote \(certificate) and \(key) (mode 0600); valid \(days) days for localhost, 127.0.0.1 and ::1")
        Console.note("serve with --tls-cert \(certificate) --tls-key \(key); clients trust it with e.g. curl --cacert \(certificate)")
    }
}
#endif

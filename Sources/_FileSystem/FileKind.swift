import Foundation
import Glibc

/// What an existing file holds, judged from its first bytes: an output may replace a file of its own
/// kind (a new report over the old report) but not a model, a key or a user's notes by accident.
public enum FileKind: String, Sendable, CaseIterable {
    case model = "a model"
    case checkpoint = "a training checkpoint"
    case adversarialExamples = "saved adversarial examples"
    case report = "a bench report"
    case partialReport = "a shard's partial bench report"
    case membershipPart = "a shard's trained membership models"
    case htmlReport = "an HTML report"
    case manifest = "an integrity manifest"
    case signingKey = "a signing key"
    case dataKey = "a data key"
    case encrypted = "an encrypted file"
    case junit = "a JUnit report"
    case membershipScores = "membership scores"
    case image = "a PNG image Bulwark drew"
    case exampleLabels = "example labels (bulwark attack --png)"
    case modelSignature = "a model signature (Sigstore bundle)"
    case sbom = "a CycloneDX bill of materials"
    case other = "a file Bulwark did not write"

    /// The kind of the regular file at `path` (`other` if it cannot be read or recognised).
    public static func of(_ path: String) -> FileKind {
        guard let prefix = try? FileReader.readPrefix(path, count: 1 << 16), !prefix.isEmpty else { return .other }
        let text = String(decoding: prefix, as: UTF8.self)
        if prefix.starts(with: Array("BWENC".utf8)) || looksLikeFernet(prefix) { return .encrypted }
        if prefix.count > 8, prefix[8] == UInt8(ascii: "{") {
            // safetensors: an 8-byte header length, then a JSON header.
            if text.contains("\"checkpoint_format\"") { return .checkpoint }
            if text.contains("bulwark-adversarial/") { return .adversarialExamples }
            if text.contains("\"__metadata__\"") || text.contains("\"data_offsets\"") { return .model }
        }
        if text.hasPrefix("{") {
            // Reports are written with sorted keys, so "schema" comes last: look at the end too.
            let tail = String(decoding: (try? FileReader.readSuffix(path, count: 1 << 12)) ?? [], as: UTF8.self)
            if text.contains("\"bulwark-report/") || tail.contains("\"bulwark-report/") { return .report }
            if text.contains("\"bulwark-threat-report/") || tail.contains("\"bulwark-threat-report/") { return .report }
            if text.contains("\"bulwark-partial-report/") || tail.contains("\"bulwark-partial-report/") { return .partialReport }
            if text.contains("\"bulwark-membership-part/") || tail.contains("\"bulwark-membership-part/") { return .membershipPart }
            if text.contains("\"bulwark-manifest/") { return .manifest }
            if text.contains("\"application/vnd.dev.sigstore.bundle") { return .modelSignature }
            if text.contains("\"bomFormat\"") && text.contains("\"CycloneDX\"") { return .sbom }
            if text.contains("\"algorithm\"") && (text.contains("\"private_key\"") || text.contains("\"public_key\"")) { return .signingKey }
        }
        if text.hasPrefix("<?xml"), text.contains("<testsuite") { return .junit }
        if text.hasPrefix("<!DOCTYPE html>"), text.contains("<title>Bulwark robustness report</title>") { return .htmlReport }
        if text.hasPrefix("score,member\n") { return .membershipScores }
        if text.hasPrefix("row,label,clean_prediction,adversarial_prediction,fooled\n") { return .exampleLabels }
        // Only Bulwark's own PNGs (a tEXt chunk "Software: Bulwark"): an output may not replace a user's picture.
        if prefix.starts(with: [137, 80, 78, 71, 13, 10, 26, 10]), text.contains("tEXtSoftware\u{0}Bulwark") { return .image }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.count == 44, trimmed.allSatisfy({ $0.isLetter || $0.isNumber || "-_=+/".contains($0) }) { return .dataKey }
        return .other
    }
}

/// A Fernet token: version 0x80 in base64url ("g" then A–P), at least the 100 characters of the
/// shortest token, and nothing but base64url characters.
private func looksLikeFernet(_ prefix: [UInt8]) -> Bool {
    guard prefix.count >= 100, prefix[0] == UInt8(ascii: "g"), (UInt8(ascii: "A")...UInt8(ascii: "P")).contains(prefix[1]) else { return false }
    let alphabet = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=".utf8))
    let body = prefix.prefix { $0 != 0x0A && $0 != 0x0D }
    return body.count >= 100 && body.allSatisfy(alphabet.contains)
}

extension OutputPath {
    /// `prepare`, and the checks that keep what the user had: an output that is the same file as one
    /// of the command's `inputs` (by device and inode, so `./m`, `m`, a symlink or a hard link all
    /// count) is always refused; an existing file of another kind than `replacing` is refused
    /// unless `force`.
    /// - Throws: `FileSystemError.cannotWrite` naming the path, what it holds and what to do.
    public static func prepare(_ path: String, for what: String, replacing kinds: Set<FileKind>, inputs: [String], force: Bool) throws {
        for input in inputs where sameFile(path, input) {
            throw FileSystemError.cannotWrite(path: path, reason: "it is \(input), an input of this command, which writing it would destroy "
                                              + "(checked before starting, for \(what)); choose another path")
        }
        if FileManager.default.fileExists(atPath: path), !force {
            let kind = FileKind.of(path)
            if !kinds.contains(kind) {
                throw FileSystemError.cannotWrite(path: path, reason: "it already holds \(kind.rawValue) (checked before starting, for \(what)); "
                                                  + "choose another path, or pass --force to replace it")
            }
        }
        try prepare(path, for: what)
    }

    /// Whether two paths name the same file: the same device and inode if both exist, else the same
    /// absolute path once the directory's symlinks are resolved.
    public static func sameFile(_ a: String, _ b: String) -> Bool {
        var first = stat(), second = stat()
        if stat(a, &first) == 0, stat(b, &second) == 0 { return first.st_dev == second.st_dev && first.st_ino == second.st_ino }
        return resolved(a) == resolved(b)
    }

    private static func resolved(_ path: String) -> String {
        let absolute = ((path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path) as NSString).standardizingPath
        let directory = (PathText.directory(of: absolute) as NSString).resolvingSymlinksInPath
        return (directory == "/" ? "" : directory) + "/" + PathText.name(of: absolute)
    }
}

import Foundation
import Glibc

/// Checks made on an output path before long work starts, so that no finished work is lost to a
/// path that cannot be written (a missing directory, no permission, a directory in the way).
public enum OutputPath {
    /// Creates the missing parent directories of `path` and checks that a file can be created
    /// there (by creating and removing a temporary file beside it, as the atomic write will).
    /// - Parameter what: what the file is, for the message (e.g. "--report").
    /// - Throws: `FileSystemError.cannotWrite` naming the path, the reason and what to do.
    public static func prepare(_ path: String, for what: String) throws {
        func fail(_ reason: String) -> FileSystemError {
            .cannotWrite(path: path, reason: "\(reason) (checked before starting, for \(what)); choose another path")
        }
        guard !path.isEmpty else { throw fail("the path is empty") }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw fail("it is a directory")
        }
        let directory = PathText.directory(of: path)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw fail("its directory \(directory) cannot be created: \(error.localizedDescription)")
        }
        var template = Array("\(directory)/.\(PathText.name(of: path)).probe-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw fail("no file can be created in \(directory): \(errnoText())") }
        close(fd)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
    }
}

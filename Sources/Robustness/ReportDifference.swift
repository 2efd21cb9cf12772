import Foundation

extension BenchReport {
    /// Fields that differ between two runs of the same bench on any machine: when and where it ran,
    /// and how long each part took.
    public static let runDependentFields: Set<String> = ["created", "machine", "seconds", "images_per_second"]

    /// Where this report's results differ from `other`'s, as JSON paths with both values (at most
    /// `limit`), ignoring `runDependentFields`. Empty when the two runs agree number for number: a
    /// rerun with the same seed, or a merged sharded run and the unsharded one.
    public func differences(from other: BenchReport, limit: Int = 20) throws -> [String] {
        func tree(_ report: BenchReport) throws -> Any { try JSONSerialization.jsonObject(with: report.encoded()) }
        var found: [String] = []
        Self.compare(try tree(self), try tree(other), path: "$", into: &found, limit: limit)
        return found
    }

    private static func compare(_ a: Any, _ b: Any, path: String, into found: inout [String], limit: Int) {
        guard found.count < limit else { return }
        switch (a, b) {
        case let (a as [String: Any], b as [String: Any]):
            for key in Set(a.keys).union(b.keys).subtracting(runDependentFields).sorted() {
                switch (a[key], b[key]) {
                case let (x?, y?): compare(x, y, path: "\(path).\(key)", into: &found, limit: limit)
                case (_?, nil): found.append("\(path).\(key): only in the first report")
                case (nil, _?): found.append("\(path).\(key): only in the second report")
                case (nil, nil): break
                }
                if found.count >= limit { return }
            }
        case let (a as [Any], b as [Any]):
            guard a.count == b.count else {
                found.append("\(path): \(a.count) entries against \(b.count)")
                return
            }
            for (index, (x, y)) in zip(a, b).enumerated() { compare(x, y, path: "\(path)[\(index)]", into: &found, limit: limit) }
        default:
            let equal = if let x = a as? NSObject, let y = b as? NSObject { x.isEqual(y) } else { "\(a)" == "\(b)" }
            if !equal { found.append("\(path): \(a) against \(b)") }
        }
    }
}

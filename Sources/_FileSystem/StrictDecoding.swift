/// A coding key for any string, to list and check the keys of a JSON object.
public struct AnyCodingKey: CodingKey, Hashable, Sendable {
    public let stringValue: String
    public let intValue: Int?

    public init(_ string: String) {
        stringValue = string
        intValue = nil
    }
    public init?(stringValue: String) { self.init(stringValue) }
    public init?(intValue: Int) {
        stringValue = String(intValue)
        self.intValue = intValue
    }
}

/// Strict decoding of files people write (configurations, recipes): a key Bulwark does not know is
/// an error that names it and suggests the closest valid key, never a silently ignored setting.
public enum StrictDecoding {
    /// Throws a `DecodingError` for the first key of the object being decoded that is not in
    /// `allowed`.
    /// - Parameter explain: a sentence for keys that are valid elsewhere but not here (e.g.
    ///   "'steps' applies to pgd attacks, not fgsm"); nil falls back to a spelling suggestion.
    public static func rejectUnknownKeys(
        _ decoder: any Decoder, allowed: Set<String>, explain: (String) -> String? = { _ in nil }
    ) throws {
        let container = try decoder.container(keyedBy: AnyCodingKey.self)
        for key in container.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) where !allowed.contains(key.stringValue) {
            let name = key.stringValue
            var message = "unknown key \"\(name)\""
            if let reason = explain(name) {
                message += ": \(reason)"
            } else if let suggestion = closest(to: name, in: allowed) {
                message += "; did you mean \"\(suggestion)\"?"
            } else {
                message += "; valid keys here: " + allowed.sorted().joined(separator: ", ")
            }
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [key], debugDescription: message))
        }
    }

    /// The candidate closest to `word` by edit distance (ignoring case, `_` and `-`), if it is close
    /// enough to be a plausible misspelling.
    public static func closest(to word: String, in candidates: some Sequence<String>) -> String? {
        func normalised(_ s: String) -> [Character] { Array(s.lowercased().filter { $0 != "_" && $0 != "-" }) }
        let target = normalised(word)
        var best: (candidate: String, distance: Int)?
        for candidate in candidates {
            let other = normalised(candidate)
            // A key that extends or shortens a valid one ("data_directory", "data_dir") is a likely slip too.
            let prefix = min(target.count, other.count) >= 3 && (target.starts(with: other) || other.starts(with: target))
            let distance = prefix ? 1 : editDistance(target, other)
            if distance < (best?.distance ?? .max) || (distance == best?.distance && candidate < best!.candidate) {
                best = (candidate, distance)
            }
        }
        guard let best, best.distance <= max(2, target.count / 3) else { return nil }
        return best.candidate
    }

    /// Edit distance with insertions, deletions, substitutions and transpositions of neighbours
    /// (optimal string alignment), so "pdg" is one edit from "pgd", as a typist would count it.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var beforePrevious = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    current[j] = min(current[j], beforePrevious[j - 2] + 1)
                }
            }
            (beforePrevious, previous, current) = (previous, current, beforePrevious)
        }
        return previous[b.count]
    }
}

extension KeyedDecodingContainer {
    /// Throws a `DecodingError` at `key` with `message` (for values that decode but are invalid).
    public func invalid(_ key: Key, _ message: String) -> DecodingError {
        DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: message)
    }
}

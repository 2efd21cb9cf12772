/// A deterministic slice of a list of independent work items, for runs spread over a scheduler's
/// tasks (Slurm job arrays, Kubernetes Indexed Jobs): shard `index` of `count` (0 ≤ index < count,
/// as `SLURM_ARRAY_TASK_ID` with `--array=0-(N−1)` and `JOB_COMPLETION_INDEX` number them) takes
/// the items whose position is `index` modulo `count` (round-robin, so expensive items that sit
/// together spread over the shards).
public struct WorkShard: Equatable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    /// Why a shard is not one.
    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// - Throws: `Invalid` unless 0 ≤ index < count.
    public init(index: Int, count: Int) throws {
        guard count >= 1, index >= 0, index < count else {
            throw Invalid(description: "shard \(index)/\(count): need 0 ≤ I < N in I/N (shards are numbered from 0, as Slurm array tasks with --array=0-(N-1))")
        }
        self.index = index
        self.count = count
    }

    /// Parses `I/N`.
    /// - Throws: `Invalid` naming the text and the form expected.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else {
            throw Invalid(description: "shard '\(text)': expected I/N with integers, e.g. 0/4 (shards are numbered from 0)")
        }
        try self.init(index: index, count: count)
    }

    enum CodingKeys: String, CodingKey { case index, count }

    /// Decoding checks the bounds too: a shard read from a file is untrusted.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        do {
            try self.init(index: c.decode(Int.self, forKey: .index), count: c.decode(Int.self, forKey: .count))
        } catch let error as Invalid {
            throw DecodingError.dataCorruptedError(forKey: .count, in: c, debugDescription: error.description)
        }
    }

    public var description: String { "\(index)/\(count)" }

    /// This shard's items, in their order.
    public func select<Item>(_ items: [Item]) -> [Item] {
        items.enumerated().filter { $0.offset % count == index }.map(\.element)
    }
}

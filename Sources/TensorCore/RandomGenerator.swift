import Foundation

/// The seeded pseudo-random generator behind every random choice in Bulwark: initialisation,
/// shuffling, validation splits, dropout masks and attack starts.
///
/// Algorithm: xoshiro256** (Blackman & Vigna, 2018, "Scrambled Linear Pseudorandom Number
/// Generators"), its 256-bit state filled from the seed by SplitMix64 (Steele et al., 2014). The
/// stream of numbers depends only on the seed, so the same seed gives the same run on every machine.
/// Independent streams are derived with `RandomGenerator(seed:stream:index:)`, so a shuffle in epoch
/// 3 does not depend on how many numbers initialisation consumed.
public struct RandomGenerator: RandomNumberGenerator, Sendable, Equatable {
    @usableFromInline var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var splitMix = seed
        func next() -> UInt64 {
            splitMix &+= 0x9E37_79B9_7F4A_7C15
            return Self.mix(splitMix)
        }
        state = (next(), next(), next(), next())
    }

    /// A generator for one named purpose (`stream`) and occurrence (`index`, e.g. the epoch).
    public init(seed: UInt64, stream: RandomStream, index: UInt64 = 0) {
        self.init(seed: Self.mix(Self.mix(seed ^ Self.mix(stream.id)) ^ index))
    }

    /// SplitMix64's output function: a bijective 64-bit mixer.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public static func == (a: RandomGenerator, b: RandomGenerator) -> Bool {
        a.state == b.state
    }

    @inlinable
    public mutating func next() -> UInt64 {
        let result = rotateLeft(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotateLeft(state.3, 45)
        return result
    }

    @inlinable func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 random bits.
    @inlinable
    public mutating func nextUnitFloat() -> Float {
        Float(next() >> 40) * 0x1p-24
    }

    /// Uniform in [lower, upper).
    @inlinable
    public mutating func nextFloat(in lower: Float, _ upper: Float) -> Float {
        lower + (upper - lower) * nextUnitFloat()
    }

    /// Uniform integer in 0..<bound without modulo bias (Lemire, 2019).
    @inlinable
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "nextInt(below:) needs a positive bound, got \(bound)")
        let b = UInt64(bound)
        var product = next().multipliedFullWidth(by: b)
        if product.low < b {
            let threshold = (0 &- b) % b
            while product.low < threshold { product = next().multipliedFullWidth(by: b) }
        }
        return Int(product.high)
    }

    /// Standard normal deviate (Box–Muller transform).
    public mutating func nextGaussian() -> Float {
        let u1 = max(Double(next() >> 11) * 0x1p-53, Double.leastNonzeroMagnitude)
        let u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }

    /// Fisher–Yates shuffle with this generator (stable across Swift versions, unlike `shuffle(using:)`).
    public mutating func shuffle<C: MutableCollection & RandomAccessCollection>(_ c: inout C) where C.Index == Int {
        guard c.count > 1 else { return }
        for i in stride(from: c.count - 1, to: 0, by: -1) {
            let j = nextInt(below: i + 1)
            c.swapAt(c.startIndex + i, c.startIndex + j)
        }
    }
}

/// An independent stream of random numbers for one purpose (see `RandomGenerator(seed:stream:index:)`).
///
/// Streams are open: each module declares the ones it uses, derived from a name
/// (`RandomStream("threats.membership.shadow")`), so a new experiment never edits the tensor core.
/// The engine's first streams keep the small numeric ids they were created with, so that seeds
/// reproduce the numbers of earlier versions.
public struct RandomStream: Hashable, Sendable, CustomStringConvertible {
    public let id: UInt64
    public let description: String

    /// A stream with an explicit id (for the engine's original streams).
    public init(id: UInt64, name: String) {
        self.id = id
        description = name
    }

    /// A stream derived from its name: the FNV-1a hash of the UTF-8 bytes (Fowler, Noll & Vo),
    /// mixed by SplitMix64's finaliser. Different names give independent streams.
    public init(_ name: String) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        self.init(id: RandomGenerator.mix(hash) | 1 << 63, name: name)  // the top bit keeps names apart from numeric ids
    }
}

extension RandomStream {
    /// The seeded train/validation split of a dataset.
    public static let validationSplit = RandomStream(id: 2, name: "validation split")
}

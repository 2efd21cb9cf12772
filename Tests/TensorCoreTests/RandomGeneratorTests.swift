import Testing
import TensorCore

@Suite("Seeded random generator (xoshiro256**)")
struct RandomGeneratorTests {
    @Test("reference values: xoshiro256** seeded by SplitMix64")
    func referenceValues() {
        // Computed with a Python transcription of the reference algorithms (splitmix64.c, xoshiro256starstar.c).
        var generator = RandomGenerator(seed: 0)
        #expect(generator.next() == 0x99EC_5F36_CB75_F2B4)
        #expect(generator.next() == 0xBF6E_1F78_4956_452A)
    }

    @Test("same seed, same numbers; different seeds or streams, different numbers")
    func determinism() {
        var a = RandomGenerator(seed: 7), b = RandomGenerator(seed: 7), c = RandomGenerator(seed: 8)
        let sa = (0..<100).map { _ in a.next() }
        #expect(sa == (0..<100).map { _ in b.next() })
        #expect(sa != (0..<100).map { _ in c.next() })
        let shuffle = RandomStream(id: 3, name: "shuffle"), dropout = RandomStream(id: 4, name: "dropout")
        var s1 = RandomGenerator(seed: 7, stream: shuffle, index: 1)
        var s2 = RandomGenerator(seed: 7, stream: shuffle, index: 2)
        var d1 = RandomGenerator(seed: 7, stream: dropout, index: 1)
        #expect(s1.next() != s2.next())
        #expect(RandomGenerator(seed: 7, stream: shuffle, index: 1) != d1)
        _ = d1.next()
    }

    @Test("streams derived from names are stable, distinct, and apart from the numeric ids")
    func namedStreams() {
        let a = RandomStream("threats.membership.shadow"), b = RandomStream("threats.poison.trigger")
        #expect(a == RandomStream("threats.membership.shadow") && a != b)
        #expect(a.id >= 1 << 63 && b.id >= 1 << 63)
        // Pinned: a named stream's numbers must not change between versions (seeds reproduce runs).
        var generator = RandomGenerator(seed: 0, stream: RandomStream("gradient noise"))
        #expect(generator.next() == 12_868_047_102_821_406_563)
    }

    @Test("uniform floats lie in [0, 1) with mean ≈ 1/2; integers stay below the bound")
    func ranges() {
        var generator = RandomGenerator(seed: 3)
        var sum = 0.0
        for _ in 0..<100_000 {
            let u = generator.nextUnitFloat()
            #expect(u >= 0 && u < 1)
            sum += Double(u)
        }
        #expect(abs(sum / 100_000 - 0.5) < 0.01)
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { counts[generator.nextInt(below: 7)] += 1 }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 500 })
    }

    @Test("Gaussian deviates have mean ≈ 0 and variance ≈ 1")
    func gaussian() {
        var generator = RandomGenerator(seed: 11)
        let values = (0..<50_000).map { _ in Double(generator.nextGaussian()) }
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
        #expect(abs(mean) < 0.02)
        #expect(abs(variance - 1) < 0.03)
    }

    @Test("shuffle is a seeded permutation")
    func shuffle() {
        var a = Array(0..<1000), b = Array(0..<1000)
        var g1 = RandomGenerator(seed: 5), g2 = RandomGenerator(seed: 5)
        g1.shuffle(&a)
        g2.shuffle(&b)
        #expect(a == b)
        #expect(a != Array(0..<1000))
        #expect(a.sorted() == Array(0..<1000))
    }
}

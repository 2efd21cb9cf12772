import Foundation
import NeuralNet
import BulwarkSecurity
import TensorCore
import Testing
import _FuzzTargets
import _TestSupport

/// `swift test` replays the committed fuzzing corpus (Fuzz/Corpus/<target>/) through the same entry
/// points the libFuzzer targets use, plus deterministic mutations of every seed (truncations, flipped
/// bytes, inserted junk), so a parser crash found once stays fixed.
@Suite("Fuzz corpus replay")
struct FuzzCorpusTests {
    static let corpus = TestSupport.repositoryRoot + "/Fuzz/Corpus"

    static func files(_ target: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: corpus + "/" + target)) ?? []).sorted().map { corpus + "/" + target + "/" + $0 }
    }

    @Test("every target has seeds, and every seed and its mutations run without crashing", arguments: FuzzTargets.all.keys.sorted())
    func replay(target: String) throws {
        let entry = try #require(FuzzTargets.all[target])
        let seeds = Self.files(target)
        #expect(!seeds.isEmpty, "no seeds for \(target)")
        var generator = RandomGenerator(seed: 1)
        for path in seeds {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            entry(bytes)
            for _ in 0..<200 {
                var mutated = bytes
                switch generator.nextInt(below: 4) {
                case 0 where !mutated.isEmpty:
                    mutated.removeLast(generator.nextInt(below: mutated.count) + 1)
                case 1 where !mutated.isEmpty:
                    for _ in 0..<(1 + generator.nextInt(below: 4)) {
                        mutated[generator.nextInt(below: mutated.count)] ^= UInt8(1 << generator.nextInt(below: 8))
                    }
                case 2:
                    let position = generator.nextInt(below: mutated.count + 1)
                    mutated.insert(contentsOf: (0..<generator.nextInt(below: 16)).map { _ in UInt8(generator.nextInt(below: 256)) }, at: position)
                default:
                    if !mutated.isEmpty { mutated[generator.nextInt(below: mutated.count)] = 0xff }
                }
                entry(mutated)
            }
        }
    }

    @Test("the valid seeds parse")
    func validSeeds() throws {
        let model = try SafeTensors(bytes: [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.corpus + "/safetensors/model.safetensors"))), source: "seed")
        #expect(try ModelFile.load(model).network.spec.shorthand == "4-3-2")
        let sealed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.corpus + "/container/three-kb.bwenc")))
        #expect(try EncryptedContainer.decrypt(sealed, key: FuzzTargets.key, source: "seed").count == 3000)
        let token = try String(contentsOfFile: Self.corpus + "/fernet/three-kb.fernet", encoding: .utf8)
        #expect(try Fernet.decrypt(token, key: FuzzTargets.key).count == 3000)
        let signed = try Manifest.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: Self.corpus + "/manifest/signed.json"))), source: "seed")
        #expect(try signed.checkSignature(path: "seed", trustedKey: nil) != nil)
    }
}

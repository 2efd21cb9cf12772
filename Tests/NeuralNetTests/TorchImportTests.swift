import Foundation
import Testing
import NeuralNet
import TensorCore
import _TestSupport

/// Model files written by PyTorch (`safetensors.torch.save_file(model.state_dict(), …)` of a
/// `torch.nn.Sequential`), without Bulwark metadata; fixtures made by scripts/make-torch-fixture.py.
@Suite("PyTorch-written Sequential files")
struct TorchImportTests {
    struct Expected: Decodable {
        let inputs: [[Float]]
        let tanh_logits: [[Float]]
        let nobias_logits: [[Float]]
    }

    static func fixture(_ name: String) throws -> String {
        try #require(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)).path
    }

    static func expected() throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: fixture("torch-sequential.json"))))
    }

    func logits(_ network: Sequential, _ inputs: [[Float]]) throws -> [Float] {
        try network.inferenceModel().logits(Tensor(shape: [inputs.count, inputs[0].count], scalars: inputs.flatMap { $0 })).scalars
    }

    @Test("the architecture is inferred from names and shapes; the logits match PyTorch's", arguments: ["tanh", "f64"])
    func inferredLogits(variant: String) throws {
        let expected = try Self.expected()
        let loaded = try ModelFile.load(contentsOf: try Self.fixture("torch-sequential-\(variant).safetensors"), hiddenActivations: [.relu, .tanh])
        #expect(loaded.inferredArchitecture)
        #expect(loaded.network.spec.torchSequential == "nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 5))")
        #expect(TestSupport.close(try logits(loaded.network, expected.inputs), expected.tanh_logits.flatMap { $0 }, relative: 1e-5, absolute: 1e-5))
    }

    @Test("a Linear layer without bias loads with a zero bias")
    func missingBias() throws {
        let expected = try Self.expected()
        let loaded = try ModelFile.load(contentsOf: try Self.fixture("torch-sequential-nobias.safetensors"), hiddenActivations: [.relu])
        #expect(loaded.network.spec.shorthand == "20-8-3")
        #expect(TestSupport.close(try logits(loaded.network, expected.inputs), expected.nobias_logits.flatMap { $0 }, relative: 1e-5, absolute: 1e-5))
    }

    @Test("without activations, with the wrong number, or with foreign keys, loading is refused with the reason")
    func refusals() throws {
        let path = try Self.fixture("torch-sequential-tanh.safetensors")
        let none = #expect(throws: NeuralNetError.self) { try ModelFile.load(contentsOf: path) }
        #expect("\(none!)".contains("3 Linear layers (20→16→12→5)") && "\(none!)".contains("--activation"))
        let count = #expect(throws: NeuralNetError.self) { try ModelFile.load(contentsOf: path, hiddenActivations: [.relu, .relu, .relu]) }
        #expect("\(count!)".contains("2 activation slots"))

        func load(_ tensors: [(String, [Int])]) -> String {
            do {
                let bytes = try SafeTensors.serialize(tensors.map { ($0.0, .float32(shape: $0.1, values: [Float](repeating: 0.5, count: $0.1.reduce(1, *)))) }, metadata: [:])
                _ = try ModelFile.load(SafeTensors(bytes: bytes, source: "x.safetensors"), hiddenActivations: [.relu])
                return ""
            } catch { return "\(error)" }
        }
        #expect(load([("fc1.weight", [4, 3])]).contains("'fc1.weight' is not a key of a torch.nn.Sequential"))
        #expect(load([("0.weight", [4, 3]), ("3.weight", [2, 4])]).contains("2 modules between"))
        #expect(load([("1.weight", [4, 3])]).contains("first Linear layer is at index 1"))
        #expect(load([("0.weight", [4, 3]), ("2.weight", [2, 5])]).contains("takes 5 inputs but layer 0 gives 4"))
        #expect(load([("0.weight", [4, 3]), ("0.bias", [3]), ("2.weight", [2, 4])]).contains("expected [4]"))
        #expect(load([("0.weight", [4, 3]), ("2.weight", [2, 4]), ("4.bias", [2])]).contains("'4.bias' has no '4.weight'"))
        #expect(load([("0.weight", [4, 3]), ("1.weight", [2, 4])]) == "")  // adjacent Linear layers: no activation between
    }
}

@Suite("Model size bounds")
struct ModelBoundsTests {
    @Test("absurd architectures are refused before anything is allocated")
    func hugeArchitectures() throws {
        for text in ["784-1048576-1048576-10", "784-400000-10"] {
            let error = #expect(throws: NeuralNetError.self) { try ModelSpec.parse(text) }
            #expect("\(error!)".contains("parameters"), "\(text)")
        }
        let deep = "[" + [#"{"type":"dense","in":4,"out":4}"#] .joined() + String(repeating: #",{"type":"relu"}"#, count: 2000) + #",{"type":"dense","out":2}]"#
        #expect(throws: NeuralNetError.self) { try ModelSpec.parse(deep) }
        #expect(throws: NeuralNetError.self) { try ModelSpec.parse((0..<1100).map { _ in "4" }.joined(separator: "-")) }
        #expect(try ModelSpec.parse("784-256-256-10").parameterCount == 269_322)
    }

    @Test("a 200-byte file declaring a huge architecture is refused without allocating it")
    func hostileDeclaration() throws {
        let architecture = #"[{"type":"dense","in":784,"out":1048576},{"type":"relu"},{"type":"dense","out":1048576},{"type":"relu"},{"type":"dense","out":10}]"#
        let bytes = try SafeTensors.serialize([("0.weight", .float32(shape: [1], values: [0]))], metadata: ["architecture": architecture])
        let error = #expect(throws: NeuralNetError.self) { try ModelFile.load(SafeTensors(bytes: bytes, source: "bomb.safetensors")) }
        #expect("\(error!)".contains("parameters"))
        // Within the bounds but not matching the tensors: refused by the tensor check, before allocation.
        let small = try SafeTensors.serialize([("0.weight", .float32(shape: [1], values: [0]))],
                                              metadata: ["architecture": try ModelSpec.parse("784-4096-4096-10").json])
        let mismatch = #expect(throws: NeuralNetError.self) { try ModelFile.load(SafeTensors(bytes: small, source: "liar.safetensors")) }
        #expect("\(mismatch!)".contains("has shape [1]") && "\(mismatch!)".contains("[4096, 784]"))
    }
}

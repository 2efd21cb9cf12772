import Testing
import NeuralNet

@Suite("Model specs")
struct ModelSpecTests {
    @Test("shorthand with activation and dropout")
    func shorthand() throws {
        let spec = try ModelSpec.parse("784-256-256-10")
        #expect(spec.layers == [.dense(256), .relu, .dense(256), .relu, .dense(10)])
        #expect(spec.shorthand == "784-256-256-10")
        #expect(spec.torchSequential == "nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))")
        let tanh = try ModelSpec.parse("10-4-2", activation: .tanh, dropout: 0.2)
        #expect(tanh.layers == [.dense(4), .tanh, .dropout(probability: 0.2), .dense(2)])
        #expect(tanh.defaultInitialization == .xavier)
    }

    @Test("JSON layer list round-trips through its canonical form")
    func json() throws {
        let text = #"[{"type":"dense","in":8,"out":4},{"type":"leaky_relu","slope":0.2},{"type":"dropout","p":0.1},{"type":"dense","out":3}]"#
        let spec = try ModelSpec.parse(text)
        #expect(spec.layers == [.dense(4), .leakyReLU(slope: 0.2), .dropout(probability: 0.1), .dense(3)])
        #expect(try ModelSpec.parse(spec.json) == spec)
    }

    @Test("invalid specs say what is wrong", arguments: [
        ("784", "dash-separated"), ("784-x-10", "dash-separated"), ("784-0-10", "dense width 0"),
        ("784-256-1", "at least 2 classes"), ("[]", "must start"), (#"[{"type":"dense","in":4,"out":3},{"type":"conv"}]"#, "unknown type 'conv'"),
        (#"[{"type":"dense","in":4,"out":3},{"type":"dense","in":5,"out":2}]"#, "declares in=5"),
        (#"[{"type":"dense","in":4,"out":3},{"type":"dropout","p":1.5},{"type":"dense","out":2}]"#, "dropout p 1.5"),
        (#"[{"type":"dense","in":4,"out":3},{"type":"relu"}]"#, "last layer must be dense"),
        ("[{", "does not parse"),
    ])
    func invalid(text: String, expected: String) {
        let error = #expect(throws: NeuralNetError.self) { try ModelSpec.parse(text) }
        #expect(error.map { "\($0)" }?.contains(expected) == true, "\(String(describing: error))")
    }
}

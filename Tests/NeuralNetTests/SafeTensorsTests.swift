import Foundation
import Testing
import NeuralNet
import TensorCore
import _TestSupport

@Suite("safetensors model files")
struct SafeTensorsTests {
    func network() throws -> Sequential { Sequential(spec: try ModelSpec.parse("6-5-3"), seed: 3) }

    /// A hand-built file: 8-byte header length, JSON header, data.
    func file(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: (declaredLength ?? UInt64(header.utf8.count)).littleEndian) { bytes.append(contentsOf: $0) }
        return bytes + Array(header.utf8) + data
    }

    func error(_ bytes: [UInt8]) -> String {
        do {
            let parsed = try SafeTensors(bytes: bytes, source: "test.safetensors")
            _ = try ModelFile.load(parsed)
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test("round trip keeps weights, keys (PyTorch state-dict names) and metadata")
    func roundTrip() throws {
        let original = try network()
        let bytes = try ModelFile.serialize(original, metadata: ["seed": "3"])
        let parsed = try SafeTensors(bytes: bytes, source: "memory")
        #expect(Set(parsed.entries.keys) == ["0.weight", "0.bias", "2.weight", "2.bias"])
        #expect(parsed.entries["0.weight"]?.shape == [5, 6])
        #expect(parsed.metadata["seed"] == "3" && parsed.metadata["spec"] == "6-5-3")
        let headerLength = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(headerLength % 8 == 0)
        let loaded = try ModelFile.load(parsed)
        #expect(loaded.network.parameters.array == original.parameters.array)
    }

    @Test("an atomic save replaces the file and leaves no temporary files")
    func atomicSave() throws {
        let directory = TestSupport.temporaryDirectory()
        let path = directory + "/model.safetensors"
        try "old contents".write(toFile: path, atomically: false, encoding: .utf8)
        try ModelFile.save(try network(), to: path)
        #expect(try ModelFile.load(contentsOf: path).network.parameterCount == 53)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["model.safetensors"])
    }

    @Test("hostile headers are rejected with the reason")
    func hostileHeaders() {
        #expect(error([1, 2, 3]).contains("too short"))
        #expect(error(file(header: "{}", declaredLength: UInt64.max)).contains("exceeds the limit"))
        #expect(error(file(header: "{}", declaredLength: 50_000_000)).contains("does not fit in the file"))
        #expect(error(file(header: "{not json")).contains("does not parse"))
        #expect(error(file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 4))).contains("outside the data section"))
        #expect(error(file(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: [UInt8](repeating: 0, count: 4))).contains("byte count"))
        #expect(error(file(header: #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))).contains("invalid shape"))
        #expect(error(file(header: #"{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}"#, data: [0])).contains("unknown dtype"))
        #expect(error(file(header: #"{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])).contains("byte count"))
        let overlapping = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        #expect(error(file(header: overlapping, data: [UInt8](repeating: 0, count: 12))).contains("overlaps"))
        let gap = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        #expect(error(file(header: gap, data: [UInt8](repeating: 0, count: 8))).contains("unused bytes"))
        let trailing = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        #expect(error(file(header: trailing, data: [UInt8](repeating: 0, count: 9))).contains("after the last tensor"))
        #expect(error(file(header: #"{"__metadata__":{"a":1}}"#)).contains("does not parse"))
        #expect(error(file(header: #"{"__metadata__":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#)).contains("__metadata__ must be an object of strings"))
    }

    @Test("model files with a missing key, a wrong dtype or shape, or NaN weights are refused")
    func invalidModels() throws {
        let good = try network()
        func variant(_ transform: (inout [(name: String, value: SafeTensors.Value)]) -> Void) throws -> [UInt8] {
            var tensors: [(name: String, value: SafeTensors.Value)] = good.namedParameters.map {
                ($0.key, .float32(shape: $0.shape, values: Array(good.parameters.buffer[$0.range])))
            }
            transform(&tensors)
            return try SafeTensors.serialize(tensors, metadata: ModelFile.metadata(for: good))
        }
        #expect(error(try variant { $0.removeLast() }).contains("tensor '2.bias' is missing"))
        #expect(error(try variant { $0[3] = ("2.bias", .int64(shape: [3], values: [1, 2, 3])) }).contains("dtype I64; a floating-point dtype"))
        #expect(error(try variant { $0[3] = ("2.bias", .float32(shape: [1, 3], values: [1, 2, 3])) }).contains("has shape [1, 3]"))
        #expect(error(try variant { $0[3] = ("2.bias", .float32(shape: [3], values: [1, .nan, 3])) }).contains("NaN"))
        #expect(error(try variant { $0.append(("9.weight", .float32(shape: [1], values: [0]))) }).contains("'9.weight'"))
        let noArchitecture = try SafeTensors.serialize([("0.weight", .float32(shape: [3, 2], values: [0, 0, 0, 0, 0, 0]))], metadata: [:])
        #expect(error(noArchitecture).contains("no 'architecture'") && error(noArchitecture).contains("--activation"))
    }
}

import Foundation
import Testing
import Datasets
import _TestSupport

@Suite("IDX and gzip readers")
struct IDXTests {
    /// An IDX file of unsigned bytes with the given dimensions (data filled with 0, 1, 2, …).
    func idx(_ dimensions: [Int], type: UInt8 = 0x08, dataBytes: Int? = nil) -> [UInt8] {
        var bytes: [UInt8] = [0, 0, type, UInt8(dimensions.count)]
        for d in dimensions { bytes += [UInt8(d >> 24 & 0xff), UInt8(d >> 16 & 0xff), UInt8(d >> 8 & 0xff), UInt8(d & 0xff)] }
        let count = dataBytes ?? dimensions.reduce(1, *)
        return bytes + (0..<count).map { UInt8($0 % 256) }
    }

    func message(_ bytes: [UInt8]) -> String {
        do { _ = try IDXFile(bytes: bytes, source: "f.idx"); return "" } catch { return "\(error)" }
    }

    @Test("a valid file parses")
    func valid() throws {
        let file = try IDXFile(bytes: idx([3, 2, 2]), source: "f")
        #expect(file.dimensions == [3, 2, 2] && file.data.count == 12 && file.data[11] == 11)
    }

    @Test("corrupt and truncated files are rejected with the right message")
    func invalid() {
        #expect(message([0, 0]).contains("too short for the 4-byte magic"))
        #expect(message([1, 0, 8, 1, 0, 0, 0, 1, 0]).contains("magic number starts with 0x01 0x00"))
        #expect(message(idx([2], type: 0x0D)).contains("element type 0x0d (float32) is not supported"))
        #expect(message([0, 0, 8, 0]).contains("rank 0"))
        #expect(message([0, 0, 8, 9] + [UInt8](repeating: 0, count: 36)).contains("rank 9"))
        #expect(message([0, 0, 8, 3, 0, 0, 0, 1]).contains("header of a rank-3 file alone needs 16"))
        #expect(message(idx([0, 28])).contains("dimension 0 is 0"))
        #expect(message(idx([10, 28, 28], dataBytes: 7000)).contains("truncated: the header announces 10×28×28 = 7840 bytes of data, the file holds 7000"))
        #expect(message(idx([2, 2], dataBytes: 6)).contains("2 unexpected bytes follow"))
        #expect(message(idx([65535, 65535, 65535], dataBytes: 0)).contains("more than"))
    }

    @Test("gzip: files are decompressed; corrupt, truncated and oversized streams are errors")
    func gzip() throws {
        let directory = TestSupport.temporaryDirectory()
        let raw = idx([4, 3])
        let rawPath = directory + "/x-idx1-ubyte"
        try Data(raw).write(to: URL(fileURLWithPath: rawPath))
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/gzip")
        gzip.arguments = ["-k", rawPath]
        try gzip.run()
        gzip.waitUntilExit()
        let compressed = try [UInt8](Data(contentsOf: URL(fileURLWithPath: rawPath + ".gz")))
        #expect(try IDXFile(contentsOf: rawPath + ".gz").dimensions == [4, 3])
        #expect(try Gzip.decompress(compressed, source: "x") == raw)

        func gzipMessage(_ bytes: [UInt8], limit: Int = 1 << 20) -> String {
            do { _ = try Gzip.decompress(bytes, source: "x.gz", limit: limit); return "" } catch { return "\(error)" }
        }
        #expect(gzipMessage(Array(compressed.prefix(compressed.count - 12))).contains("truncated"))
        var corrupt = compressed
        corrupt[corrupt.count - 8] ^= 0xff  // the CRC-32 of the data
        #expect(gzipMessage(corrupt).contains("not a valid gzip file"))
        #expect(gzipMessage(compressed, limit: 10).contains("expands to more than 10 bytes"))
    }

    @Test("the committed Fashion-MNIST sample loads with pixels in [0, 1]")
    func sample() throws {
        let train = try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .train)
        let test = try MNISTFormat.load(directory: TestSupport.sampleDirectory, split: .test, limit: 100)
        #expect(train.count == 5000 && train.featureCount == 784 && train.classCount == 10)
        #expect(test.count == 100)
        #expect(train.features.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
        #expect(Set(train.labels) == Set(0..<10))
    }

    @Test("images and labels that disagree, and missing directories, are clear errors")
    func mismatches() throws {
        let directory = TestSupport.temporaryDirectory()
        try Data(idx([3, 2, 2])).write(to: URL(fileURLWithPath: directory + "/t10k-images-idx3-ubyte"))
        try Data(idx([4])).write(to: URL(fileURLWithPath: directory + "/t10k-labels-idx1-ubyte"))
        #expect(throws: DatasetError.mismatch("\(directory)/t10k-images-idx3-ubyte holds 3 images but \(directory)/t10k-labels-idx1-ubyte holds 4 labels")) {
            try MNISTFormat.load(directory: directory, split: .test)
        }
        let missing = #expect(throws: DatasetError.self) { try DataSource.locate(dataDirectory: directory + "/nope") }
        #expect("\(missing!)".contains("--data-dir"))
        let source = try DataSource.locate(dataDirectory: nil, environment: ["BULWARK_DATA_DIR": TestSupport.sampleDirectory])
        #expect(source.directory == TestSupport.sampleDirectory && source.description.contains("BULWARK_DATA_DIR"))
    }
}

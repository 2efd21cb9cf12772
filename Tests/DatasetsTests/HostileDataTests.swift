import Foundation
import Testing
import Datasets
import _FileSystem
import _TestSupport

/// Hostile data files (issue 14's campaign): each is refused with a message naming the problem,
/// or handled correctly, within seconds and bounded memory. Fixtures: Hostile/README.md.
@Suite("Hostile data files")
struct HostileDataTests {
    func fixture(_ name: String) throws -> String {
        try #require(Bundle.module.url(forResource: "Hostile/" + name, withExtension: nil)).path
    }

    func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = Date()
        try body()
        return Date().timeIntervalSince(start)
    }

    @Test("a gzip bomb stops at the size its IDX header announces, not at the 2 GiB bound")
    func decompressionBomb() throws {
        let path = try fixture("bomb-announces-100-images.idx3-ubyte.gz")
        var message = ""
        let elapsed = seconds { do { _ = try IDXFile(contentsOf: path) } catch { message = "\(error)" } }
        #expect(message.contains("more than the 78416 bytes its header announces"), "\(message)")
        #expect(elapsed < 2, "took \(elapsed) s")
    }

    @Test("with an example limit a compressed file inflates only the prefix the limit needs")
    func limitInflatesPrefix() throws {
        let directory = TestSupport.temporaryDirectory("hostile-idx")
        for (name, target) in [("large-60000-images.idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"),
                               ("large-60000-labels.idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz")] {
            try FileManager.default.copyItem(atPath: try fixture(name), toPath: directory + "/" + target)
        }
        let limited = try IDXFile(contentsOf: directory + "/t10k-images-idx3-ubyte.gz", maximumItems: 10)
        #expect(limited.dimensions == [60000, 28, 28] && limited.data.count == 10 * 784)
        let data = try MNISTFormat.load(directory: directory, split: .test, limit: 10)
        #expect(data.count == 10 && data.features.shape == [10, 784])
        // Without a limit the whole announced file is read and checked.
        #expect(try MNISTFormat.load(directory: directory, split: .test).count == 60000)
    }

    @Test("a 20 MB CSV field or line is refused quickly, quoting a short excerpt")
    func hugeField() throws {
        let field = "1," + String(repeating: "7", count: 20_000_000) + "\n"
        var message = ""
        let elapsed = seconds {
            do { _ = try CSVDataset.parse(Array(field.utf8), source: "f.csv") } catch { message = "\(error)" }
        }
        #expect(message.contains("more than the limit of \(CSVDataset.maximumLineBytes)") && message.count < 300, "\(message.prefix(300))")
        #expect(elapsed < 10, "took \(elapsed) s")
        let long = "1," + String(repeating: "7", count: 2_000_000) + "\n"
        do { _ = try CSVDataset.parse(Array(long.utf8), source: "f.csv"); Issue.record("a 2 MB field was accepted") } catch {
            #expect("\(error)".contains("longer than \(CSVDataset.maximumFieldCharacters) characters") && "\(error)".count < 300, "\(error)")
        }
        let line = "1," + Array(repeating: "0", count: 3_000_000).joined(separator: ",") + "\n"
        do { _ = try CSVDataset.parse(Array(line.utf8), source: "l.csv"); Issue.record("a 6 MB line was accepted") } catch {
            #expect("\(error)".contains("more than the limit of \(CSVDataset.maximumLineBytes)") && "\(error)".count < 300)
        }
    }

    @Test("a byte-order mark does not eat the first example; features made infinite by the scale are refused")
    func bomAndScale() throws {
        let bom = "\u{FEFF}1,2,3\n0,4,5\n"
        let data = try CSVDataset.parse(Array(bom.utf8), source: "b.csv")
        #expect(data.count == 2 && data.labels == [1, 0])
        let withHeader = try CSVDataset.parse(Array("\u{FEFF}label,a,b\n1,2,3\n".utf8), source: "h.csv")
        #expect(withHeader.count == 1)
        do {
            _ = try CSVDataset.parse(Array("1,3e30\n".utf8), source: "s.csv", options: .init(scale: 1e10))
            Issue.record("an infinite scaled feature was accepted")
        } catch {
            #expect("\(error)".contains("times the feature scale") && "\(error)".contains("not a finite number"), "\(error)")
        }
    }

    @Test("control characters from files are escaped before printing")
    func displayableText() {
        #expect(displayable("a\u{1B}[2Jb\u{0}\u{7}") == "a\\u{1B}[2Jb\\u{0}\\u{7}")
        #expect(displayable("\u{9B}x\u{7F}") == "\\u{9B}x\\u{7F}")
        #expect(displayable(String(repeating: "x", count: 100), limit: 10) == "xxxxxxxxxx… (90 more characters)")
        #expect(displayable("ünïcode ✓") == "ünïcode ✓")
    }

    @Test("paths split without Foundation's NSString path methods (which trap on a one-character name)")
    func pathText() {
        #expect(PathText.directory(of: "k") == "." && PathText.name(of: "k") == "k")
        #expect(PathText.directory(of: "/k") == "/" && PathText.name(of: "/k") == "k")
        #expect(PathText.directory(of: "a/b/c.json") == "a/b" && PathText.name(of: "a/b/c.json") == "c.json")
        #expect(PathText.directory(of: "dir/") == "." && PathText.name(of: "dir/") == "dir")
        #expect(PathText.directory(of: "./m") == "." && PathText.name(of: "./m") == "m")
    }
}

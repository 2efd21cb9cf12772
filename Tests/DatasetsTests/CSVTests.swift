import Testing
import Datasets
import TensorCore

@Suite("CSV reader")
struct CSVTests {
    func parse(_ text: String, labelColumn: Int = 0) throws -> LabeledData {
        try CSVDataset.parse(Array(text.utf8), source: "d.csv", options: .init(labelColumn: labelColumn, scale: 0.5))
    }

    func message(_ text: String) -> String {
        do { _ = try parse(text); return "" } catch { return "\(error)" }
    }

    @Test("header detection, quoted fields, CRLF, label column and scaling")
    func valid() throws {
        let data = try parse("\"label\",\"a, b\",c\r\n1,2,4\r\n0,\"6\",8\r\n\r\n")
        #expect(data.labels == [1, 0] && data.features.shape == [2, 2])
        #expect(data.features.scalars == [1, 2, 3, 4])
        let last = try parse("2,4,1\n6,8,0\n", labelColumn: -1)
        #expect(last.labels == [1, 0] && last.features.scalars == [1, 2, 3, 4])
    }

    @Test("errors name the line and the problem")
    func invalid() {
        #expect(message("1,2\n1,2,3\n").contains("d.csv, line 2: 3 columns, but earlier lines have 2"))
        #expect(message("1,2\n-1,2\n").contains("line 2: label '-1'"))
        #expect(message("1,2\n1,x\n").contains("line 2: feature 'x' in column 2 is not a finite number"))
        #expect(message("1,2\n1,1e50\n").contains("not a finite number"))
        #expect(message("1,\"2\n").contains("line 1: a quoted field is not closed"))
        #expect(message("label,x\n").contains("holds no data lines"))
        #expect(message("1\n").contains("needs a label and at least one feature"))
        #expect((try? CSVDataset.parse([0xff, 0xfe], source: "d.csv")) == nil)
    }
}

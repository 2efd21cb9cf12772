import TensorCore
import _FileSystem

/// Labelled numeric data in CSV (RFC 4180): one example per line, one column holding an integer
/// class label, every other column a feature.
///
/// A header line is detected when its label field is not a number. Quoted fields are accepted;
/// features must be finite numbers, labels non-negative integers, and every line must have the
/// same number of columns. Errors name the file, the line and the column.
public enum CSVDataset {
    public struct Options: Sendable {
        /// Zero-based column of the label; negative counts from the end (-1 = last column).
        public var labelColumn: Int
        /// Features are multiplied by this (1/255 turns 0–255 pixels into [0, 1]).
        public var scale: Float
        public var maximumColumns: Int

        public init(labelColumn: Int = 0, scale: Float = 1, maximumColumns: Int = 1 << 16) {
            self.labelColumn = labelColumn
            self.scale = scale
            self.maximumColumns = maximumColumns
        }
    }

    public static func load(path: String, options: Options = Options(), loader: any FileLoading = PlainFileLoader()) throws -> LabeledData {
        try parse(loader.load(path, limit: 1 << 31), source: path, options: options)
    }

    /// Parses CSV bytes.
    /// - Throws: `DatasetError.invalidCSV` with file, line and problem.
    public static func parse(_ bytes: [UInt8], source: String, options: Options = Options()) throws -> LabeledData {
        guard var text = String(validating: bytes, as: UTF8.self) else {
            throw DatasetError.invalidCSV(path: source, line: 1, problem: "the file is not UTF-8 text")
        }
        // A byte-order mark (spreadsheets write one) is not part of the first field.
        if text.unicodeScalars.first == "\u{FEFF}" { text.unicodeScalars.removeFirst() }
        var features: [Float] = []
        var labels: [Int] = []
        var columns: Int?
        var lineNumber = 0
        // "\r\n" is one Character in Swift, so both line endings are separators.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            guard line.utf8.count <= Self.maximumLineBytes else {
                throw DatasetError.invalidCSV(path: source, line: lineNumber, problem: "the line is \(line.utf8.count) bytes, more than the limit of \(Self.maximumLineBytes)")
            }
            let fields = try splitFields(line, source: source, line: lineNumber)
            guard fields.count <= options.maximumColumns else {
                throw DatasetError.invalidCSV(path: source, line: lineNumber, problem: "\(fields.count) columns exceed the limit of \(options.maximumColumns)")
            }
            guard fields.count >= 2 else {
                throw DatasetError.invalidCSV(path: source, line: lineNumber, problem: "a line needs a label and at least one feature, found \(fields.count) column")
            }
            let labelIndex = options.labelColumn >= 0 ? options.labelColumn : fields.count + options.labelColumn
            guard labelIndex >= 0, labelIndex < fields.count else {
                throw DatasetError.invalidCSV(path: source, line: lineNumber, problem: "label column \(options.labelColumn) does not exist in a line of \(fields.count) columns")
            }
            if let columns, fields.count != columns {
                throw DatasetError.invalidCSV(path: source, line: lineNumber, problem: "\(fields.count) columns, but earlier lines have \(columns)")
            }
            if columns == nil && labels.isEmpty && Double(fields[labelIndex]) == nil {
                columns = fields.count  // header line
                continue
            }
            columns = fields.count
            guard let labelValue = Double(fields[labelIndex]), labelValue >= 0, labelValue == labelValue.rounded(), labelValue < 1e6 else {
                throw DatasetError.invalidCSV(path: source, line: lineNumber, problem: "label '\(displayable(fields[labelIndex], limit: 40))' in column \(labelIndex + 1) is not a non-negative integer")
            }
            labels.append(Int(labelValue))
            for (index, field) in fields.enumerated() where index != labelIndex {
                guard let value = Float(field), value.isFinite else {
                    throw DatasetError.invalidCSV(path: source, line: lineNumber, problem: "feature '\(displayable(field, limit: 40))' in column \(index + 1) is not a finite number")
                }
                let scaled = value * options.scale
                guard scaled.isFinite else {
                    throw DatasetError.invalidCSV(path: source, line: lineNumber, problem: "feature \(field) in column \(index + 1) times the feature scale \(options.scale) is \(scaled), not a finite number; use a smaller scale")
                }
                features.append(scaled)
            }
        }
        guard let columns, !labels.isEmpty else {
            throw DatasetError.invalidCSV(path: source, line: lineNumber, problem: "the file holds no data lines")
        }
        let classCount = (labels.max() ?? 0) + 1
        return LabeledData(features: Tensor(shape: [labels.count, columns - 1], scalars: features), labels: labels,
                           classCount: max(classCount, 2))
    }

    /// Longest line accepted (a line of 65,536 numbers fits easily).
    public static let maximumLineBytes = 4 << 20
    /// Longest field accepted (a number or a column name is far shorter).
    public static let maximumFieldCharacters = 1024

    /// Splits one line into fields, honouring double quotes ("" inside quotes is a literal quote).
    static func splitFields(_ line: Substring, source: String, line lineNumber: Int) throws -> [String] {
        var fields: [String] = []
        var current = ""
        var length = 0  // characters in `current` (String.count would walk it every time)
        var inQuotes = false
        var index = line.startIndex
        func append(_ character: Character) throws {
            current.append(character)
            length += 1
            if length > Self.maximumFieldCharacters {
                throw DatasetError.invalidCSV(path: source, line: lineNumber, problem: "field \(fields.count + 1) ('\(displayable(current, limit: 40))') is longer than \(Self.maximumFieldCharacters) characters")
            }
        }
        while index < line.endIndex {
            let character = line[index]
            if inQuotes {
                if character == "\"" {
                    let next = line.index(after: index)
                    if next < line.endIndex && line[next] == "\"" {
                        try append("\"")
                        index = next
                    } else {
                        inQuotes = false
                    }
                } else {
                    try append(character)
                }
            } else if character == "\"" && current.isEmpty {
                inQuotes = true
            } else if character == "," {
                fields.append(current.trimmingSpaces)
                current = ""
                length = 0
            } else {
                try append(character)
            }
            index = line.index(after: index)
        }
        guard !inQuotes else {
            throw DatasetError.invalidCSV(path: source, line: lineNumber, problem: "a quoted field is not closed (fields may not span lines)")
        }
        fields.append(current.trimmingSpaces)
        return fields
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s.removeFirst() }
        while s.last == " " || s.last == "\t" { s.removeLast() }
        return String(s)
    }
}

/// Text that came from a file, made safe to print: control characters (C0, DEL, C1) are shown as
/// escapes (`\u{1B}`), so a hostile file cannot move the cursor, clear the screen or retitle the
/// terminal; with `limit`, at most that many characters are kept (a 20 MB field is quoted as a
/// short excerpt, with how much was left out).
public func displayable(_ text: some StringProtocol, limit: Int? = nil) -> String {
    var result = ""
    var shown = 0
    for scalar in text.unicodeScalars {
        if let limit, shown >= limit {
            let rest = text.unicodeScalars.count - shown
            return result + "… (\(rest) more characters)"
        }
        let value = scalar.value
        if value < 0x20 || (0x7F...0x9F).contains(value) {
            result += "\\u{" + String(value, radix: 16, uppercase: true) + "}"
        } else {
            result.unicodeScalars.append(scalar)
        }
        shown += 1
    }
    return result
}

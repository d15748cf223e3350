/// Splits CSV/TSV text into rows of fields, RFC 4180 style: a field in double quotes may hold
/// delimiters, newlines and doubled quotes (`""`); a quote inside an unquoted field is kept
/// as a character (as Python's `csv` does). Rows remember the line they start on.
struct DelimitedParser {
  struct Row {
    /// 1-based line where the row starts.
    let line: Int
    let fields: [String]
  }

  let delimiter: UInt8
  let file: String

  /// Every non-blank row, or a per-row error (a bad row does not stop the rows after it).
  /// An unterminated quote swallows the rest of the file, so it throws.
  func rows(_ bytes: [UInt8]) throws -> [Result<Row, DataError>] {
    var result: [Result<Row, DataError>] = []
    var fields: [String] = []
    var field: [UInt8] = []
    var line = 1
    var rowLine = 1
    var quoteLine = 0
    var rowError: DataError? = nil
    var i = 0
    let quote = UInt8(ascii: "\"")
    let newline = UInt8(ascii: "\n")
    let cr = UInt8(ascii: "\r")

    func finishField() {
      if let text = String(validating: field, as: UTF8.self) {
        fields.append(text)
      } else if rowError == nil {
        rowError = DataError(.malformedCaption, file: file, line: rowLine, "not valid UTF-8 text")
      }
      field.removeAll(keepingCapacity: true)
    }
    func finishRow() {
      finishField()
      let blank = fields.count == 1 && fields[0].allSatisfy(\.isWhitespace)
      if let rowError {
        result.append(.failure(rowError))
      } else if !blank {
        result.append(.success(Row(line: rowLine, fields: fields)))
      }
      fields.removeAll(keepingCapacity: true)
      rowError = nil
    }

    while i < bytes.count {
      let byte = bytes[i]
      if byte == quote && field.isEmpty {
        // A quoted field: runs to the closing quote, across newlines.
        quoteLine = line
        i += 1
        var closed = false
        while i < bytes.count {
          let b = bytes[i]
          if b == quote {
            if i + 1 < bytes.count && bytes[i + 1] == quote {
              field.append(quote)
              i += 2
              continue
            }
            closed = true
            i += 1
            break
          }
          if b == newline { line += 1 }
          field.append(b)
          i += 1
        }
        guard closed else {
          throw DataError(.malformedCaption, file: file, line: quoteLine, "quoted field is never closed (a stray \" ?)")
        }
        // After the closing quote only a delimiter or the end of the line may follow; stray
        // text marks the row bad and is skipped, so the rows after it still parse.
        if i < bytes.count, bytes[i] != delimiter, bytes[i] != newline, bytes[i] != cr {
          if rowError == nil {
            rowError = DataError(.malformedCaption, file: file, line: line, "unexpected text after a closing quote")
          }
          while i < bytes.count && bytes[i] != delimiter && bytes[i] != newline { i += 1 }
        }
        continue
      }
      if byte == delimiter {
        finishField()
      } else if byte == newline {
        finishRow()
        line += 1
        rowLine = line
      } else if byte == cr && i + 1 < bytes.count && bytes[i + 1] == newline {
        // CRLF: the \n ends the row.
      } else {
        field.append(byte)
      }
      i += 1
    }
    if !field.isEmpty || !fields.isEmpty { finishRow() }
    return result
  }
}

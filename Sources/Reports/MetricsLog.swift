import Foundation

/// One line of a metrics log: where training was (`step`, `epoch`, seconds since the run
/// started) and any number of named scalars.
public struct MetricRecord: Equatable, Sendable {
  public var step: Int
  public var epoch: Int?
  /// Seconds since the run started.
  public var time: Double?
  /// Named scalars, e.g. `"loss/total": 0.42`. Must not use the keys `step`, `epoch`, `time`.
  public var values: [String: Double]

  public init(step: Int, epoch: Int? = nil, time: Double? = nil, values: [String: Double]) {
    self.step = step
    self.epoch = epoch
    self.time = time
    self.values = values
  }

  /// The keys the record itself uses; a scalar may not be named after one of them.
  public static let reservedKeys: Set<String> = ["step", "epoch", "time"]

  /// The record as one JSON object with sorted keys and Python's `json.dumps` spacing:
  /// `{"epoch": 0, "loss": 0.5, "step": 10, "time": 1.25}`. Non-finite values are written as
  /// `NaN` / `Infinity` / `-Infinity`, as Python's json module writes and reads them.
  public func jsonLine() throws -> String {
    var fields: [(String, String)] = [("step", String(step))]
    if let epoch { fields.append(("epoch", String(epoch))) }
    if let time { fields.append(("time", jsonNumber(time))) }
    for (key, value) in values {
      if Self.reservedKeys.contains(key) {
        throw ReportsError("metric name \"\(key)\" is reserved for the record itself; rename the scalar")
      }
      fields.append((key, jsonNumber(value)))
    }
    fields.sort { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) }
    return "{" + fields.map { "\(jsonString($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
  }
}

/// An append-only JSON-lines metrics log (`metrics.jsonl`): one `MetricRecord` per line,
/// each line handed to the OS in a single write as soon as it is logged, so a run that is
/// killed keeps every complete line.
///
/// ```swift
/// let log = try MetricsLog(path: "runs/a/metrics.jsonl", resumingAfterStep: checkpoint.step)
/// try log.write(step: 100, epoch: 0, time: clock.seconds, ["loss/total": 0.42])
/// let records = try MetricsLog.read("runs/a/metrics.jsonl")
/// ```
public final class MetricsLog {
  public let path: String
  private let handle: FileHandle

  /// Opens `path` for appending, creating it. A partial last line left by a crash is cut off
  /// first, so the next record starts on a line of its own. With `resumingAfterStep`, records
  /// with a larger step (logged after the checkpoint being resumed) are dropped first.
  /// - Parameters:
  ///   - path: the log file.
  ///   - resumingAfterStep: the step of the checkpoint a resumed run starts from.
  public init(path: String, resumingAfterStep: Int? = nil) throws {
    self.path = path
    if let step = resumingAfterStep, FileManager.default.fileExists(atPath: path) {
      try Self.truncate(path, afterStep: step)
    }
    try Self.dropPartialLastLine(path)
    handle = try openForAppending(path)
  }

  deinit { try? handle.close() }

  /// Appends one record as one line.
  public func write(_ record: MetricRecord) throws {
    let line = try record.jsonLine() + "\n"
    do {
      try handle.write(contentsOf: Data(line.utf8))
    } catch {
      throw ReportsError("\(path): cannot append a metrics line: \(error)")
    }
  }

  /// Appends `values` logged at `step`.
  public func write(step: Int, epoch: Int? = nil, time: Double? = nil, _ values: [String: Double]) throws {
    try write(MetricRecord(step: step, epoch: epoch, time: time, values: values))
  }

  /// Every record in the log at `path`. A malformed last line without its newline — a write
  /// cut short by a crash — is ignored; any other malformed line is an error naming its line.
  public static func read(_ path: String) throws -> [MetricRecord] {
    try parse(try readFile(path), source: path).map(\.record)
  }

  /// Rewrites the log at `path` atomically, keeping only the records with `step <= step`
  /// (and the lines exactly as they were written).
  public static func truncate(_ path: String, afterStep step: Int) throws {
    let lines = try parse(try readFile(path), source: path)
    let kept = lines.filter { $0.record.step <= step }.map { $0.text + "\n" }.joined()
    try writeAtomically(Data(kept.utf8), to: path)
  }

  /// The parsed lines of a log: each record with the exact text it was read from.
  static func parse(_ data: Data, source: String) throws -> [(record: MetricRecord, text: String)] {
    let text = String(decoding: data, as: UTF8.self)
    let endsWithNewline = text.hasSuffix("\n")
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    var result: [(record: MetricRecord, text: String)] = []
    for (index, line) in lines.enumerated() {
      let isLast = index == lines.count - 1
      let trimmed = line.trimmingCharacters(in: .whitespaces)
      if trimmed.isEmpty { continue }
      do {
        result.append((try parseRecord(String(line)), String(line)))
      } catch let error as ReportsError {
        if isLast && !endsWithNewline { break }  // a line cut short by a crash
        throw ReportsError("\(source):\(index + 1): \(error.message)")
      }
    }
    return result
  }

  private static func readFile(_ path: String) throws -> Data {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ReportsError("\(path): cannot read the metrics log (missing or unreadable)")
    }
    return data
  }

  /// A last line without its newline is either a complete record (the newline is added) or
  /// a write cut short by a crash (the line is cut off).
  private static func dropPartialLastLine(_ path: String) throws {
    guard let data = FileManager.default.contents(atPath: path), let last = data.last, last != UInt8(ascii: "\n")
    else { return }
    let lineStart = data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? data.startIndex
    let partial = String(decoding: data[lineStart...], as: UTF8.self)
    if (try? parseRecord(partial)) != nil {
      try writeAtomically(data + Data("\n".utf8), to: path)
    } else {
      try writeAtomically(data.subdata(in: data.startIndex..<lineStart), to: path)
    }
  }

  private static func parseRecord(_ line: String) throws -> MetricRecord {
    var parser = FlatJSONParser(line)
    let fields = try parser.parseObject()
    var record = MetricRecord(step: 0, values: [:])
    var sawStep = false
    for (key, number) in fields {
      switch key {
      case "step":
        guard let step = number.integer else { throw ReportsError("\"step\" must be an integer, got \(number.text)") }
        record.step = step
        sawStep = true
      case "epoch":
        guard let epoch = number.integer else { throw ReportsError("\"epoch\" must be an integer, got \(number.text)") }
        record.epoch = epoch
      case "time": record.time = number.value
      default: record.values[key] = number.value
      }
    }
    if !sawStep { throw ReportsError("record has no \"step\"") }
    return record
  }
}

// MARK: - JSON for flat objects of numbers

/// `value` as a JSON number (Python's spellings for the non-finite values).
func jsonNumber(_ value: Double) -> String {
  if value.isNaN { return "NaN" }
  if value.isInfinite { return value > 0 ? "Infinity" : "-Infinity" }
  return "\(value)"
}

/// `text` as a JSON string literal.
func jsonString(_ text: String) -> String {
  var out = "\""
  for scalar in text.unicodeScalars {
    switch scalar {
    case "\"": out += "\\\""
    case "\\": out += "\\\\"
    case "\n": out += "\\n"
    case "\r": out += "\\r"
    case "\t": out += "\\t"
    case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
    default: out.unicodeScalars.append(scalar)
    }
  }
  return out + "\""
}

/// A parser for the one shape of JSON a metrics line has: an object whose values are numbers
/// (or `NaN`, `Infinity`, `-Infinity`, and `null`, read as NaN).
struct FlatJSONParser {
  struct Number {
    let text: String
    let value: Double
    var integer: Int? { Int(text) }
  }

  private let scalars: [Unicode.Scalar]
  private var position = 0

  init(_ text: String) { scalars = Array(text.unicodeScalars) }

  mutating func parseObject() throws -> [(String, Number)] {
    skipSpaces()
    try expect("{")
    var fields: [(String, Number)] = []
    skipSpaces()
    if peek == "}" {
      position += 1
    } else {
      while true {
        skipSpaces()
        let key = try parseString()
        skipSpaces()
        try expect(":", after: "key \"\(key)\"")
        skipSpaces()
        fields.append((key, try parseNumber(for: key)))
        skipSpaces()
        if peek == "," {
          position += 1
          continue
        }
        try expect("}", after: "value of \"\(key)\"")
        break
      }
    }
    skipSpaces()
    if position < scalars.count { throw error("unexpected text after the object") }
    return fields
  }

  private var peek: Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

  private mutating func skipSpaces() {
    while let c = peek, c == " " || c == "\t" || c == "\r" { position += 1 }
  }

  private mutating func expect(_ c: Unicode.Scalar, after context: String? = nil) throws {
    guard peek == c else {
      let found = peek.map { "'\($0)'" } ?? "end of line"
      throw error("expected '\(c)'\(context.map { " after \($0)" } ?? ""), found \(found)")
    }
    position += 1
  }

  private func error(_ message: String) -> ReportsError {
    ReportsError("\(message) (column \(position + 1))")
  }

  private mutating func parseString() throws -> String {
    try expect("\"")
    var out = String.UnicodeScalarView()
    while let c = peek {
      position += 1
      switch c {
      case "\"": return String(out)
      case "\\":
        guard let e = peek else { break }
        position += 1
        switch e {
        case "\"", "\\", "/": out.append(e)
        case "n": out.append("\n")
        case "t": out.append("\t")
        case "r": out.append("\r")
        case "b": out.append("\u{8}")
        case "f": out.append("\u{c}")
        case "u":
          guard position + 4 <= scalars.count,
            let code = UInt32(String(String.UnicodeScalarView(scalars[position..<position + 4])), radix: 16),
            let scalar = Unicode.Scalar(code)
          else { throw error("bad \\u escape") }
          out.append(scalar)
          position += 4
        default: throw error("bad escape '\\\(e)'")
        }
      default: out.append(c)
      }
    }
    throw error("unterminated string")
  }

  private mutating func parseNumber(for key: String) throws -> Number {
    let start = position
    while let c = peek,
      c == "-" || c == "+" || c == "." || ("0"..."9").contains(c) || c == "e" || c == "E"
        || ("A"..."Z").contains(c) || ("a"..."z").contains(c)
    {
      position += 1
    }
    let text = String(String.UnicodeScalarView(scalars[start..<position]))
    switch text {
    case "NaN", "null": return Number(text: text, value: .nan)
    case "Infinity": return Number(text: text, value: .infinity)
    case "-Infinity": return Number(text: text, value: -.infinity)
    default:
      let numeric = text.unicodeScalars.allSatisfy { "-+.eE".unicodeScalars.contains($0) || ("0"..."9").contains($0) }
      guard !text.isEmpty, numeric, text.first != "+", let value = Double(text) else {
        if text.isEmpty, let c = peek { throw error("value of \"\(key)\" is not a number (starts with '\(c)')") }
        throw error("value of \"\(key)\" is not a number: \(text.isEmpty ? "nothing" : text)")
      }
      return Number(text: text, value: value)
    }
  }
}

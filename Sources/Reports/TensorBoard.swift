import Foundation

/// One TensorBoard `Event` (tensorflow/core/util/event.proto), restricted to what a training
/// log needs: the file-version header and scalar summaries.
///
///     Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
///     Summary { repeated Value value = 1; }
///     Value   { string tag = 1; float simple_value = 2; }
public struct TensorBoardEvent: Equatable, Sendable {
  public struct Scalar: Equatable, Sendable {
    public var tag: String
    public var value: Float
    public init(tag: String, value: Float) {
      self.tag = tag
      self.value = value
    }
  }

  /// Seconds since 1970.
  public var wallTime: Double
  public var step: Int64
  /// Set on the first event of a file only: `"brain.Event:2"`.
  public var fileVersion: String?
  public var scalars: [Scalar]

  public init(wallTime: Double, step: Int64 = 0, fileVersion: String? = nil, scalars: [Scalar] = []) {
    self.wallTime = wallTime
    self.step = step
    self.fileVersion = fileVersion
    self.scalars = scalars
  }

  /// The event's protobuf wire encoding.
  public func encoded() -> Data {
    var event = ProtobufWriter()
    event.double(field: 1, wallTime)
    event.varint(field: 2, UInt64(bitPattern: step))
    if let fileVersion { event.bytes(field: 3, Data(fileVersion.utf8)) }
    if !scalars.isEmpty {
      var summary = ProtobufWriter()
      for scalar in scalars {
        var value = ProtobufWriter()
        value.bytes(field: 1, Data(scalar.tag.utf8))
        value.float(field: 2, scalar.value)
        summary.bytes(field: 1, value.data)
      }
      event.bytes(field: 5, summary.data)
    }
    return event.data
  }

  /// Decodes an event written by `encoded()` (other fields of the real `Event` are skipped).
  public static func decode(_ data: Data) throws -> TensorBoardEvent {
    var event = TensorBoardEvent(wallTime: 0)
    var reader = ProtobufReader(data, context: "Event")
    while let (field, value) = try reader.next() {
      switch (field, value) {
      case (1, .fixed64(let bits)): event.wallTime = Double(bitPattern: bits)
      case (2, .varint(let v)): event.step = Int64(bitPattern: v)
      case (3, .bytes(let b)): event.fileVersion = String(decoding: b, as: UTF8.self)
      case (5, .bytes(let summaryBytes)):
        var summary = ProtobufReader(summaryBytes, context: "Summary")
        while let (field, value) = try summary.next() {
          guard field == 1, case .bytes(let valueBytes) = value else { continue }
          var scalar = Scalar(tag: "", value: 0)
          var valueReader = ProtobufReader(valueBytes, context: "Summary.Value")
          while let (field, value) = try valueReader.next() {
            switch (field, value) {
            case (1, .bytes(let b)): scalar.tag = String(decoding: b, as: UTF8.self)
            case (2, .fixed32(let bits)): scalar.value = Float(bitPattern: bits)
            default: break
            }
          }
          event.scalars.append(scalar)
        }
      default: break
      }
    }
    return event
  }
}

/// Writes scalars to a TensorBoard event file `events.out.tfevents.<time>.<host>.<pid>.<n>`
/// in `directory` (the `.<pid>.<n>` suffix, as PyTorch's SummaryWriter adds, keeps two writers
/// started in the same second apart). Every event reaches the OS as soon as it is added, so
/// TensorBoard shows a run while it trains and a killed run keeps what it logged.
///
/// ```swift
/// let tb = try TensorBoardWriter(directory: "runs/a/tensorboard")
/// try tb.addScalar("loss/total", 0.42, step: 100)
/// ```
public final class TensorBoardWriter {
  /// The event file.
  public let path: String
  private let records: TFRecordWriter
  nonisolated(unsafe) private static var filesOpened = 0
  private static let lock = NSLock()

  /// Creates `directory` if needed and starts a new event file with the file-version event.
  /// - Parameters:
  ///   - wallTime: the file's start time (seconds since 1970), used in its name and first event.
  ///   - host: the host name in the file name; defaults to this machine's.
  public init(directory: String, wallTime: Double = Date().timeIntervalSince1970, host: String? = nil) throws {
    try makeDirectory(directory)
    let counter = Self.lock.withLock {
      defer { Self.filesOpened += 1 }
      return Self.filesOpened
    }
    let hostName = (host ?? ProcessInfo.processInfo.hostName).unicodeScalars
      .map { ($0.isASCII && CharacterSet.alphanumerics.contains($0)) || $0 == "-" || $0 == "_" || $0 == "." ? String($0) : "_" }
      .joined()
    let pid = ProcessInfo.processInfo.processIdentifier
    let name = "events.out.tfevents.\(String(format: "%010d", Int(wallTime))).\(hostName).\(pid).\(counter)"
    path = URL(fileURLWithPath: directory).appendingPathComponent(name).path
    records = try TFRecordWriter(path: path)
    try write(TensorBoardEvent(wallTime: wallTime, fileVersion: "brain.Event:2"))
  }

  /// Appends one event.
  public func write(_ event: TensorBoardEvent) throws {
    try records.write(event.encoded())
  }

  /// Logs one scalar at `step` (stored as a 32-bit float, as TensorBoard keeps scalars).
  public func addScalar(_ tag: String, _ value: Double, step: Int, wallTime: Double = Date().timeIntervalSince1970) throws {
    try addScalars([tag: value], step: step, wallTime: wallTime)
  }

  /// Logs several scalars at `step` in one event (tags in sorted order).
  public func addScalars(_ values: [String: Double], step: Int, wallTime: Double = Date().timeIntervalSince1970) throws {
    guard !values.isEmpty else { return }
    let scalars = values.keys.sorted().map { TensorBoardEvent.Scalar(tag: $0, value: Float(values[$0]!)) }
    try write(TensorBoardEvent(wallTime: wallTime, step: Int64(step), scalars: scalars))
  }

  /// Logs every value of a metrics-log record at its step.
  public func add(_ record: MetricRecord, wallTime: Double = Date().timeIntervalSince1970) throws {
    try addScalars(record.values, step: record.step, wallTime: wallTime)
  }
}

// MARK: - Protocol buffers wire format

/// Hand-written protobuf encoding of the few field kinds an event uses.
struct ProtobufWriter {
  private(set) var data = Data()

  mutating func varint(field: Int, _ value: UInt64) {
    key(field, wireType: 0)
    rawVarint(value)
  }

  mutating func double(field: Int, _ value: Double) {
    key(field, wireType: 1)
    withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
  }

  /// A length-delimited field: a string, bytes, or an embedded message.
  mutating func bytes(field: Int, _ value: Data) {
    key(field, wireType: 2)
    rawVarint(UInt64(value.count))
    data.append(value)
  }

  mutating func float(field: Int, _ value: Float) {
    key(field, wireType: 5)
    withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
  }

  private mutating func key(_ field: Int, wireType: UInt64) {
    rawVarint(UInt64(field) << 3 | wireType)
  }

  private mutating func rawVarint(_ value: UInt64) {
    var v = value
    while v >= 0x80 {
      data.append(UInt8(v & 0x7F) | 0x80)
      v >>= 7
    }
    data.append(UInt8(v))
  }
}

/// Reads protobuf fields one at a time; unknown fields come back for the caller to skip.
struct ProtobufReader {
  enum Value {
    case varint(UInt64)
    case fixed64(UInt64)
    case bytes(Data)
    case fixed32(UInt32)
  }

  private let bytes: [UInt8]
  private let context: String
  private var offset = 0

  init(_ data: Data, context: String) {
    bytes = [UInt8](data)
    self.context = context
  }

  mutating func next() throws -> (field: Int, value: Value)? {
    guard offset < bytes.count else { return nil }
    let key = try varint()
    let field = Int(key >> 3)
    switch key & 7 {
    case 0: return (field, .varint(try varint()))
    case 1: return (field, .fixed64(try fixed(8)))
    case 2:
      let length = Int(try varint())
      guard length <= bytes.count - offset else { throw truncated() }
      defer { offset += length }
      return (field, .bytes(Data(bytes[offset..<offset + length])))
    case 5: return (field, .fixed32(UInt32(try fixed(4))))
    default: throw ReportsError("\(context): unsupported wire type \(key & 7) for field \(field) at byte \(offset)")
    }
  }

  private func truncated() -> ReportsError {
    ReportsError("\(context): truncated protobuf at byte \(offset) of \(bytes.count)")
  }

  private mutating func varint() throws -> UInt64 {
    var value: UInt64 = 0
    var shift: UInt64 = 0
    while offset < bytes.count, shift < 64 {
      let byte = bytes[offset]
      offset += 1
      value |= UInt64(byte & 0x7F) << shift
      if byte < 0x80 { return value }
      shift += 7
    }
    throw truncated()
  }

  private mutating func fixed(_ size: Int) throws -> UInt64 {
    guard size <= bytes.count - offset else { throw truncated() }
    var value: UInt64 = 0
    for i in 0..<size { value |= UInt64(bytes[offset + i]) << (8 * i) }
    offset += size
    return value
  }
}

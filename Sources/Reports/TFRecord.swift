import Foundation

/// TFRecord framing, the container of TensorBoard event files. Each record is
///
///     uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
///
/// with every integer little-endian.
public enum TFRecord {
  /// `payload` framed as one record.
  public static func frame(_ payload: Data) -> Data {
    var length = withUnsafeBytes(of: UInt64(payload.count).littleEndian) { Data($0) }
    let lengthCRC = CRC32C.maskedChecksum(length)
    appendLittleEndian(lengthCRC, to: &length)
    var out = length
    out.append(payload)
    appendLittleEndian(CRC32C.maskedChecksum(payload), to: &out)
    return out
  }

  /// The payloads of the records in `data`, every checksum verified.
  /// - Parameters:
  ///   - source: names the data in errors (a file path).
  ///   - allowTruncatedTail: accept a last record cut short (a writer killed mid-write) and
  ///     return the records before it; otherwise that is an error.
  public static func records(in data: Data, source: String = "TFRecord data", allowTruncatedTail: Bool = false) throws
    -> [Data]
  {
    let bytes = [UInt8](data)
    var records: [Data] = []
    var offset = 0
    while offset < bytes.count {
      func truncated(_ what: String) throws -> [Data] {
        if allowTruncatedTail { return records }
        throw ReportsError(
          "\(source): record \(records.count) at byte \(offset) is truncated (\(what)); the file ends at byte \(bytes.count)")
      }
      guard offset + 12 <= bytes.count else { return try truncated("header") }
      let length = readLittleEndian(UInt64.self, bytes, at: offset)
      let lengthCRC = readLittleEndian(UInt32.self, bytes, at: offset + 8)
      guard CRC32C.maskedChecksum(bytes[offset..<offset + 8]) == lengthCRC else {
        throw ReportsError("\(source): record \(records.count) at byte \(offset): length checksum mismatch (corrupt file)")
      }
      guard length <= UInt64(bytes.count - offset - 12), bytes.count - offset - 12 - Int(length) >= 4 else {
        return try truncated("\(length)-byte payload")
      }
      let start = offset + 12
      let end = start + Int(length)
      let dataCRC = readLittleEndian(UInt32.self, bytes, at: end)
      guard CRC32C.maskedChecksum(bytes[start..<end]) == dataCRC else {
        throw ReportsError("\(source): record \(records.count) at byte \(offset): data checksum mismatch (corrupt file)")
      }
      records.append(Data(bytes[start..<end]))
      offset = end + 4
    }
    return records
  }

  /// The payloads of the records in the file at `path`, every checksum verified.
  public static func read(_ path: String, allowTruncatedTail: Bool = false) throws -> [Data] {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ReportsError("\(path): cannot read the TFRecord file (missing or unreadable)")
    }
    return try records(in: data, source: path, allowTruncatedTail: allowTruncatedTail)
  }

  private static func appendLittleEndian(_ value: UInt32, to data: inout Data) {
    withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
  }

  private static func readLittleEndian<T: FixedWidthInteger>(_: T.Type, _ bytes: [UInt8], at offset: Int) -> T {
    var value: T = 0
    for i in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + i]) << (8 * i) }
    return value
  }
}

/// Appends framed records to a file, each handed to the OS in one write as it is added.
public final class TFRecordWriter {
  public let path: String
  private let handle: FileHandle

  /// Opens `path` for appending, creating it.
  public init(path: String) throws {
    self.path = path
    handle = try openForAppending(path)
  }

  deinit { try? handle.close() }

  /// Appends `payload` as one record.
  public func write(_ payload: Data) throws {
    do {
      try handle.write(contentsOf: TFRecord.frame(payload))
    } catch {
      throw ReportsError("\(path): cannot append a record: \(error)")
    }
  }

  /// Forces the written records to disk (they are already visible to readers after `write`).
  public func sync() throws {
    try handle.synchronize()
  }
}

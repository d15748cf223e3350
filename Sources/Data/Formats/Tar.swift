import CZlib
import Foundation

/// A tar archive read one member at a time, straight from disk: plain or gzip-compressed
/// (zlib reads both), ustar, GNU (long names) and pax (`path`, `size` records) headers.
/// Only the current member is in memory. Replaces libarchive, whose dependency chain (libxml2,
/// ICU, nettle, …) was most of what a bundle for machines without our toolchain had to carry.
///
/// ```swift
/// let tar = try TarReader("shards/00000.tar")
/// while let member = try tar.next() { print(member.name, member.bytes.count) }
/// ```
public final class TarReader {
  public let path: String
  private var file: gzFile?
  /// Bytes consumed so far (uncompressed), for error messages.
  private var offset = 0

  /// The file's size on disk: a seek past it means the archive was cut short.
  private let fileSize: Int

  public init(_ path: String) throws {
    self.path = path
    guard FileManager.default.fileExists(atPath: path) else {
      throw DataError(.unreadableFile, file: path, "no such file")
    }
    fileSize = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int) ?? Int.max
    if let magic = FileHandle(forReadingAtPath: path).flatMap({ try? $0.read(upToCount: 6) }), let format = Self.unsupported(Array(magic)) {
      throw DataError(.unreadableFile, file: path, "a \(format)-compressed tar; only plain .tar and gzip (.tar.gz) shards are read")
    }
    guard let file = gzopen(path, "rb") else { throw DataError(.unreadableFile, file: path, "cannot open") }
    gzbuffer(file, 1 << 17)
    self.file = file
  }

  deinit { close() }

  public func close() {
    if let file { gzclose(file) }
    file = nil
  }

  /// Compressions zlib cannot read, by their magic bytes.
  static func unsupported(_ magic: [UInt8]) -> String? {
    if magic.starts(with: [0x28, 0xB5, 0x2F, 0xFD]) { return "zstd" }
    if magic.starts(with: [0x42, 0x5A, 0x68]) { return "bzip2" }
    if magic.starts(with: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) { return "xz" }
    return nil
  }

  /// Whether the file is gzip-compressed (members cannot be read back by offset).
  public var isCompressed: Bool { file.map { gzdirect($0) == 0 } ?? false }

  /// The next regular file (directories, links and metadata entries are passed over); nil at
  /// the end of the archive.
  public func next() throws -> (name: String, bytes: [UInt8])? {
    guard let member = try nextMember(reading: { _ in true }) else { return nil }
    return (member.name, member.bytes ?? [])
  }

  /// The next regular file with where its data starts (in the uncompressed stream) and its
  /// size; its bytes only when `reading(name)` says so (otherwise they are skipped).
  public func nextMember(reading: (String) -> Bool) throws -> (name: String, offset: Int, size: Int, bytes: [UInt8]?)? {
    var longName: String?
    var paxPath: String?
    var paxSize: Int?
    while true {
      let start = offset
      guard let header = try read(512, allowEnd: true) else { return nil }  // a file without end blocks
      if header.allSatisfy({ $0 == 0 }) { return nil }  // end-of-archive block
      guard Self.checksumMatches(header) else {
        throw DataError(
          .unreadableFile, file: path, offset == 512 ? "not a tar file (bad header checksum)" : "damaged tar header at byte \(start)")
      }
      let type = header[156]
      guard let headerSize = Self.number(header[124..<136]) else {
        throw DataError(.unreadableFile, file: path, "damaged size field in the tar header at byte \(start)")
      }
      let size = paxSize ?? headerSize
      let isFile = type == UInt8(ascii: "0") || type == 0 || type == UInt8(ascii: "7")
      let name = paxPath ?? longName ?? Self.headerName(header)
      let dataOffset = offset
      let wanted = !isFile || reading(name)  // metadata entries are always read
      let data = wanted ? try read(size, allowEnd: false)! : []
      if !wanted { try skip(size) }
      try skip((512 - size % 512) % 512)
      switch type {
      case UInt8(ascii: "L"):  // GNU: the data is the next member's name
        longName = Self.string(data[...])
      case UInt8(ascii: "x"):  // pax: records for the next member
        let records = Self.paxRecords(data)
        paxPath = records["path"]
        paxSize = records["size"].flatMap { Int($0) }
        continue
      case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
        return (name, dataOffset, size, wanted ? data : nil)
      default:  // directories, links, devices, global pax headers
        break
      }
      if type != UInt8(ascii: "L") { (longName, paxPath, paxSize) = (nil, nil, nil) }
    }
  }

  private func read(_ count: Int, allowEnd: Bool) throws -> [UInt8]? {
    guard let file else { throw DataError(.unreadableFile, file: path, "read after close") }
    var bytes = [UInt8](repeating: 0, count: count)
    var filled = 0
    while filled < count {
      let n = bytes.withUnsafeMutableBytes { gzread(file, $0.baseAddress! + filled, UInt32(min(count - filled, 1 << 30))) }
      if n < 0 {
        var code: Int32 = 0
        let message = gzerror(file, &code).map { String(cString: $0) } ?? "read error"
        throw DataError(.unreadableFile, file: path, "\(message) at byte \(offset + filled)")
      }
      if n == 0 {
        if allowEnd && filled == 0 { return nil }
        throw DataError(.unreadableFile, file: path, "truncated tar: ended at byte \(offset + filled) inside a member")
      }
      filled += Int(n)
    }
    offset += count
    return bytes
  }

  /// Moves past `count` bytes: a seek in an uncompressed file, reading through in a gzip one.
  private func skip(_ count: Int) throws {
    guard count > 0, let file else { return }
    if gzdirect(file) != 0 {
      guard offset + count <= fileSize, gzseek(file, count, SEEK_CUR) >= 0 else {
        throw DataError(.unreadableFile, file: path, "truncated tar: ended at byte \(fileSize) inside a member")
      }
      offset += count
    } else {
      _ = try read(count, allowEnd: false)
    }
  }

  /// The header checksum: the sum of its bytes with the checksum field read as spaces.
  static func checksumMatches(_ header: [UInt8]) -> Bool {
    guard let stored = number(header[148..<156]) else { return false }
    var sum = 0
    for (i, b) in header.enumerated() { sum += (148..<156).contains(i) ? 32 : Int(b) }
    return sum == stored
  }

  /// An octal field (NUL- or space-terminated), or GNU's base-256 form for large sizes.
  static func number(_ field: ArraySlice<UInt8>) -> Int? {
    if let first = field.first, first & 0x80 != 0 {
      return field.dropFirst().reduce(Int(first & 0x7F)) { $0 << 8 | Int($1) }
    }
    let text = field.prefix { $0 != 0 }.filter { $0 != 32 }
    if text.isEmpty { return 0 }
    return Int(String(decoding: text, as: UTF8.self), radix: 8)
  }

  static func string(_ field: ArraySlice<UInt8>) -> String {
    String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
  }

  /// ustar splits long paths into prefix (345..<500) and name (0..<100).
  static func headerName(_ header: [UInt8]) -> String {
    let name = string(header[0..<100])
    let isUstar = header[257..<262].elementsEqual("ustar".utf8)
    let prefix = isUstar ? string(header[345..<500]) : ""
    return prefix.isEmpty ? name : "\(prefix)/\(name)"
  }

  /// pax records, "LENGTH key=value\n" each.
  static func paxRecords(_ data: [UInt8]) -> [String: String] {
    var out: [String: String] = [:]
    var i = 0
    while i < data.count {
      guard let space = data[i...].firstIndex(of: 32), let length = Int(String(decoding: data[i..<space], as: UTF8.self)),
        length > 0, i + length <= data.count
      else { break }
      let record = String(decoding: data[(space + 1)..<(i + length - 1)], as: UTF8.self)
      if let eq = record.firstIndex(of: "=") { out[String(record[..<eq])] = String(record[record.index(after: eq)...]) }
      i += length
    }
    return out
  }
}

/// Writes a plain ustar archive (what `TarShardWriter` and the tests make); member names up
/// to 255 bytes (split into ustar's prefix and name).
public final class TarWriter {
  public let path: String
  private var handle: FileHandle?

  public init(_ path: String) throws {
    self.path = path
    guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
      throw DataError(.unreadableFile, file: path, "cannot create")
    }
    self.handle = handle
  }

  deinit { try? handle?.close() }

  public func add(_ name: String, bytes: [UInt8]) throws {
    guard let handle else { throw DataError(.unreadableFile, file: path, "add after close") }
    var header = [UInt8](repeating: 0, count: 512)
    let utf8 = Array(name.utf8)
    var (prefix, base) = ([UInt8](), utf8)
    if utf8.count > 100 {
      // Split at a slash so that the name part fits in 100 bytes and the prefix in 155.
      guard let cut = utf8.indices.last(where: { utf8[$0] == UInt8(ascii: "/") && utf8.count - $0 - 1 <= 100 && $0 <= 155 })
      else { throw DataError(.unreadableFile, file: path, "member name too long for ustar: \(name)") }
      (prefix, base) = (Array(utf8[..<cut]), Array(utf8[(cut + 1)...]))
    }
    func put(_ field: [UInt8], at offset: Int) { for (i, b) in field.enumerated() { header[offset + i] = b } }
    func octal(_ value: Int, width: Int) -> [UInt8] { Array(String(format: "%0\(width - 1)o", value).utf8) + [0] }
    put(base, at: 0)
    put(octal(0o644, width: 8), at: 100)
    put(octal(0, width: 8), at: 108)  // uid
    put(octal(0, width: 8), at: 116)  // gid
    put(octal(bytes.count, width: 12), at: 124)
    put(octal(0, width: 12), at: 136)  // mtime: fixed, so a shard's bytes depend only on its content
    header[156] = UInt8(ascii: "0")
    put(Array("ustar".utf8) + [0], at: 257)
    put(Array("00".utf8), at: 263)
    put(prefix, at: 345)
    let sum = header.enumerated().reduce(0) { $0 + ((148..<156).contains($1.offset) ? 32 : Int($1.element)) }
    put(Array(String(format: "%06o", sum).utf8) + [0, 32], at: 148)
    try handle.write(contentsOf: Data(header))
    try handle.write(contentsOf: Data(bytes))
    let padding = (512 - bytes.count % 512) % 512
    if padding > 0 { try handle.write(contentsOf: Data(count: padding)) }
  }

  /// Writes the two end-of-archive blocks and closes the file.
  public func close() throws {
    guard let handle else { return }
    try handle.write(contentsOf: Data(count: 1024))
    try handle.synchronize()
    try handle.close()
    self.handle = nil
  }
}

import Foundation

/// Reads images from files or bytes, choosing the decoder by content, not by extension
/// (datasets in the wild have PNGs named `.jpg`).
///
/// ```swift
/// let image = try ImageFile.load("coco/val2014/COCO_val2014_000000391895.jpg")
/// ```
public enum ImageFile {
  /// The formats this pipeline decodes.
  public enum Format: String, Sendable { case jpeg, png }

  /// The format from the first bytes, or nil.
  public static func sniff(_ bytes: [UInt8]) -> Format? {
    if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
    if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
    return nil
  }

  /// Decodes JPEG or PNG bytes; `name` (a path or shard member) labels errors.
  public static func decode(_ bytes: [UInt8], name: String) throws -> RGBImage {
    switch sniff(bytes) {
    case .jpeg: return try JPEG.decode(bytes, name: name)
    case .png: return try PNG.decode(bytes, name: name)
    case nil:
      if bytes.isEmpty { throw DataError(.undecodableImage, file: name, "empty file") }
      let head = bytes.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " ")
      throw DataError(.undecodableImage, file: name, "not a JPEG or PNG (first bytes \(head))")
    }
  }

  /// Reads and decodes the file at `path`.
  public static func load(_ path: String) throws -> RGBImage {
    try decode(readBytes(path, kind: .missingImage), name: path)
  }

  /// The bytes of a file, or a `DataError` of `kind` when it does not exist or cannot be read.
  static func readBytes(_ path: String, kind: DataError.Kind) throws -> [UInt8] {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      let exists = FileManager.default.fileExists(atPath: path)
      throw DataError(exists ? .unreadableFile : kind, file: path, exists ? "cannot open (permissions?)" : "no such file")
    }
    defer { try? handle.close() }
    do {
      return [UInt8](try handle.readToEnd() ?? Data())
    } catch {
      throw DataError(.unreadableFile, file: path, "cannot read: \(error.localizedDescription)")
    }
  }
}

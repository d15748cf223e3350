import Foundation

/// Where a record's image bytes are.
public enum ImageSource: Equatable, Sendable {
  /// A file on disk.
  case file(String)
  /// Encoded bytes already in memory (a tar-shard member); `name` labels errors.
  case encoded(name: String, bytes: [UInt8])
  /// `length` bytes at `offset` of an uncompressed archive (a tar shard's member), read from
  /// disk when the image is decoded; `name` names it in messages (`shard.tar/key.jpg`).
  case slice(name: String, file: String, offset: Int, length: Int)
}

/// One image and its captions, as a loader found them.
public struct ImageTextRecord: Equatable, Sendable {
  /// Stable id: the image path relative to the dataset root, or `shard/key`.
  public var id: String
  public var captions: [String]
  public var image: ImageSource

  public init(id: String, captions: [String], image: ImageSource) {
    self.id = id
    self.captions = captions
    self.image = image
  }
}

/// The dataset every file-format loader returns: records in file order, images decoded on
/// demand (on the loader's worker threads).
public struct RecordDataset: ImageTextDataset {
  public let name: String
  public let records: [ImageTextRecord]
  /// Samples the loader dropped under `ErrorPolicy.skip` (bad lines, missing files, …).
  public let loadSkips: SkipReport

  /// Throws `emptySplit` (naming `name`, with `emptyReason` as the explanation) when
  /// `records` is empty: training on nothing is never what was meant.
  public init(name: String, records: [ImageTextRecord], loadSkips: SkipReport = SkipReport(), emptyReason: String? = nil) throws {
    guard !records.isEmpty else {
      var message = emptyReason ?? "no samples"
      if !loadSkips.isEmpty { message += "; \(loadSkips.count) skipped while loading, first: \(loadSkips.examples[0])" }
      throw DataError(.emptySplit, file: name, message)
    }
    self.name = name
    self.records = records
    self.loadSkips = loadSkips
  }

  public var count: Int { records.count }
  public func sampleId(at index: Int) -> String { records[index].id }
  public func captions(at index: Int) -> [String] { records[index].captions }

  public func loadImage(at index: Int) throws -> RGBImage {
    switch records[index].image {
    case .file(let path): try ImageFile.load(path)
    case .encoded(let name, let bytes): try ImageFile.decode(bytes, name: name)
    case .slice(let name, let file, let offset, let length): try ImageFile.decode(Self.read(file, offset, length, name), name: name)
    }
  }

  /// One member's bytes, read from its archive on demand.
  static func read(_ file: String, _ offset: Int, _ length: Int, _ name: String) throws -> [UInt8] {
    guard let handle = FileHandle(forReadingAtPath: file) else {
      throw DataError(.unreadableFile, file: name, "cannot open \(file)")
    }
    defer { try? handle.close() }
    do {
      try handle.seek(toOffset: UInt64(offset))
      let data = try handle.read(upToCount: length) ?? Data()
      guard data.count == length else {
        throw DataError(.undecodableImage, file: name, "\(file) ends inside this member (\(data.count) of \(length) bytes)")
      }
      return [UInt8](data)
    } catch let error as DataError {
      throw error
    } catch {
      throw DataError(.unreadableFile, file: name, "reading \(file): \(error)")
    }
  }
}

/// Helpers the loaders share.
enum LoaderSupport {
  static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

  /// `path` joined to `root` unless it is absolute.
  static func resolve(_ path: String, root: String) -> String {
    path.hasPrefix("/") || root.isEmpty ? path : (root as NSString).appendingPathComponent(path)
  }

  static func fileExists(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
  }

  /// A caption with surrounding whitespace removed; nil when nothing is left.
  static func cleanCaption(_ text: String) -> String? {
    let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
    return trimmed.isEmpty ? nil : trimmed
  }
}

import CZlib
import Foundation
import SafeFiles

/// Reads WebDataset-style tar shards as img2dataset writes them: members `KEY.jpg` (or
/// `.jpeg`, `.png`) and `KEY.txt` make one sample; `KEY.json` and other members are ignored.
/// The key is the member path up to the first dot of its file name, as WebDataset defines it.
///
/// Shards are read by `TarReader`. A plain `.tar` shard is only indexed: captions are kept,
/// and each image is read from the shard (its member's byte range) when a loader worker
/// decodes it, so a dataset of any size needs memory for its captions only. A gzip shard
/// cannot be read at an offset, so it is first unpacked, streamed, into a plain tar under
/// `unpackDirectory` (once: the copy is named by the shard's path, size and modification time
/// and reused), then indexed the same way. The loader then shuffles the whole dataset exactly,
/// which a streaming shuffle buffer only approximates, and resumes at any position.
///
/// ```swift
/// let data = try TarShards.load(["shards/00000.tar", "shards/00001.tar"])
/// ```
public enum TarShards {
  /// Where gzip shards are unpacked when the config names no folder.
  public static var defaultUnpackDirectory: String { NSTemporaryDirectory() + "cmapkd-unpacked-shards" }

  public static func load(_ shards: [String], policy: ErrorPolicy = .fail, unpackDirectory: String? = nil) throws -> RecordDataset {
    let log = SkipLog()
    var records: [ImageTextRecord] = []
    for shard in shards {
      records += try read(shard, policy: policy, log: log, unpackDirectory: unpackDirectory ?? defaultUnpackDirectory)
    }
    let name = shards.count == 1 ? shards[0] : "\(shards.count) shards (\(shards.first ?? "") …)"
    return try RecordDataset(name: name, records: records, loadSkips: log.snapshot, emptyReason: "no image–caption pairs")
  }

  /// The samples of one shard, in member order.
  static func read(_ shard: String, policy: ErrorPolicy, log: SkipLog, unpackDirectory: String) throws -> [ImageTextRecord] {
    let shardName = (shard as NSString).lastPathComponent
    var images: [String: ImageSource] = [:]
    var texts: [String: (name: String, bytes: [UInt8])] = [:]
    var order: [String] = []
    func split(_ name: String) -> (key: String, ext: String)? {
      let directory = (name as NSString).deletingLastPathComponent
      let file = (name as NSString).lastPathComponent
      guard let dot = file.firstIndex(of: ".") else { return nil }
      let key = directory.isEmpty ? String(file[..<dot]) : "\(directory)/\(file[..<dot])"
      return (key, file[file.index(after: dot)...].lowercased())
    }
    do {
      guard LoaderSupport.fileExists(shard) else { throw DataError(.unreadableFile, file: shard, "no such file") }
      var tar = try TarReader(shard)
      if tar.isCompressed {
        tar.close()
        tar = try TarReader(try unpacked(shard, into: unpackDirectory))
      }
      defer { tar.close() }
      // Captions are read; images only located (their byte ranges in the plain tar).
      while let member = try tar.nextMember(reading: { name in
        guard let (_, ext) = split(name) else { return false }
        return ext == "txt"
      }) {
        guard let (key, ext) = split(member.name) else { continue }
        if images[key] == nil && texts[key] == nil { order.append(key) }
        let label = "\(shard)/\(member.name)"
        if LoaderSupport.imageExtensions.contains(ext) {
          images[key] = .slice(name: label, file: tar.path, offset: member.offset, length: member.size)
        } else if ext == "txt", let bytes = member.bytes {
          texts[key] = (label, bytes)
        }
      }
    } catch let error as DataError where policy == .skip {
      // A damaged shard keeps the samples read before the damage; the damage counts once.
      log.record(error)
    }
    var records: [ImageTextRecord] = []
    for key in order {
      let record = try policy.handle(log) { () throws -> ImageTextRecord? in
        switch (images[key], texts[key]) {
        case (nil, nil): return nil
        case (nil, _): throw DataError(.missingImage, file: shard, key: key, "caption without an image (\(key).jpg/.png)")
        case (_, nil): throw DataError(.missingCaption, file: shard, key: key, "image without a caption (\(key).txt)")
        case (let image?, let text?):
          guard let content = String(validating: text.bytes, as: UTF8.self) else {
            throw DataError(.malformedCaption, file: text.name, "not valid UTF-8 text")
          }
          let captions = content.split(separator: "\n").compactMap { LoaderSupport.cleanCaption(String($0)) }
          guard !captions.isEmpty else { throw DataError(.missingCaption, file: text.name, "caption is empty") }
          return ImageTextRecord(id: "\(shardName)/\(key)", captions: captions, image: image)
        }
      }
      if let record = record ?? nil { records.append(record) }
    }
    return records
  }

  /// The plain tar inside a gzip shard, unpacked into `directory` through a 1 MiB buffer (never
  /// whole in memory) and written atomically; a copy made earlier from the same shard (same
  /// path, size and modification time) is reused.
  public static func unpacked(_ shard: String, into directory: String) throws -> String {
    let attributes = try? FileManager.default.attributesOfItem(atPath: shard)
    let size = (attributes?[.size] as? Int) ?? 0
    let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
    let absolute = URL(fileURLWithPath: shard).standardizedFileURL.path
    let stem = ((shard as NSString).lastPathComponent as NSString).deletingPathExtension
    let name = "\(stem)-" + String(format: "%016llx", StableHash.string("\(absolute)|\(size)|\(modified)")) + ".tar"
    let target = "\(directory)/\(name)"
    if FileManager.default.fileExists(atPath: target) { return target }
    do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
      throw DataError(.unreadableFile, file: directory, "cannot create the folder for unpacked gzip shards: \(error)")
    }
    guard let input = gzopen(shard, "rb") else { throw DataError(.unreadableFile, file: shard, "cannot open") }
    defer { gzclose(input) }
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    do {
      try AtomicFile.write(to: target) { append in
        while true {
          let n = buffer.withUnsafeMutableBytes { gzread(input, $0.baseAddress!, UInt32($0.count)) }
          if n == 0 {
            // zlib reports a stream cut short only through gzerror (Z_BUF_ERROR), after the data.
            var code: Int32 = 0
            _ = gzerror(input, &code)
            if code != Z_OK { throw DataError(.unreadableFile, file: shard, "damaged or truncated gzip stream (zlib error \(code))") }
            break
          }
          if n < 0 { throw DataError(.unreadableFile, file: shard, "damaged gzip stream") }
          try buffer.withUnsafeBytes { try append(UnsafeRawBufferPointer(rebasing: $0[0..<Int(n)])) }
        }
      }
    } catch let error as DataError {
      throw error
    } catch {
      throw DataError(.unreadableFile, file: shard, "cannot unpack into \(directory): \(error)")
    }
    return target
  }
}

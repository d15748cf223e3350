import Foundation

/// Reads WebDataset-style tar shards as img2dataset writes them: members `KEY.jpg` (or
/// `.jpeg`, `.png`) and `KEY.txt` make one sample; `KEY.json` and other members are ignored.
/// The key is the member path up to the first dot of its file name, as WebDataset defines it.
///
/// Shards are read by `TarReader`. A plain `.tar` shard is only indexed: captions are kept,
/// and each image is read from the shard (its member's byte range) when a loader worker
/// decodes it, so a dataset of any size needs memory for its captions only. A gzip shard
/// cannot be read at an offset: its images are kept encoded in memory.
///
/// ```swift
/// let data = try TarShards.load(["shards/00000.tar", "shards/00001.tar"])
/// ```
public enum TarShards {
  public static func load(_ shards: [String], policy: ErrorPolicy = .fail) throws -> RecordDataset {
    let log = SkipLog()
    var records: [ImageTextRecord] = []
    for shard in shards {
      records += try read(shard, policy: policy, log: log)
    }
    let name = shards.count == 1 ? shards[0] : "\(shards.count) shards (\(shards.first ?? "") …)"
    return try RecordDataset(name: name, records: records, loadSkips: log.snapshot, emptyReason: "no image–caption pairs")
  }

  /// The samples of one shard, in member order.
  static func read(_ shard: String, policy: ErrorPolicy, log: SkipLog) throws -> [ImageTextRecord] {
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
      let tar = try TarReader(shard)
      defer { tar.close() }
      let indexOnly = !tar.isCompressed
      // Captions are read; images only located (plain tar) or kept (gzip).
      while let member = try tar.nextMember(reading: { name in
        guard let (_, ext) = split(name) else { return false }
        return ext == "txt" || (!indexOnly && LoaderSupport.imageExtensions.contains(ext))
      }) {
        guard let (key, ext) = split(member.name) else { continue }
        if images[key] == nil && texts[key] == nil { order.append(key) }
        let label = "\(shard)/\(member.name)"
        if LoaderSupport.imageExtensions.contains(ext) {
          images[key] =
            member.bytes.map { .encoded(name: label, bytes: $0) }
            ?? .slice(name: label, file: shard, offset: member.offset, length: member.size)
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
}

import Foundation

/// Reads COCO / Flickr30k captions in Karpathy's split format (`dataset_coco.json`,
/// `dataset_flickr30k.json`):
///
/// ```json
/// {"images": [{"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg",
///              "split": "test", "sentences": [{"raw": "A man riding a bike."}, …]}, …]}
/// ```
///
/// `filepath` is optional (Flickr30k has none). Images are `imageRoot/filepath/filename`.
/// COCO's `restval` images are usually trained on: pass `["train", "restval"]`.
///
/// ```swift
/// let test = try KarpathyJSON.load("coco/dataset_coco.json", imageRoot: "coco/images", splits: ["test"])
/// ```
public enum KarpathyJSON {
  public static func load(
    _ path: String, imageRoot: String, splits: Set<String>, policy: ErrorPolicy = .fail, checkImagesExist: Bool = true
  ) throws -> RecordDataset {
    let bytes = try ImageFile.readBytes(path, kind: .unreadableFile)
    let root: Any
    do {
      root = try JSONSerialization.jsonObject(with: Data(bytes))
    } catch {
      throw DataError(.unreadableFile, file: path, "not valid JSON (\(error.localizedDescription))")
    }
    guard let top = root as? [String: Any] else { throw DataError(.missingField, file: path, "top level is not an object") }
    guard let images = top["images"] else { throw DataError(.missingField, file: path, key: "images", "missing key 'images'") }
    guard let list = images as? [Any] else { throw DataError(.missingField, file: path, key: "images", "expected an array") }

    let log = SkipLog()
    var records: [ImageTextRecord] = []
    var splitCounts: [String: Int] = [:]
    for (i, item) in list.enumerated() {
      let key = "images[\(i)]"
      let record = try policy.handle(log) { () throws -> ImageTextRecord? in
        let entry = try JSONField(file: path, key: key, value: item).object()
        let split = try entry.string("split")
        splitCounts[split, default: 0] += 1
        guard splits.contains(split) else { return nil }
        let filename = try entry.string("filename")
        let folder = try entry.optionalString("filepath") ?? ""
        let relative = folder.isEmpty ? filename : "\(folder)/\(filename)"
        var captions: [String] = []
        for (j, sentence) in try entry.array("sentences").enumerated() {
          let s = try JSONField(file: path, key: "\(key).sentences[\(j)]", value: sentence).object()
          guard let caption = LoaderSupport.cleanCaption(try s.string("raw")) else {
            throw DataError(.malformedCaption, file: path, key: "\(key).sentences[\(j)].raw", "empty caption")
          }
          captions.append(caption)
        }
        guard !captions.isEmpty else { throw DataError(.missingCaption, file: path, key: "\(key).sentences", "no sentences") }
        let imagePath = LoaderSupport.resolve(relative, root: imageRoot)
        if checkImagesExist && !LoaderSupport.fileExists(imagePath) {
          throw DataError(.missingImage, file: path, key: key, "image not found: \(imagePath)")
        }
        return ImageTextRecord(id: relative, captions: captions, image: .file(imagePath))
      }
      if let record = record ?? nil { records.append(record) }
    }
    let present = splitCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    return try RecordDataset(
      name: "\(path) (\(splits.sorted().joined(separator: "+")))", records: records, loadSkips: log.snapshot,
      emptyReason: "no images with split \(splits.sorted()) (splits present: \(present.isEmpty ? "none" : present))")
  }
}

/// A JSON value with the key path that reached it, so type errors can name where they are.
struct JSONField {
  let file: String
  let key: String
  let value: Any

  func object() throws -> JSONField {
    guard value is [String: Any] else { throw mismatch("an object") }
    return self
  }

  private func member(_ name: String) throws -> JSONField {
    guard let dictionary = value as? [String: Any], let member = dictionary[name], !(member is NSNull) else {
      throw DataError(.missingField, file: file, key: key, "missing key '\(name)'")
    }
    return JSONField(file: file, key: "\(key).\(name)", value: member)
  }

  func string(_ name: String) throws -> String {
    let field = try member(name)
    guard let text = field.value as? String else { throw field.mismatch("a string") }
    return text
  }

  func optionalString(_ name: String) throws -> String? {
    guard let dictionary = value as? [String: Any], dictionary[name] != nil, !(dictionary[name] is NSNull) else { return nil }
    return try string(name)
  }

  func array(_ name: String) throws -> [Any] {
    let field = try member(name)
    guard let items = field.value as? [Any] else { throw field.mismatch("an array") }
    return items
  }

  private func mismatch(_ expected: String) -> DataError {
    DataError(.missingField, file: file, key: key, "expected \(expected), found \(describe(value))")
  }

  private func describe(_ value: Any) -> String {
    switch value {
    case is String: "a string"
    case is [Any]: "an array"
    case is [String: Any]: "an object"
    case is NSNumber: "a number"
    default: "\(type(of: value))"
    }
  }
}

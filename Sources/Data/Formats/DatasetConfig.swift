import Foundation

/// Which dataset to load, as data (an experiment's YAML/JSON names it; `load()` opens it).
///
/// ```yaml
/// format: karpathy            # scenes | karpathy | delimited | folder | webdataset
/// path: coco/dataset_coco.json
/// image_root: coco/images
/// splits: [train, restval]
/// error_policy: skip
/// ```
public struct DatasetConfig: Codable, Sendable, Equatable {
  enum CodingKeys: String, CodingKey {
    case format, path, splits, shards, scenes, delimited, imageRoot = "image_root", errorPolicy = "error_policy"
    case unpackDir = "unpack_dir"
  }

  public enum Format: String, Codable, Sendable {
    /// The generated benchmark: `scenes` and `splits` (one of train/val/test).
    case scenes
    /// COCO/Flickr30k Karpathy JSON at `path`, images under `imageRoot`, `splits`.
    case karpathy
    /// CSV/TSV at `path` (`delimited` options), images relative to `imageRoot` or the file.
    case delimited
    /// A folder of images with `.txt` captions at `path`.
    case folder
    /// Tar shards: `shards` entries are files, folders (every `.tar` inside) or brace
    /// ranges as WebDataset writes them (`data/{00000..00099}.tar`).
    case webdataset
  }

  public var format: Format
  public var path: String? = nil
  public var imageRoot: String? = nil
  public var splits: [String]? = nil
  public var shards: [String]? = nil
  public var scenes: ScenesConfig? = nil
  public var delimited: DelimitedOptions? = nil
  public var errorPolicy: ErrorPolicy = .fail
  /// Where gzip (.tar.gz) shards are unpacked, once, to be read by offset (default: a folder
  /// in the system's temporary directory).
  public var unpackDir: String? = nil

  public init(format: Format, path: String? = nil, splits: [String]? = nil) {
    self.format = format
    self.path = path
    self.splits = splits
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    format = try c.decode(Format.self, forKey: .format)
    path = try c.decodeIfPresent(String.self, forKey: .path)
    imageRoot = try c.decodeIfPresent(String.self, forKey: .imageRoot)
    splits = try c.decodeIfPresent([String].self, forKey: .splits)
    shards = try c.decodeIfPresent([String].self, forKey: .shards)
    scenes = try c.decodeIfPresent(ScenesConfig.self, forKey: .scenes)
    delimited = try c.decodeIfPresent(DelimitedOptions.self, forKey: .delimited)
    errorPolicy = try c.decode(.errorPolicy, default: .fail)
    unpackDir = try c.decodeIfPresent(String.self, forKey: .unpackDir)
  }

  /// Opens the dataset (checking that files exist; images are decoded later, on demand).
  public func load() throws -> any ImageTextDataset {
    func required<T>(_ value: T?, _ key: String) throws -> T {
      guard let value else {
        throw DataError(.missingField, file: "DatasetConfig", key: key, "\(format.rawValue) needs '\(key)'")
      }
      return value
    }
    switch format {
    case .scenes:
      let name = try required(splits?.first, "splits")
      guard let split = SceneSplit(rawValue: name), splits?.count == 1 else {
        throw DataError(.invalidArgument, file: "DatasetConfig", key: "splits", "scenes takes one of train, val, test")
      }
      return try ScenesDataset(scenes ?? ScenesConfig(), split: split)
    case .karpathy:
      let file = try required(path, "path")
      return try KarpathyJSON.load(
        file, imageRoot: imageRoot ?? (file as NSString).deletingLastPathComponent, splits: Set(try required(splits, "splits")),
        policy: errorPolicy)
    case .delimited:
      return try DelimitedCaptions.load(
        try required(path, "path"), imageRoot: imageRoot, options: delimited ?? DelimitedOptions(), policy: errorPolicy)
    case .folder:
      return try CaptionFolder.load(try required(path, "path"), policy: errorPolicy)
    case .webdataset:
      return try TarShards.load(
        try Self.expandShards(try required(shards, "shards")), policy: errorPolicy, unpackDirectory: unpackDir)
    }
  }

  /// Files for shard patterns: folders list their `.tar` files, `{a..b}` expands to the
  /// numbers a…b with a's zero padding.
  public static func expandShards(_ patterns: [String]) throws -> [String] {
    var result: [String] = []
    for pattern in patterns {
      var isDirectory: ObjCBool = false
      if FileManager.default.fileExists(atPath: pattern, isDirectory: &isDirectory), isDirectory.boolValue {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: pattern)) ?? []
        result += names.filter { $0.hasSuffix(".tar") || $0.hasSuffix(".tar.gz") }.sorted().map { "\(pattern)/\($0)" }
      } else if let open = pattern.range(of: "{"), let close = pattern.range(of: "}", range: open.upperBound..<pattern.endIndex) {
        let bounds = pattern[open.upperBound..<close.lowerBound].components(separatedBy: "..")
        guard bounds.count == 2, let low = Int(bounds[0]), let high = Int(bounds[1]), low <= high else {
          throw DataError(.invalidArgument, file: pattern, "expected a range like {00000..00099}")
        }
        let width = bounds[0].count
        for n in low...high {
          let number = String(n)
          let padded = String(repeating: "0", count: max(0, width - number.count)) + number
          result.append(String(pattern[..<open.lowerBound]) + padded + String(pattern[close.upperBound...]))
        }
      } else {
        result.append(pattern)
      }
    }
    return result
  }
}

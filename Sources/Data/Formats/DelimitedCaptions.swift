import Foundation

/// How a CSV/TSV caption file is laid out.
public struct DelimitedOptions: Codable, Sendable, Equatable {
  enum CodingKeys: String, CodingKey {
    case delimiter, hasHeader = "has_header", pathColumn = "path_column", captionColumn = "caption_column"
  }

  /// The field separator; nil: tab for `.tsv`/`.tab` files, comma otherwise.
  public var delimiter: String? = nil
  /// Whether the first row names the columns; nil: detected (a row with a known column
  /// name and no image path in it is a header).
  public var hasHeader: Bool? = nil
  /// Column names to use when there is a header; nil: the first known name found.
  public var pathColumn: String? = nil
  public var captionColumn: String? = nil

  public init(delimiter: String? = nil, hasHeader: Bool? = nil, pathColumn: String? = nil, captionColumn: String? = nil) {
    self.delimiter = delimiter
    self.hasHeader = hasHeader
    self.pathColumn = pathColumn
    self.captionColumn = captionColumn
  }

  static let pathNames = ["filepath", "path", "image_path", "image", "file", "filename", "img"]
  static let captionNames = ["caption", "text", "title", "sentence", "raw", "captions"]
}

/// Reads `path<TAB>caption` (or CSV) files: one row per caption, rows of the same image
/// grouped into one sample with several captions, in first-appearance order.
///
/// ```swift
/// let data = try DelimitedCaptions.load("cc3m/train.tsv", imageRoot: "cc3m")
/// ```
public enum DelimitedCaptions {
  /// `imageRoot` resolves relative paths (default: the caption file's folder).
  public static func load(
    _ path: String, imageRoot: String? = nil, options: DelimitedOptions = DelimitedOptions(), policy: ErrorPolicy = .fail,
    checkImagesExist: Bool = true
  ) throws -> RecordDataset {
    let bytes = try ImageFile.readBytes(path, kind: .unreadableFile)
    let ext = (path as NSString).pathExtension.lowercased()
    let delimiterText = options.delimiter ?? (ext == "tsv" || ext == "tab" ? "\t" : ",")
    guard delimiterText.utf8.count == 1, let delimiter = delimiterText.utf8.first else {
      throw DataError(
        .invalidArgument, file: path, "delimiter must be one ASCII character, got \(delimiterText.debugDescription)")
    }
    let root = imageRoot ?? (path as NSString).deletingLastPathComponent
    var rows = try DelimitedParser(delimiter: delimiter, file: path).rows(bytes)[...]

    var pathIndex = 0
    var captionIndex = 1
    var width = 2
    if case .success(let first)? = rows.first, options.hasHeader ?? looksLikeHeader(first.fields) {
      let names = first.fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
      func column(_ wanted: String?, _ candidates: [String], _ role: String) throws -> Int {
        let options = wanted.map { [$0.lowercased()] } ?? candidates
        guard let index = options.lazy.compactMap({ names.firstIndex(of: $0) }).first else {
          throw DataError(
            .missingField, file: path, line: first.line,
            "header has no \(role) column (columns: \(first.fields.joined(separator: ", ")))")
        }
        return index
      }
      pathIndex = try column(options.pathColumn, DelimitedOptions.pathNames, "image path")
      captionIndex = try column(options.captionColumn, DelimitedOptions.captionNames, "caption")
      width = names.count
      rows = rows.dropFirst()
    }

    let log = SkipLog()
    var order: [String] = []
    var captionsByPath: [String: [String]] = [:]
    var firstLine: [String: Int] = [:]
    for row in rows {
      _ = try policy.handle(log) {
        let row = try row.get()
        guard row.fields.count == width else {
          let hint = row.fields.count > width ? " (quote captions that contain the delimiter)" : ""
          throw DataError(
            .malformedCaption, file: path, line: row.line, "expected \(width) fields, found \(row.fields.count)\(hint)")
        }
        let imagePath = row.fields[pathIndex].trimmingCharacters(in: .whitespaces)
        guard !imagePath.isEmpty else { throw DataError(.malformedCaption, file: path, line: row.line, "empty image path") }
        guard let caption = LoaderSupport.cleanCaption(row.fields[captionIndex]) else {
          throw DataError(.malformedCaption, file: path, line: row.line, "empty caption")
        }
        if captionsByPath[imagePath] == nil {
          let resolved = LoaderSupport.resolve(imagePath, root: root)
          if checkImagesExist && !LoaderSupport.fileExists(resolved) {
            throw DataError(.missingImage, file: path, line: row.line, "image not found: \(resolved)")
          }
          order.append(imagePath)
          firstLine[imagePath] = row.line
        }
        captionsByPath[imagePath, default: []].append(caption)
      }
    }
    let records = order.map {
      ImageTextRecord(id: $0, captions: captionsByPath[$0]!, image: .file(LoaderSupport.resolve($0, root: root)))
    }
    return try RecordDataset(name: path, records: records, loadSkips: log.snapshot, emptyReason: "no caption rows")
  }

  /// A header names a known column and holds no image path.
  static func looksLikeHeader(_ fields: [String]) -> Bool {
    let names = fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    let known = Set(DelimitedOptions.pathNames + DelimitedOptions.captionNames)
    let hasImage = names.contains { LoaderSupport.imageExtensions.contains(($0 as NSString).pathExtension) }
    return !hasImage && names.contains(where: known.contains)
  }
}

import Foundation

/// Reads a folder of images with a caption file beside each (`cat.jpg` + `cat.txt`, one
/// caption per line, blank lines ignored), searched recursively, in sorted path order.
///
/// ```swift
/// let data = try CaptionFolder.load("my_photos")
/// ```
public enum CaptionFolder {
  public static func load(_ directory: String, policy: ErrorPolicy = .fail) throws -> RecordDataset {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw DataError(.unreadableFile, file: directory, "no such folder")
    }
    guard let walker = FileManager.default.enumerator(atPath: directory) else {
      throw DataError(.unreadableFile, file: directory, "cannot list the folder")
    }
    var images: [String] = []
    for case let relative as String in walker
    where LoaderSupport.imageExtensions.contains((relative as NSString).pathExtension.lowercased()) {
      images.append(relative)
    }
    images.sort()

    let log = SkipLog()
    var records: [ImageTextRecord] = []
    for relative in images {
      let imagePath = (directory as NSString).appendingPathComponent(relative)
      let captionPath = (imagePath as NSString).deletingPathExtension + ".txt"
      let captions = try policy.handle(log) { try readCaptions(captionPath, image: imagePath) }
      if let captions { records.append(ImageTextRecord(id: relative, captions: captions, image: .file(imagePath))) }
    }
    return try RecordDataset(
      name: directory, records: records, loadSkips: log.snapshot, emptyReason: "no .jpg/.jpeg/.png images with captions")
  }

  /// The non-blank lines of a caption file; every line must be UTF-8 without control
  /// characters (a binary file saved as .txt is a mistake worth hearing about).
  static func readCaptions(_ path: String, image: String) throws -> [String] {
    guard LoaderSupport.fileExists(path) else {
      throw DataError(.missingCaption, file: image, "no caption file (expected \((path as NSString).lastPathComponent))")
    }
    let bytes = try ImageFile.readBytes(path, kind: .missingCaption)
    var captions: [String] = []
    for (number, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
      guard let text = String(validating: line, as: UTF8.self) else {
        throw DataError(.malformedCaption, file: path, line: number + 1, "not valid UTF-8 text")
      }
      if text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" && $0 != "\r" }) {
        throw DataError(.malformedCaption, file: path, line: number + 1, "contains control characters (binary data?)")
      }
      if let caption = LoaderSupport.cleanCaption(text) { captions.append(caption) }
    }
    guard !captions.isEmpty else { throw DataError(.missingCaption, file: path, "caption file is empty") }
    return captions
  }
}

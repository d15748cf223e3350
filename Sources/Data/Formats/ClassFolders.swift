import Foundation

/// An image-classification set for zero-shot evaluation: one folder per class under `root`
/// (ImageNet's layout, e.g. `val/n01440764/*.JPEG`), classes in sorted folder order. Class names
/// are the folder names with `_` as spaces, or the lines of `classNames` (one per class, in
/// that order), the usual way to give ImageNet's synsets readable names.
///
/// ```swift
/// let set = try ClassFolders(root: "imagenet/val", classNames: "imagenet/classnames.txt")
/// set.classNames[set.label(at: 0)]
/// ```
public struct ClassFolders: ImageTextDataset {
  public let root: String
  public let classNames: [String]
  /// Each image's path relative to `root` and its class index.
  let files: [(path: String, label: Int)]

  public init(root: String, classNames namesFile: String? = nil) throws {
    self.root = root
    let fm = FileManager.default
    var isDirectory: ObjCBool = false
    guard fm.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw DataError(.unreadableFile, file: root, "not a folder (expected one subfolder of images per class)")
    }
    let folders = try fm.contentsOfDirectory(atPath: root).filter { name in
      var isDir: ObjCBool = false
      return !name.hasPrefix(".") && fm.fileExists(atPath: "\(root)/\(name)", isDirectory: &isDir) && isDir.boolValue
    }.sorted()
    guard !folders.isEmpty else { throw DataError(.emptySplit, file: root, "no class folders") }
    var files: [(String, Int)] = []
    for (label, folder) in folders.enumerated() {
      let images = try fm.contentsOfDirectory(atPath: "\(root)/\(folder)").filter {
        LoaderSupport.imageExtensions.contains(($0 as NSString).pathExtension.lowercased())
      }.sorted()
      files += images.map { ("\(folder)/\($0)", label) }
    }
    guard !files.isEmpty else { throw DataError(.emptySplit, file: root, "no images in the \(folders.count) class folders") }
    if let namesFile {
      guard let text = try? String(contentsOfFile: namesFile, encoding: .utf8) else {
        throw DataError(.unreadableFile, file: namesFile, "cannot read the class names")
      }
      let names = text.split(separator: "\n", omittingEmptySubsequences: false).map {
        $0.trimmingCharacters(in: .whitespaces)
      }.filter { !$0.isEmpty }
      guard names.count == folders.count else {
        throw DataError(
          .invalidArgument, file: namesFile,
          "\(names.count) class names for \(folders.count) class folders (one name per line, in sorted folder order)")
      }
      classNames = names
    } else {
      classNames = folders.map { $0.replacingOccurrences(of: "_", with: " ") }
    }
    self.files = files
  }

  public var name: String { "\(root) (\(classNames.count) classes)" }
  public var count: Int { files.count }
  public func sampleId(at index: Int) -> String { files[index].path }
  public func captions(at index: Int) -> [String] { [classNames[files[index].label]] }
  public func loadImage(at index: Int) throws -> RGBImage { try ImageFile.load("\(root)/\(files[index].path)") }
  /// The class index of image `index`.
  public func label(at index: Int) -> Int { files[index].label }
}

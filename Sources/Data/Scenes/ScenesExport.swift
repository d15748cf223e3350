import Foundation
import SafeFiles

/// Writes generated splits to disk as image files plus a Karpathy-style JSON index, so any
/// tool that reads COCO/Flickr30k (this package's `KarpathyDataset`, Python scripts, the
/// data benchmark) can read the benchmark too.
///
/// ```swift
/// try ScenesExport.write([train, test], to: "runs/scenes", format: .jpeg(quality: 95))
/// // runs/scenes/dataset_scenes.json, runs/scenes/test/000000.jpg, …
/// ```
public enum ScenesExport {
  public enum Format: Sendable {
    case png
    case jpeg(quality: Int)

    var fileExtension: String {
      switch self {
      case .png: "png"
      case .jpeg: "jpg"
      }
    }
  }

  /// The index file's name inside the output folder.
  public static let indexName = "dataset_scenes.json"

  /// Writes every sample of `splits`, rendering on all cores. Hard negatives go into each
  /// image's `hard_negatives` (ignored by Karpathy readers).
  public static func write(_ splits: [ScenesDataset], to directory: String, format: Format = .png) throws {
    var entries: [[String: Any]] = []
    var sentenceId = 0
    for dataset in splits {
      let folder = "\(directory)/\(dataset.split.rawValue)"
      do {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      } catch {
        throw DataError(.unreadableFile, file: folder, "cannot create folder: \(error.localizedDescription)")
      }
      let chunk = 512
      for start in stride(from: 0, to: dataset.count, by: chunk) {
        let range = start..<min(start + chunk, dataset.count)
        for (offset, image) in dataset.images(range).enumerated() {
          let index = range.lowerBound + offset
          let name = String(format: "%06d.%@", index, format.fileExtension)
          let bytes: [UInt8]
          switch format {
          case .png: bytes = try PNG.encode(image)
          case .jpeg(let quality): bytes = try JPEG.encode(image, quality: quality)
          }
          let path = "\(folder)/\(name)"
          guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw DataError(.unreadableFile, file: path, "cannot write")
          }
          let sample = dataset.sample(at: index)
          var sentences: [[String: Any]] = []
          for caption in sample.captions {
            sentences.append(["raw": caption.text, "sentid": sentenceId, "imgid": entries.count])
            sentenceId += 1
          }
          var entry: [String: Any] = [
            "filepath": dataset.split.rawValue, "filename": name, "split": dataset.split.rawValue, "imgid": entries.count,
            "sentences": sentences,
          ]
          if !sample.hardNegatives.isEmpty {
            entry["hard_negatives"] = sample.hardNegatives.map {
              ["raw": $0.text, "kind": $0.kind.rawValue, "caption": $0.captionIndex] as [String: Any]
            }
          }
          entries.append(entry)
        }
      }
    }
    let json = try JSONSerialization.data(withJSONObject: ["dataset": "scenes", "images": entries], options: [.sortedKeys])
    // The index is written last and atomically: an export cut short has no index and is not
    // mistaken for a whole one (images are plain writes: an fsync each would cost more than
    // the export).
    let path = "\(directory)/\(indexName)"
    do { try AtomicFile.write(json, to: path) } catch { throw DataError(.unreadableFile, file: path, "cannot write: \(error)") }
  }
}

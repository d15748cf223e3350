import Data
import Distillation
import Foundation
import SafeFiles
import Torch

/// What a checkpoint folder's `meta.json` records besides the weights.
public struct CheckpointMeta: Codable, Equatable, Sendable {
  public static let formatVersion = 1
  public var format = CheckpointMeta.formatVersion
  /// Optimizer steps taken.
  public var step: Int
  /// Where the data loader resumes (the next batch to read).
  public var position: LoaderPosition
  /// The model's architecture (a Hugging Face style CLIP config as JSON), checked on load.
  public var architecture: String
  /// `teacher` or the method's name.
  public var method: String
  /// The run's seed; the RNG is reseeded from (seed, step) before every step, so (seed, step)
  /// *is* the RNG state.
  public var seed: Int
  /// The best validation value so far and the step it was reached at.
  public var bestValue: Double?
  public var bestStep: Int?
  /// The last evaluation's metrics.
  public var metrics: [String: Double]
  /// Size and FNV-1a hash of every file, to detect a corrupt checkpoint.
  public var files: [String: FileDigest]
  public var savedAt: String

  public init(
    step: Int, position: LoaderPosition, architecture: String, method: String, seed: Int, bestValue: Double?, bestStep: Int?,
    metrics: [String: Double], files: [String: FileDigest], savedAt: String
  ) {
    self.step = step
    self.position = position
    self.architecture = architecture
    self.method = method
    self.seed = seed
    self.bestValue = bestValue
    self.bestStep = bestStep
    self.metrics = metrics
    self.files = files
    self.savedAt = savedAt
  }

  enum CodingKeys: String, CodingKey {
    case format, step, position, architecture, method, seed, metrics, files
    case bestValue = "best_value", bestStep = "best_step", savedAt = "saved_at"
  }
}

public struct FileDigest: Codable, Equatable, Sendable {
  public var bytes: Int
  public var fnv1a: String

  /// Reads the file and hashes it.
  public init(path: String) throws {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw CheckpointError("cannot read \(path)")
    }
    var hash = ContentHash()
    data.withUnsafeBytes { hash.update($0) }
    bytes = data.count
    fnv1a = hash.hex
  }
}

public struct CheckpointError: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// A saved training state: `step-NNNNNNN/` under a run's `checkpoints/` folder holding
/// `model.safetensors` (the plain student, loadable on its own), `head.safetensors` (the method's
/// student-side modules), `optimizer.safetensors`, `method_state.safetensors` and `meta.json`.
///
/// A folder is built under a temporary name and renamed into place only when every file is
/// written and synced, so a crash never leaves a half-written checkpoint under a real name;
/// `meta.json` carries each file's size and hash so a damaged one is detected, never used.
public struct RunCheckpoint {
  public var directory: String
  public var meta: CheckpointMeta

  public static let fileNames = ["model", "head", "optimizer", "method_state"]

  public func tensors(_ file: String) throws -> [String: Tensor] {
    let path = "\(directory)/\(file).safetensors"
    return FileManager.default.fileExists(atPath: path) ? try SafeTensors.load(path) : [:]
  }

  /// Writes a checkpoint folder atomically and returns it.
  public static func save(
    in folder: String, meta: CheckpointMeta, tensors: [String: [String: Tensor]]
  ) throws -> RunCheckpoint {
    let fm = FileManager.default
    try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let name = String(format: "step-%07d", meta.step)
    let temporary = "\(folder)/.tmp-\(name)-\(UUID().uuidString)"
    try fm.createDirectory(atPath: temporary, withIntermediateDirectories: false)
    var renamed = false
    defer { if !renamed { try? fm.removeItem(atPath: temporary) } }
    var meta = meta
    meta.files = [:]
    for (file, group) in tensors.sorted(by: { $0.key < $1.key }) {
      let path = "\(temporary)/\(file).safetensors"
      try SafeTensors.save(group, to: path, metadata: ["format": "cmapkd-checkpoint", "step": "\(meta.step)"])
      meta.files["\(file).safetensors"] = try FileDigest(path: path)
    }
    try AtomicFile.write(try JSONCoding.encode(meta), to: "\(temporary)/meta.json")
    let final = "\(folder)/\(name)"
    if fm.fileExists(atPath: final) {
      // Only reached when a run is resumed from an earlier checkpoint and saves the same step again.
      let old = "\(folder)/.old-\(name)-\(UUID().uuidString)"
      try fm.moveItem(atPath: final, toPath: old)
      try? fm.removeItem(atPath: old)
    }
    guard rename(temporary, final) == 0 else {
      throw CheckpointError("cannot move checkpoint \(temporary) to \(final): \(String(cString: strerror(errno)))")
    }
    renamed = true
    try AtomicFile.syncDirectory(folder)
    return RunCheckpoint(directory: final, meta: meta)
  }

  /// Opens and verifies a checkpoint folder: meta.json readable, every file present with its
  /// recorded size and hash.
  public static func open(_ directory: String) throws -> RunCheckpoint {
    let metaPath = "\(directory)/meta.json"
    guard let data = FileManager.default.contents(atPath: metaPath) else {
      throw CheckpointError("\(directory) is not a checkpoint (no meta.json)")
    }
    let meta: CheckpointMeta
    do { meta = try JSONDecoder().decode(CheckpointMeta.self, from: data) } catch {
      throw CheckpointError("\(metaPath) is corrupt: \(error)")
    }
    guard meta.format == CheckpointMeta.formatVersion else {
      throw CheckpointError("\(metaPath): checkpoint format \(meta.format), this build reads \(CheckpointMeta.formatVersion)")
    }
    for (file, expected) in meta.files.sorted(by: { $0.key < $1.key }) {
      let path = "\(directory)/\(file)"
      guard FileManager.default.fileExists(atPath: path) else { throw CheckpointError("\(path) is missing") }
      let actual = try FileDigest(path: path)
      guard actual == expected else {
        throw CheckpointError(
          "\(path) is corrupt: \(actual.bytes) bytes with hash \(actual.fnv1a), meta.json recorded \(expected.bytes) bytes with hash \(expected.fnv1a)"
        )
      }
    }
    return RunCheckpoint(directory: directory, meta: meta)
  }

  /// Step folders under `folder`, newest first.
  public static func stepFolders(in folder: String) -> [String] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
    return names.filter { $0.hasPrefix("step-") }.sorted(by: >).map { "\(folder)/\($0)" }
  }

  /// The newest checkpoint that verifies; damaged ones are reported through `skipped` and passed over.
  public static func latest(in folder: String, skipped: (String, Error) -> Void = { _, _ in }) -> RunCheckpoint? {
    for directory in stepFolders(in: folder) {
      do { return try open(directory) } catch { skipped(directory, error) }
    }
    return nil
  }

  /// Keeps the newest `keepLast` step folders and the best one; removes the rest.
  public static func prune(in folder: String, keepLast: Int, best: String?) {
    for (i, directory) in stepFolders(in: folder).enumerated() where i >= max(keepLast, 1) {
      if let best, (directory as NSString).lastPathComponent == (best as NSString).lastPathComponent { continue }
      try? FileManager.default.removeItem(atPath: directory)
    }
  }
}

/// JSON with sorted keys and readable layout, for metadata and results.
public enum JSONCoding {
  public static func encode<T: Encodable>(_ value: T) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return try encoder.encode(value)
  }

  public static func decode<T: Decodable>(_ type: T.Type, file: String) throws -> T {
    guard let data = FileManager.default.contents(atPath: file) else { throw CheckpointError("cannot read \(file)") }
    do { return try JSONDecoder().decode(type, from: data) } catch { throw CheckpointError("\(file) is not valid: \(error)") }
  }
}

import Foundation
import Models
import Pyramid
import SafeFiles
import Torch

/// Teacher features computed once and stored on disk in memory-mapped safetensors shards,
/// reused across epochs, runs, baselines and ablations: an image's fields once per (sample id,
/// augmented view), a caption's once per (sample id, caption) (`features(teacher:…)`).
///
/// Layout: `<root>/<fingerprint>/manifest.json` and `shard-NNNNNN.safetensors` (one stored
/// batch each; its sample keys in the shard's metadata). The fingerprint hashes the teacher's
/// weights, the preprocessing, the pyramid config and the storage dtype, so a cache made with
/// anything else lives in another folder and is never read. Every write is atomic; a shard
/// whose checksum or structure does not verify is dropped (and its samples recomputed),
/// never used.
///
/// ```swift
/// let cache = try TeacherCache(root: "runs/cache", fingerprint: TeacherCache.fingerprint(teacher: t, preprocessing: "clip-64", pyramid: p))
/// let features = try cache.features(for: keys) ?? { let f = try compute(); try cache.store(f, keys: keys); return f }()
/// ```
public final class TeacherCache {
  public let directory: String
  public let fingerprint: String
  public let budgetBytes: Int64
  public let storage: DType
  /// Counters for the run's report.
  public private(set) var hits = 0
  public private(set) var misses = 0
  public private(set) var droppedShards: [String] = []
  public private(set) var budgetReached = false
  public var bytesOnDisk: Int64 { shards.values.reduce(0) { $0 + $1.bytes } }

  private struct ShardRecord: Codable {
    var checksum: String
    var bytes: Int64
  }
  private struct Manifest: Codable {
    var fingerprint: String
    var description: String
    var shards: [String: ShardRecord]
  }
  private var shards: [String: ShardRecord] = [:]
  private var description: String
  private var index: [String: (shard: String, row: Int)] = [:]
  private var open: [String: SafeTensorsFile] = [:]
  private var verified: Set<String> = []
  private var nextShard = 0
  private let log: (String) -> Void

  /// - Parameters:
  ///   - root: the cache folder shared by runs; this cache uses `<root>/<fingerprint>`.
  ///   - fingerprint: from `TeacherCache.fingerprint(…)`.
  ///   - description: human-readable provenance stored in the manifest.
  ///   - maxBytes: disk budget; past it, batches are computed live and a message says so once.
  ///   - storage: dtype on disk (float32 reads back bit-exact; float16 halves the size).
  ///   - log: where notices go (a corrupt shard dropped, the budget reached).
  public init(
    root: String, fingerprint: String, description: String = "", maxBytes: Int64 = 20 << 30, storage: DType = .float32,
    log: @escaping (String) -> Void = { _ in }
  ) throws {
    guard storage.isFloatingPoint else {
      throw PyramidError("teacher cache storage must be a floating-point dtype, not \(storage)")
    }
    self.directory = "\(root)/\(fingerprint)"
    self.fingerprint = fingerprint
    self.description = description
    self.budgetBytes = maxBytes
    self.storage = storage
    self.log = log
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try loadManifest()
  }

  /// A fingerprint of everything that determines the stored features.
  public static func fingerprint(teacher: CLIPModel, preprocessing: String, pyramid: PyramidConfig, storage: DType = .float32)
    throws -> String
  {
    var hash = ContentHash()
    hash.update("cmapkd-teacher-cache-v2|\(preprocessing)|\(storage)|")
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    hash.update(String(decoding: try encoder.encode(pyramid), as: UTF8.self))
    for (name, tensor) in teacher.stateDict() {
      hash.update("\(name)\(tensor.shape)\(tensor.dtype)")
      let bytes = try tensor.bytes()
      bytes.withUnsafeBytes { hash.update($0) }
    }
    return hash.hex
  }

  // MARK: Reading

  /// The stored features of these samples, in this order, or nil if any is missing (then the
  /// caller computes the batch live and stores it).
  public func features(for keys: [String]) throws -> TeacherFeatures? {
    try rows(for: keys).map { try TeacherFeatures(named: $0) }
  }

  /// The stored tensors of these keys, stacked in this order (float32), or nil if any is missing.
  public func rows(for keys: [String]) throws -> [String: Tensor]? {
    try storedRows(for: keys)?.mapValues { try $0.to(.float32) }
  }

  /// `rows(for:)` in the storage dtype (float16 by default): moved to a GPU as they are and
  /// widened there, they cross the bus at half the bytes.
  func storedRows(for keys: [String]) throws -> [String: Tensor]? {
    var rows: [(file: SafeTensorsFile, row: Int)] = []
    for key in keys {
      guard let location = index[key], let file = try shardFile(location.shard) else {
        misses += 1
        return nil
      }
      rows.append((file, location.row))
    }
    var fields: [String: Tensor] = [:]
    for name in rows[0].file.names {
      let entries = rows.map { $0.file.info(name) }
      guard let first = entries[0], entries.allSatisfy({ $0?.shape.dropFirst() == first.shape.dropFirst() && $0?.dtype == first.dtype })
      else {  // e.g. texts padded to another length
        misses += 1
        return nil
      }
      // The rows' bytes side by side, then one tensor: a memcpy per row, not a LibTorch view,
      // select and stack per row (2.4 ms of a 60 ms step at the demo's sizes).
      let rowShape = Array(first.shape.dropFirst())
      let rowBytes = rowShape.reduce(first.dtype.byteSize, *)
      var bytes = [UInt8](repeating: 0, count: rowBytes * rows.count)
      try bytes.withUnsafeMutableBytes { buffer in
        for (i, location) in rows.enumerated() {
          try location.file.copyRow(name, row: location.row, to: UnsafeMutableRawBufferPointer(rebasing: buffer[(i * rowBytes)..<((i + 1) * rowBytes)]))
        }
      }
      fields[name] = try bytes.withUnsafeBytes { try Tensor.fromBytes($0, shape: [rows.count] + rowShape, dtype: first.dtype) }
    }
    hits += 1
    return fields
  }

  /// Keys stored (each names one row of a shard).
  public var entryCount: Int { index.count }

  /// The open shard, verifying its checksum on first use; nil (and dropped) if corrupt.
  private func shardFile(_ name: String) throws -> SafeTensorsFile? {
    if let file = open[name] { return file }
    guard let record = shards[name] else { return nil }
    let path = "\(directory)/\(name)"
    do {
      let file = try SafeTensorsFile(path: path)
      if !verified.contains(name) {
        let checksum = try TeacherCache.checksum(path)
        guard checksum == record.checksum else {
          throw PyramidError("checksum \(checksum) does not match the manifest's \(record.checksum)")
        }
        verified.insert(name)
      }
      open[name] = file
      return file
    } catch {
      try drop(name, reason: "\(error)")
      return nil
    }
  }

  // MARK: Writing

  /// Stores one batch's features under its sample keys (atomically), unless the disk budget
  /// would be exceeded. Returns whether it was stored.
  @discardableResult
  public func store(_ features: TeacherFeatures, keys: [String]) throws -> Bool {
    try store(named: features.named(), keys: keys)
  }

  /// Stores the rows of `named` (each [B, …]) whose keys are not stored yet (a key stored
  /// already, or repeated in the batch, keeps its first row), atomically, unless the disk
  /// budget would be exceeded. Returns whether anything was stored.
  @discardableResult
  public func store(named: [(String, Tensor)], keys: [String]) throws -> Bool {
    guard let batch = named.first?.1.size(0), batch == keys.count else {
      throw PyramidError("teacher cache: \(keys.count) keys for a batch of \(named.first?.1.size(0) ?? 0)")
    }
    var seen = Set<String>()
    let fresh = keys.indices.filter { index[keys[$0]] == nil && seen.insert(keys[$0]).inserted }
    guard !fresh.isEmpty else { return false }
    let keys = fresh.map { keys[$0] }
    let selection = fresh.count == batch ? nil : try Tensor(fresh.map(Int64.init))
    var tensors: [String: Tensor] = [:]
    var size: Int64 = 0
    for (name, t) in named {
      var stored = try t.detach().to(.cpu, storage)
      if let selection { stored = try stored.indexSelect(dim: 0, index: selection).contiguous() }
      tensors[name] = stored
      size += Int64(stored.count * storage.byteSize)
    }
    if bytesOnDisk + size > budgetBytes {
      if !budgetReached {
        log(
          "teacher cache \(directory): the budget of \(TeacherCache.gigabytes(budgetBytes)) is reached; further batches are computed live (raise the cache budget or free space)"
        )
      }
      budgetReached = true
      return false
    }
    let keysJSON = String(decoding: try JSONEncoder().encode(keys), as: UTF8.self)
    var name: String
    // The name is reserved by creating the file exclusively: another process filling the same
    // cache cannot pick it too.
    func reserve(_ path: String) -> Bool {
      let fd = Foundation.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
      if fd >= 0 { close(fd) }
      return fd >= 0
    }
    repeat {
      name = String(format: "shard-%06d.safetensors", nextShard)
      nextShard += 1
    } while shards[name] != nil || !reserve("\(directory)/\(name)")
    let path = "\(directory)/\(name)"
    try SafeTensors.save(tensors, to: path, metadata: ["keys": keysJSON, "fingerprint": fingerprint])
    let bytes = try Int64((FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? size)
    shards[name] = ShardRecord(checksum: try TeacherCache.checksum(path), bytes: bytes)
    verified.insert(name)
    for (row, key) in keys.enumerated() { index[key] = (name, row) }
    try saveManifest()
    return true
  }

  // MARK: Manifest

  private var manifestPath: String { "\(directory)/manifest.json" }

  private func loadManifest() throws {
    guard FileManager.default.fileExists(atPath: manifestPath) else { return }
    let manifest: Manifest
    do {
      manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: manifestPath)))
      guard manifest.fingerprint == fingerprint else {
        throw PyramidError("it records fingerprint \(manifest.fingerprint), expected \(fingerprint)")
      }
    } catch {
      log("teacher cache \(directory): manifest unreadable (\(error)); starting the cache afresh")
      try clearShards()
      return
    }
    for (name, record) in manifest.shards.sorted(by: { $0.key < $1.key }) {
      do { try adopt(name, record) } catch { try drop(name, reason: "\(error)") }
    }
    nextShard = shards.count
  }

  /// Takes a shard into the index (its sample keys are in its metadata).
  private func adopt(_ name: String, _ record: ShardRecord) throws {
    shards[name] = record
    let file = try SafeTensorsFile(path: "\(directory)/\(name)")
    guard let json = file.metadata["keys"], let keys = try? JSONDecoder().decode([String].self, from: Data(json.utf8)) else {
      throw PyramidError("no sample keys in its metadata")
    }
    for (row, key) in keys.enumerated() { index[key] = (name, row) }
  }

  /// Writes the manifest under an exclusive lock, first taking in the shards other writers
  /// (another process filling the same cache) recorded since this one read it: no writer's
  /// shards are lost to another's stale copy.
  private func saveManifest() throws {
    let lockPath = "\(directory)/manifest.lock"
    let fd = Foundation.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw PyramidError("teacher cache: cannot open \(lockPath): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    guard flock(fd, LOCK_EX) == 0 else { throw PyramidError("teacher cache: cannot lock \(lockPath)") }
    defer { flock(fd, LOCK_UN) }
    if let data = FileManager.default.contents(atPath: manifestPath),
      let onDisk = try? JSONDecoder().decode(Manifest.self, from: data), onDisk.fingerprint == fingerprint
    {
      for (name, record) in onDisk.shards
      where shards[name] == nil && !droppedShards.contains(name) && FileManager.default.fileExists(atPath: "\(directory)/\(name)") {
        do { try adopt(name, record) } catch { shards[name] = nil }
      }
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    let data = try encoder.encode(Manifest(fingerprint: fingerprint, description: description, shards: shards))
    try AtomicFile.write(data, to: manifestPath)
  }

  /// Forgets a shard that failed to verify, deletes it and reports it.
  private func drop(_ name: String, reason: String) throws {
    log("teacher cache \(directory): dropping \(name) (\(reason)); its samples will be recomputed")
    droppedShards.append(name)
    shards[name] = nil
    open[name] = nil
    index = index.filter { $0.value.shard != name }
    try? FileManager.default.removeItem(atPath: "\(directory)/\(name)")
    try saveManifest()
  }

  private func clearShards() throws {
    for file in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where file.hasPrefix("shard-") {
      try? FileManager.default.removeItem(atPath: "\(directory)/\(file)")
    }
    shards = [:]
    index = [:]
    try saveManifest()
  }

  static func checksum(_ path: String) throws -> String { try ContentHash.file(path) }

  static func gigabytes(_ bytes: Int64) -> String { String(format: "%.2f GB", Double(bytes) / 1e9) }
}

extension TeacherCache {
  /// One batch's teacher features with each half looked up on its own: the image fields under
  /// `imageKeys` (sample and augmented view), the caption fields under `textKeys` (sample and
  /// caption). A half the cache lacks is computed by that tower of `teacher` alone and stored,
  /// so an image is stored once per view however many captions it is trained with, and a
  /// caption once however many views. Computed halves are rounded to the storage dtype: the
  /// numbers are the same whether they were computed now or read back.
  public func features(
    teacher: CLIPModel, pixels: Tensor, ids: Tensor, attentionMask: Tensor, imageKeys: [String], textKeys: [String],
    pyramid: PyramidConfig, device: Device
  ) throws -> TeacherFeatures {
    func half(_ keys: [String], _ compute: () throws -> [String: Tensor]) throws -> [String: Tensor] {
      // Moved first, then widened: `to(device, dtype)` would widen on the host.
      if let stored = try storedRows(for: keys) { return try stored.mapValues { try $0.to(device).to(.float32) } }
      let computed = try compute()
      try store(named: computed.sorted { $0.key < $1.key }, keys: keys)
      return try computed.mapValues { try TeacherFeatures.rounded($0, to: storage) }
    }
    let image = try half(imageKeys.map { "image|\($0)" }) {
      try TeacherFeatures.computeImage(teacher: teacher, pixels: pixels, pyramid: pyramid)
    }
    let text = try half(textKeys.map { "text|\($0)" }) {
      try TeacherFeatures.computeText(teacher: teacher, ids: ids, attentionMask: attentionMask, pyramid: pyramid)
    }
    return try TeacherFeatures(named: image.merging(text) { a, _ in a })
  }
}

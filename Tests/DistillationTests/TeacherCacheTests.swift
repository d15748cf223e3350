import Distillation
import Foundation
import Models
import Pyramid
import TestSupport
import Testing
import Torch
import TorchNN
import TorchOptim

final class Messages: @unchecked Sendable {
  var lines: [String] = []
}

func cacheRoot() throws -> String {
  try Scratch.folder("cache")
}

/// 8 samples; two epochs with different batch compositions.
struct TinyDataset {
  let pixels: Tensor
  let ids: Tensor
  let epochs: [[[Int]]] = [[[0, 1, 2, 3], [4, 5, 6, 7]], [[0, 5, 2, 7], [4, 1, 6, 3]]]

  init() throws {
    let g = try Generator(seed: 11)
    pixels = try Tensor.randn([8, 3, 16, 16], generator: g)
    var rows: [Int64] = []
    for i in 0..<8 { rows += [98, Int64(10 + i), Int64(20 + i), 99, 0, 0] }
    ids = try Tensor(rows, shape: [8, 6])
  }

  func batch(_ indices: [Int]) throws -> (pixels: Tensor, ids: Tensor, mask: Tensor, keys: [String]) {
    let index = try Tensor(indices.map(Int64.init))
    let ids = try self.ids.indexSelect(dim: 0, index: index)
    return (try pixels.indexSelect(dim: 0, index: index), ids, try ids.ne(0).to(.int64), indices.map { "sample\($0)#aug0" })
  }
}

@Suite("Teacher-feature cache")
struct TeacherCacheTests {
  /// Initial student and head weights, shared by every run of a test (the global generator is
  /// shared with tests running in parallel, so seeding it would not pin the initialisation).
  func initialState(teacher: CLIPModel) throws -> (student: [String: Tensor], head: [String: Tensor]) {
    let student = try CLIPModel(smallCLIP(width: 16, layers: 2))
    let head = try CMAPKDHead(student: student.config, teacher: teacher)
    func copy(_ m: Module) throws -> [String: Tensor] {
      Dictionary(uniqueKeysWithValues: try m.stateDict().map { ($0.0, try $0.1.detach().clone()) })
    }
    return (try copy(student), try copy(head))
  }

  /// Trains a student for two epochs, teacher features live or through `cache`; returns the losses.
  func train(teacher: CLIPModel, from state: (student: [String: Tensor], head: [String: Tensor]), cache: TeacherCache?) throws
    -> [Double]
  {
    let student = try CLIPModel(smallCLIP(width: 16, layers: 2))
    let head = try CMAPKDHead(student: student.config, teacher: teacher)
    try student.loadStateDict(state.student)
    try head.loadStateDict(state.head)
    // Uniform weights: the gating ALSN's dropout would draw random numbers the two runs do not share.
    let method = try fittedCMAPKD(everyTerm(.uniform), teacher: teacher)
    let optimizer = try AdamW(student.parameters() + head.pyramid.parameters() + head.bridge!.parameters(), learningRate: 1e-3)
    let data = try TinyDataset()
    var losses: [Double] = []
    for epoch in data.epochs {
      for indices in epoch {
        let b = try data.batch(indices)
        let features: TeacherFeatures
        if let cached = try cache?.features(for: b.keys) {
          features = cached
        } else {
          features = try TeacherFeatures.compute(
            teacher: teacher, pixels: b.pixels, ids: b.ids, attentionMask: b.mask, pyramid: method.config.pyramid)
          try cache?.store(features, keys: b.keys)
        }
        let step = try method.step(
          student: student, head: head, teacher: features, pixels: b.pixels, ids: b.ids, attentionMask: b.mask, stage: .fine)
        try optimizer.zeroGrad()
        try step.total.backward()
        try optimizer.step()
        losses.append(try step.total.item())
      }
    }
    return losses
  }

  func teacher(seed: UInt64 = 3) throws -> CLIPModel {
    try Torch.manualSeed(seed)
    let t = try CLIPModel(smallCLIP(width: 32, layers: 4))
    try t.freeze()
    t.eval()
    return t
  }

  @Test("training losses are identical with and without the cache (batches reassembled across epochs)")
  func identicalLosses() throws {
    let t = try teacher()
    let root = try cacheRoot()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let start = try initialState(teacher: t)
    let live = try train(teacher: t, from: start, cache: nil)
    let fingerprint = try TeacherCache.fingerprint(teacher: t, preprocessing: "test", pyramid: PyramidConfig())
    let cache = try TeacherCache(root: root, fingerprint: fingerprint)
    let cached = try train(teacher: t, from: start, cache: cache)
    #expect(cached == live)
    #expect(cache.hits == 2 && cache.misses == 2)  // epoch 2 reads every sample back, in new batches
    // A later run (a new cache object) reuses everything.
    let again = try TeacherCache(root: root, fingerprint: fingerprint)
    #expect(try train(teacher: t, from: start, cache: again) == live)
    #expect(again.hits == 4 && again.misses == 0)
  }

  @Test("two writers of one cache (two processes) keep each other's shards")
  func twoWriters() throws {
    let t = try teacher()
    let root = try cacheRoot()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let fingerprint = try TeacherCache.fingerprint(teacher: t, preprocessing: "test", pyramid: PyramidConfig())
    // Both open the cache before either writes: each holds a stale copy of the manifest.
    let first = try TeacherCache(root: root, fingerprint: fingerprint)
    let second = try TeacherCache(root: root, fingerprint: fingerprint)
    let data = try TinyDataset()
    let batches = data.epochs[0]
    func features(_ indices: [Int]) throws -> (TeacherFeatures, [String]) {
      let b = try data.batch(indices)
      return (
        try TeacherFeatures.compute(teacher: t, pixels: b.pixels, ids: b.ids, attentionMask: b.mask, pyramid: PyramidConfig()),
        b.keys
      )
    }
    let (a, keysA) = try features(batches[0])
    let (b, keysB) = try features(batches[1])
    #expect(try first.store(a, keys: keysA))
    #expect(try second.store(b, keys: keysB))
    let later = try TeacherCache(root: root, fingerprint: fingerprint)
    #expect(try later.features(for: keysA) != nil && later.features(for: keysB) != nil)
    #expect(later.droppedShards.isEmpty)
  }

  @Test("a different teacher has a different fingerprint and never sees the old entries")
  func stale() throws {
    let root = try cacheRoot()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let a = try teacher(seed: 3), b = try teacher(seed: 4)
    let fa = try TeacherCache.fingerprint(teacher: a, preprocessing: "test", pyramid: PyramidConfig())
    let fb = try TeacherCache.fingerprint(teacher: b, preprocessing: "test", pyramid: PyramidConfig())
    #expect(fa != fb)
    #expect(fa != (try TeacherCache.fingerprint(teacher: a, preprocessing: "other", pyramid: PyramidConfig())))
    #expect(fa != (try TeacherCache.fingerprint(teacher: a, preprocessing: "test", pyramid: PyramidConfig(phraseWindow: 2))))
    let data = try TinyDataset()
    let batch = try data.batch([0, 1, 2, 3])
    let features = try TeacherFeatures.compute(
      teacher: a, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask, pyramid: PyramidConfig())
    try TeacherCache(root: root, fingerprint: fa).store(features, keys: batch.keys)
    #expect(try TeacherCache(root: root, fingerprint: fb).features(for: batch.keys) == nil)
    #expect(try TeacherCache(root: root, fingerprint: fa).features(for: batch.keys) != nil)
  }

  @Test("a corrupt or truncated shard and a garbled manifest are detected, reported and never used")
  func corruption() throws {
    let root = try cacheRoot()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let t = try teacher()
    let fingerprint = try TeacherCache.fingerprint(teacher: t, preprocessing: "test", pyramid: PyramidConfig())
    let data = try TinyDataset()
    let first = try data.batch([0, 1, 2, 3]), second = try data.batch([4, 5, 6, 7])
    let cache = try TeacherCache(root: root, fingerprint: fingerprint)
    for b in [first, second] {
      try cache.store(
        TeacherFeatures.compute(teacher: t, pixels: b.pixels, ids: b.ids, attentionMask: b.mask, pyramid: PyramidConfig()),
        keys: b.keys)
    }
    let shard0 = "\(cache.directory)/shard-000000.safetensors", shard1 = "\(cache.directory)/shard-000001.safetensors"
    // Flip one byte in the data of shard 0; cut shard 1 short.
    var bytes = try Data(contentsOf: URL(fileURLWithPath: shard0))
    bytes[bytes.count - 5] ^= 0xff
    try bytes.write(to: URL(fileURLWithPath: shard0))
    let full = try Data(contentsOf: URL(fileURLWithPath: shard1))
    try full.prefix(full.count / 2).write(to: URL(fileURLWithPath: shard1))

    let messages = Messages()
    let reopened = try TeacherCache(root: root, fingerprint: fingerprint) { messages.lines.append($0) }
    #expect(try reopened.features(for: first.keys) == nil)
    #expect(try reopened.features(for: second.keys) == nil)
    #expect(Set(reopened.droppedShards) == ["shard-000000.safetensors", "shard-000001.safetensors"])
    #expect(messages.lines.contains { $0.contains("shard-000000.safetensors") && $0.contains("checksum") })
    #expect(!FileManager.default.fileExists(atPath: shard0))
    // Recomputed features are stored again and read back.
    try reopened.store(
      TeacherFeatures.compute(
        teacher: t, pixels: first.pixels, ids: first.ids, attentionMask: first.mask, pyramid: PyramidConfig()), keys: first.keys)
    #expect(try reopened.features(for: first.keys) != nil)

    try Data("{not json".utf8).write(to: URL(fileURLWithPath: "\(cache.directory)/manifest.json"))
    let afresh = try TeacherCache(root: root, fingerprint: fingerprint) { messages.lines.append($0) }
    #expect(messages.lines.contains { $0.contains("manifest unreadable") })
    #expect(try afresh.features(for: first.keys) == nil && afresh.bytesOnDisk == 0)
  }

  @Test("the disk budget stops writes with one clear message; batches are then computed live")
  func budget() throws {
    let root = try cacheRoot()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let t = try teacher()
    let messages = Messages()
    let cache = try TeacherCache(root: root, fingerprint: "tiny-budget", maxBytes: 1000) { messages.lines.append($0) }
    let data = try TinyDataset()
    let b = try data.batch([0, 1, 2, 3])
    let features = try TeacherFeatures.compute(
      teacher: t, pixels: b.pixels, ids: b.ids, attentionMask: b.mask, pyramid: PyramidConfig())
    #expect(try cache.store(features, keys: b.keys) == false)
    #expect(try cache.store(features, keys: b.keys) == false)
    #expect(cache.budgetReached && messages.lines.count == 1 && messages.lines[0].contains("budget"))
  }

  @Test("float16 storage halves the shard and stays within fp16 precision")
  func halfStorage() throws {
    let root = try cacheRoot()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let t = try teacher()
    let data = try TinyDataset()
    let b = try data.batch([0, 1, 2, 3])
    let features = try TeacherFeatures.compute(
      teacher: t, pixels: b.pixels, ids: b.ids, attentionMask: b.mask, pyramid: PyramidConfig())
    let full = try TeacherCache(root: root, fingerprint: "f32")
    let half = try TeacherCache(root: root, fingerprint: "f16", storage: .float16)
    try full.store(features, keys: b.keys)
    try half.store(features, keys: b.keys)
    #expect(Double(half.bytesOnDisk) < 0.6 * Double(full.bytesOnDisk))
    let read = try #require(try half.features(for: b.keys))
    #expect(try maxAbsDiff(read.visionMaps[0], features.visionMaps[0]) < 1e-2)
  }

  @Test("an image is stored once per view and a caption once: halves are read and computed apart, to the same numbers")
  func imageAndCaptionHalves() throws {
    let root = try cacheRoot()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let t = try teacher()
    let data = try TinyDataset()
    let b = try data.batch([0, 1, 2, 3])
    // The same four images with other captions (rows 4–7's ids), then a new view of the images
    // with those captions.
    let otherIds = try data.batch([4, 5, 6, 7])
    let cache = try TeacherCache(root: root, fingerprint: "halves")
    let views = (0..<4).map { "sample\($0)#view0" }, newViews = (0..<4).map { "sample\($0)#view1" }
    let captions = (0..<4).map { "sample\($0)#caption0" }, otherCaptions = (0..<4).map { "sample\($0)#caption1" }
    func features(_ ids: Tensor, _ mask: Tensor, images: [String], texts: [String]) throws -> TeacherFeatures {
      try cache.features(
        teacher: t, pixels: b.pixels, ids: ids, attentionMask: mask, imageKeys: images, textKeys: texts, pyramid: PyramidConfig(),
        device: .cpu)
    }
    func expectSame(_ a: TeacherFeatures, _ b: TeacherFeatures) throws {
      let (x, y) = (Dictionary(uniqueKeysWithValues: a.named()), Dictionary(uniqueKeysWithValues: b.named()))
      #expect(Set(x.keys) == Set(y.keys))
      for (name, value) in x { #expect(try maxAbsDiff(value.to(.float32), y[name]!.to(.float32)) == 0, "\(name)") }
    }

    let first = try features(b.ids, b.mask, images: views, texts: captions)
    try expectSame(first, TeacherFeatures.compute(teacher: t, pixels: b.pixels, ids: b.ids, attentionMask: b.mask, pyramid: PyramidConfig()))
    #expect(cache.entryCount == 8 && cache.hits == 0 && cache.misses == 2)
    let bytesAfterFirst = cache.bytesOnDisk

    // Other captions of the same views: the image half is read back, only the captions are new.
    let second = try features(otherIds.ids, otherIds.mask, images: views, texts: otherCaptions)
    try expectSame(
      second,
      TeacherFeatures.compute(teacher: t, pixels: b.pixels, ids: otherIds.ids, attentionMask: otherIds.mask, pyramid: PyramidConfig()))
    #expect(cache.entryCount == 12 && cache.hits == 1 && cache.misses == 3)
    let captionBytes = cache.bytesOnDisk - bytesAfterFirst
    #expect(captionBytes > 0 && captionBytes < bytesAfterFirst, "the second batch stored \(captionBytes) bytes, the first \(bytesAfterFirst)")

    // A new view with known captions: only the image half is computed.
    _ = try features(otherIds.ids, otherIds.mask, images: newViews, texts: otherCaptions)
    #expect(cache.entryCount == 16 && cache.hits == 2 && cache.misses == 4)
    // Everything read back: no new entries, no new bytes.
    let bytes = cache.bytesOnDisk
    let again = try features(b.ids, b.mask, images: views, texts: captions)
    try expectSame(again, first)
    #expect(cache.entryCount == 16 && cache.bytesOnDisk == bytes && cache.hits == 4)
    // A batch that repeats stored keys stores only its new rows.
    #expect(try cache.store(named: first.named().filter { TeacherFeatures.isImageField($0.0) }, keys: views.map { "image|\($0)" }) == false)
  }
}

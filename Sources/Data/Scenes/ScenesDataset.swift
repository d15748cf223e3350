import Foundation

/// One generated sample: its scene, true captions and (in evaluation splits) hard negatives.
public struct SceneSample: Equatable, Sendable {
  public var index: Int
  public var id: String
  public var scene: Scene
  public var captions: [SceneCaption]
  public var hardNegatives: [HardNegative]
  /// The contrast set this image belongs to, and which member it is (0: the base scene).
  public var contrastSet: Int
  public var variant: Int
}

/// A split of the generated captioned-scenes benchmark, made on demand.
///
/// Nothing is stored: sample `i` is a pure function of the config, the split and `i`, so any
/// sample can be made on any thread in any order, and the same seed gives the same bytes on
/// every machine (integer rendering, a PRNG of our own).
///
/// ```swift
/// let test = try ScenesDataset(ScenesConfig(), split: .test)
/// let sample = test.sample(at: 0)       // scene, captions, hard negatives
/// let image = test.image(at: 0)          // 64×64 RGB
/// ```
public struct ScenesDataset: ImageTextDataset {
  /// Bumped whenever generation changes, so ids (and caches keyed on them) change too.
  public static let generatorVersion = 1

  public let config: ScenesConfig
  public let split: SceneSplit
  /// Hex digest of everything that decides this split's content.
  public let fingerprint: String

  public init(_ config: ScenesConfig = ScenesConfig(), split: SceneSplit) throws {
    try config.validate(split)
    self.config = config
    self.split = split
    let s = config[split]
    let identity = [
      UInt64(Self.generatorVersion), config.seed, UInt64(config.imageSize), UInt64(config.captionsPerImage), split.streamTag,
      UInt64(s.minObjects), UInt64(s.maxObjects), UInt64(s.contrastSetSize), s.hardNegatives ? 1 : 0,
    ]
      // Only a non-default jitter joins the identity, so default ids (and caches) stay as they were.
      + (config.jitterPermille == 1000 ? [] : [0x717, UInt64(config.jitterPermille)])
    fingerprint = String(StableHash.combine(identity), radix: 16)
  }

  private var splitConfig: SceneSplitConfig { config[split] }

  public var name: String { "scenes (\(split.rawValue))" }
  /// The generator's settings and seed, whatever the split is called.
  public var cacheIdentity: String { fingerprint }
  public var count: Int { splitConfig.count }

  public func sampleId(at index: Int) -> String {
    "scenes-\(fingerprint)/\(split.rawValue)/\(index)"
  }

  /// The scene of sample `index`.
  public func scene(at index: Int) -> Scene {
    let size = splitConfig.contrastSetSize
    return SceneSampler.variant(baseScene(contrastSet: index / size), index % size)
  }

  /// Everything about sample `index` (captions are checked against the other members of its
  /// contrast set, so this makes the whole set's scenes).
  public func sample(at index: Int) -> SceneSample {
    let size = splitConfig.contrastSetSize
    let set = index / size
    let base = baseScene(contrastSet: set)
    let members = (0..<size).map { SceneSampler.variant(base, $0) }
    let scene = members[index % size]
    var others = members
    others.remove(at: index % size)
    var random = SeededRandom(config.seed, split.streamTag, UInt64(index), 0xCA97)
    let captions = SceneCaptioner.captions(
      for: scene, distinguishingFrom: others, count: config.captionsPerImage, random: &random)
    let negatives =
      splitConfig.hardNegatives ? HardNegativeMaker.negatives(for: captions, scene: scene, random: &random) : []
    return SceneSample(
      index: index, id: sampleId(at: index), scene: scene, captions: captions, hardNegatives: negatives,
      contrastSet: set, variant: index % size)
  }

  public func captions(at index: Int) -> [String] { sample(at: index).captions.map(\.text) }

  /// One of the attribute, binding and relation negatives of caption `caption` (those that
  /// exist for it), picked by `key`; checked false for the scene like the evaluation ones.
  public func hardNegative(at index: Int, caption: Int, key: UInt64) -> String? {
    let sample = sample(at: index)
    guard sample.captions.indices.contains(caption) else { return nil }
    var random = SeededRandom(seed: key)
    let negatives = HardNegativeMaker.negatives(for: [sample.captions[caption]], scene: sample.scene, random: &random)
    return negatives.isEmpty ? nil : negatives[random.int(below: negatives.count)].text
  }

  /// Renders sample `index`.
  public func image(at index: Int) -> RGBImage { SceneRenderer.render(scene(at: index), size: config.imageSize, jitterPermille: config.jitterPermille) }

  public func loadImage(at index: Int) throws -> RGBImage { image(at: index) }

  /// Renders `indices` on `threads` threads (all cores by default); results in input order.
  public func images(_ indices: Range<Int>, threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [RGBImage] {
    let output = UnsafeMutableBufferPointer<RGBImage?>.allocate(capacity: indices.count)
    output.initialize(repeating: nil)
    defer { output.deallocate() }
    let chunks = max(1, min(threads, indices.count))
    let perChunk = (indices.count + chunks - 1) / chunks
    nonisolated(unsafe) let slots = output
    // Each chunk writes only its own slots, so the shared buffer needs no lock.
    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
      let start = chunk * perChunk
      for offset in start..<min(start + perChunk, indices.count) {
        slots[offset] = image(at: indices.lowerBound + offset)
      }
    }
    return output.map { $0! }
  }

  private func baseScene(contrastSet: Int) -> Scene {
    let s = splitConfig
    var random = SeededRandom(config.seed, split.streamTag, UInt64(contrastSet))
    return SceneSampler.scene(objectCount: s.minObjects...s.maxObjects, forContrast: s.contrastSetSize > 1, random: &random)
  }
}

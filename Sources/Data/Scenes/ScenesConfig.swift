/// The splits of the generated benchmark.
public enum SceneSplit: String, Codable, Sendable, CaseIterable {
  case train, val, test

  /// Mixed into every seed, so each split is its own stream and resizing one leaves the
  /// others' images unchanged.
  var streamTag: UInt64 {
    switch self {
    case .train: 1
    case .val: 2
    case .test: 3
    }
  }
}

/// One split's size and make-up.
public struct SceneSplitConfig: Codable, Sendable, Equatable {
  enum CodingKeys: String, CodingKey {
    case count, minObjects = "min_objects", maxObjects = "max_objects", contrastSetSize = "contrast_set_size", hardNegatives =
      "hard_negatives"
  }

  public var count: Int
  public var minObjects: Int
  public var maxObjects: Int
  /// Images per contrast set: 1 for independent scenes; 4 adds to each base scene its
  /// colour-swapped, place-swapped and fill-swapped variants; 5 also the shape-swapped one.
  public var contrastSetSize: Int
  /// Whether samples carry hard-negative captions.
  public var hardNegatives: Bool

  public init(count: Int, minObjects: Int = 1, maxObjects: Int = 4, contrastSetSize: Int = 1, hardNegatives: Bool = false) {
    self.count = count
    self.minObjects = minObjects
    self.maxObjects = maxObjects
    self.contrastSetSize = contrastSetSize
    self.hardNegatives = hardNegatives
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    count = try c.decode(Int.self, forKey: .count)
    minObjects = try c.decode(.minObjects, default: 1)
    maxObjects = try c.decode(.maxObjects, default: 4)
    contrastSetSize = try c.decode(.contrastSetSize, default: 1)
    hardNegatives = try c.decode(.hardNegatives, default: false)
  }

  /// Evaluation splits: scenes of 2–4 objects in contrast sets of 4, with hard negatives.
  public static func evaluation(count: Int) -> SceneSplitConfig {
    SceneSplitConfig(count: count, minObjects: 2, maxObjects: 4, contrastSetSize: 4, hardNegatives: true)
  }
}

/// The generated captioned-scenes benchmark: seed, resolution, split sizes.
///
/// ```swift
/// var config = ScenesConfig()          // 20k train, 1k val, 1k test at 48×48
/// config.train.count = 200             // a quick test
/// let test = try ScenesDataset(config, split: .test)
/// ```
public struct ScenesConfig: Codable, Sendable, Equatable {
  enum CodingKeys: String, CodingKey {
    case seed, train, val, test, imageSize = "image_size", captionsPerImage = "captions_per_image", zeroShotCount =
      "zero_shot_count", positionJitter = "position_jitter"
  }

  public var seed: UInt64 = 0
  /// Side of the square images, in pixels. 48 puts the 3×3 layout grid on a 16 px patch
  /// grid, which the scene presets use.
  public var imageSize: Int = 48
  public var captionsPerImage: Int = 5
  public var train = SceneSplitConfig(count: 20_000)
  public var val = SceneSplitConfig.evaluation(count: 1_000)
  public var test = SceneSplitConfig.evaluation(count: 1_000)
  /// Single-object images for zero-shot classification by shape and colour.
  public var zeroShotCount: Int = 1_000
  /// How far an object may wander from its cell's centre, as a share of the room it has
  /// (0: centred, 1: anywhere in its cell). Changes the pixels, not the scenes or captions.
  public var positionJitter: Double = 1

  public init(seed: UInt64 = 0, imageSize: Int = 48) {
    self.seed = seed
    self.imageSize = imageSize
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = ScenesConfig()
    seed = try c.decode(.seed, default: d.seed)
    imageSize = try c.decode(.imageSize, default: d.imageSize)
    captionsPerImage = try c.decode(.captionsPerImage, default: d.captionsPerImage)
    train = try c.decode(.train, default: d.train)
    val = try c.decode(.val, default: d.val)
    test = try c.decode(.test, default: d.test)
    zeroShotCount = try c.decode(.zeroShotCount, default: d.zeroShotCount)
    positionJitter = try c.decode(.positionJitter, default: d.positionJitter)
  }

  /// `positionJitter` in thousandths, the integer the renderer works in.
  var jitterPermille: Int { Int((positionJitter * 1000).rounded()) }

  public subscript(split: SceneSplit) -> SceneSplitConfig {
    get {
      switch split {
      case .train: train
      case .val: val
      case .test: test
      }
    }
    set {
      switch split {
      case .train: train = newValue
      case .val: val = newValue
      case .test: test = newValue
      }
    }
  }

  /// Throws a `DataError` naming the first bad value.
  public func validate(_ split: SceneSplit) throws {
    func fail(_ message: String, kind: DataError.Kind = .invalidArgument) -> DataError {
      DataError(kind, file: "ScenesConfig", key: split.rawValue, message)
    }
    let s = self[split]
    guard imageSize >= 16 else { throw fail("imageSize \(imageSize) is below 16 pixels") }
    guard (0...1).contains(positionJitter) else { throw fail("position_jitter must be in [0, 1] (got \(positionJitter))") }
    guard captionsPerImage >= 1 else { throw fail("captionsPerImage must be at least 1") }
    guard s.count > 0 else { throw fail("count is \(s.count): the split would be empty", kind: .emptySplit) }
    guard 1 <= s.minObjects, s.minObjects <= s.maxObjects, s.maxObjects <= 4 else {
      throw fail("objects must satisfy 1 ≤ minObjects ≤ maxObjects ≤ 4 (got \(s.minObjects)…\(s.maxObjects))")
    }
    guard (1...SceneSampler.maxContrastSetSize).contains(s.contrastSetSize) else {
      throw fail("contrastSetSize must be 1…\(SceneSampler.maxContrastSetSize)")
    }
    guard s.contrastSetSize == 1 || s.minObjects >= 2 else {
      throw fail("contrast sets swap attributes between objects: min_objects must be at least 2")
    }
  }
}

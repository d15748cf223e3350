import Foundation

/// Training augmentation: torchvision's `RandomResizedCrop` and an optional flip.
///
/// Every random choice comes from the sample's augmentation key, so a key names one view
/// exactly: a teacher-feature cache that stores features per (sample id, key) can trust them.
public struct AugmentationConfig: Codable, Sendable, Equatable {
  enum CodingKeys: String, CodingKey {
    case scale, ratio, randomResizedCrop = "random_resized_crop", horizontalFlip = "horizontal_flip"
  }

  /// Off: training images get the evaluation preprocessing.
  public var randomResizedCrop: Bool = true
  /// Range of the crop's area as a fraction of the image. open_clip's (0.9, 1) rather than
  /// torchvision's (0.08, 1): captions here name positions and sizes, which a small crop
  /// would make false.
  public var scale: [Double] = [0.9, 1.0]
  /// Range of the crop's aspect ratio (width / height), sampled log-uniformly.
  public var ratio: [Double] = [3.0 / 4.0, 4.0 / 3.0]
  /// Off by default: captions say "left" and "right".
  public var horizontalFlip: Bool = false

  public init(randomResizedCrop: Bool = true, scale: [Double] = [0.9, 1.0], horizontalFlip: Bool = false) {
    self.randomResizedCrop = randomResizedCrop
    self.scale = scale
    self.horizontalFlip = horizontalFlip
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = AugmentationConfig()
    randomResizedCrop = try c.decode(.randomResizedCrop, default: d.randomResizedCrop)
    scale = try c.decode(.scale, default: d.scale)
    ratio = try c.decode(.ratio, default: d.ratio)
    horizontalFlip = try c.decode(.horizontalFlip, default: d.horizontalFlip)
  }

  /// Whether any view differs from the evaluation transform.
  public var changesImages: Bool { randomResizedCrop || horizontalFlip }

  func validate() throws {
    guard scale.count == 2, ratio.count == 2, 0 < scale[0], scale[0] <= scale[1], 0 < ratio[0], ratio[0] <= ratio[1] else {
      throw DataError(.invalidArgument, file: "AugmentationConfig", "scale and ratio need [low, high] with 0 < low ≤ high")
    }
  }

  /// The view a key selects for an image of this size.
  public func view(forKey key: UInt64, width: Int, height: Int) -> AugmentedView {
    var random = SeededRandom(seed: key)
    let crop =
      randomResizedCrop ? CropBox.randomResized(width: width, height: height, scale: scale, ratio: ratio, random: &random) : nil
    let flipped = horizontalFlip && random.chance(0.5)
    return AugmentedView(crop: crop, flipped: flipped)
  }
}

/// One augmented view: a crop (nil: the evaluation resize + centre crop) and a flip.
public struct AugmentedView: Equatable, Sendable {
  public var crop: CropBox?
  public var flipped: Bool
}

/// A rectangle of an image, in pixels.
public struct CropBox: Equatable, Sendable, Codable {
  public var top: Int
  public var left: Int
  public var height: Int
  public var width: Int

  public init(top: Int, left: Int, height: Int, width: Int) {
    self.top = top
    self.left = left
    self.height = height
    self.width = width
  }

  /// torchvision's `RandomResizedCrop.get_params`: ten tries at an area and a log-uniform
  /// aspect ratio that fit, else a centre crop clamped to the ratio range.
  public static func randomResized(
    width: Int, height: Int, scale: [Double], ratio: [Double], random: inout SeededRandom
  ) -> CropBox {
    let area = Double(width * height)
    let logRatio = (Foundation.log(ratio[0]), Foundation.log(ratio[1]))
    for _ in 0..<10 {
      let targetArea = area * random.uniform(scale[0], scale[1])
      let aspect = Foundation.exp(random.uniform(logRatio.0, logRatio.1))
      let w = Int((targetArea * aspect).squareRoot().rounded(.toNearestOrEven))
      let h = Int((targetArea / aspect).squareRoot().rounded(.toNearestOrEven))
      if 0 < w && w <= width && 0 < h && h <= height {
        let top = random.int(below: height - h + 1)
        let left = random.int(below: width - w + 1)
        return CropBox(top: top, left: left, height: h, width: w)
      }
    }
    let inRatio = Double(width) / Double(height)
    var w = width
    var h = height
    if inRatio < ratio[0] {
      h = Int((Double(w) / ratio[0]).rounded(.toNearestOrEven))
    } else if inRatio > ratio[1] {
      w = Int((Double(h) * ratio[1]).rounded(.toNearestOrEven))
    }
    return CropBox(top: (height - h) / 2, left: (width - w) / 2, height: h, width: w)
  }
}

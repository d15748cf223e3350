import Foundation
import Torch

/// How images become model inputs: CLIP's resize → centre crop → normalize for evaluation,
/// and a random resized crop for training.
///
/// Defaults are OpenAI CLIP's (`Resize(224, bicubic)`, `CenterCrop(224)`, CLIP mean/std).
public struct PreprocessConfig: Codable, Sendable, Equatable {
  enum CodingKeys: String, CodingKey {
    case filter, mean, std, augmentation, imageSize = "image_size", resizeSize = "resize_size"
  }

  /// Side of the square the model sees.
  public var imageSize: Int = 224
  /// Shorter side after resizing, before the centre crop (nil: `imageSize`).
  public var resizeSize: Int? = nil
  public var filter: ResampleFilter = .bicubic
  /// Per-channel mean and standard deviation (of pixel values scaled to [0, 1]).
  public var mean: [Double] = PreprocessConfig.clipMean
  public var std: [Double] = PreprocessConfig.clipStd
  /// Used when the loader runs in training mode.
  public var augmentation: AugmentationConfig = AugmentationConfig()

  public static let clipMean = [0.48145466, 0.4578275, 0.40821073]
  public static let clipStd = [0.26862954, 0.26130258, 0.27577711]

  public init(imageSize: Int = 224, resizeSize: Int? = nil, augmentation: AugmentationConfig = AugmentationConfig()) {
    self.imageSize = imageSize
    self.resizeSize = resizeSize
    self.augmentation = augmentation
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = PreprocessConfig()
    imageSize = try c.decode(.imageSize, default: d.imageSize)
    resizeSize = try c.decodeIfPresent(Int.self, forKey: .resizeSize)
    filter = try c.decode(.filter, default: d.filter)
    mean = try c.decode(.mean, default: d.mean)
    std = try c.decode(.std, default: d.std)
    augmentation = try c.decode(.augmentation, default: d.augmentation)
  }

  /// A digest of every setting, for cache keys: features computed with one preprocessing
  /// must not be reused under another.
  public var fingerprint: String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    let json = (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "\(self)"
    return String(StableHash.string(json), radix: 16)
  }

  /// Throws when a value cannot work (a zero size, a mean with two channels, …).
  public func validate() throws {
    func fail(_ message: String) -> DataError { DataError(.invalidArgument, file: "PreprocessConfig", message) }
    guard imageSize > 0, (resizeSize ?? imageSize) > 0 else { throw fail("sizes must be positive") }
    guard mean.count == 3, std.count == 3, std.allSatisfy({ $0 > 0 }) else {
      throw fail("mean and std need 3 values each, std positive")
    }
    try augmentation.validate()
  }
}

/// Turns decoded images into normalized `[3, H, W]` float32 inputs.
///
/// ```swift
/// let preprocessor = try ImagePreprocessor(PreprocessConfig(imageSize: 224))
/// let input = try preprocessor.tensor(preprocessor.evaluationImage(image))   // [3, 224, 224]
/// ```
public struct ImagePreprocessor: Sendable {
  public let config: PreprocessConfig
  // Float32 copies, rounded from the Double config values as torch.as_tensor rounds them.
  private let mean: [Float]
  private let std: [Float]

  public init(_ config: PreprocessConfig = PreprocessConfig()) throws {
    try config.validate()
    self.config = config
    mean = config.mean.map { Float($0) }
    std = config.std.map { Float($0) }
  }

  /// Values per preprocessed image (3 · imageSize²).
  public var elementCount: Int { 3 * config.imageSize * config.imageSize }

  /// Resize the shorter side, then centre crop (torchvision `Resize` + `CenterCrop`).
  public func evaluationImage(_ image: RGBImage) -> RGBImage {
    let size = config.imageSize
    return image.resizedShortestSide(to: config.resizeSize ?? size, filter: config.filter)
      .centerCropped(height: size, width: size)
  }

  /// The augmented view that `augmentationKey` names (the same key gives the same view).
  public func trainingImage(_ image: RGBImage, augmentationKey: UInt64) -> RGBImage {
    let view = config.augmentation.view(forKey: augmentationKey, width: image.width, height: image.height)
    let size = config.imageSize
    var out: RGBImage
    if let box = view.crop {
      let region = image.cropped(top: box.top, left: box.left, height: box.height, width: box.width)
      out = Resampler.resize(region, width: size, height: size, filter: config.filter)
    } else {
      out = evaluationImage(image)
    }
    if view.flipped { out = out.flippedHorizontally() }
    return out
  }

  /// Writes `(pixel / 255 − mean) / std` channel-first into `target` (`elementCount` floats),
  /// in float32 operations as torchvision's `ToTensor` + `Normalize` compute it.
  public func normalize(_ image: RGBImage, into target: UnsafeMutableBufferPointer<Float>) {
    precondition(image.width == config.imageSize && image.height == config.imageSize, "normalize: image is not preprocessed")
    let plane = image.width * image.height
    precondition(target.count >= 3 * plane)
    image.pixels.withUnsafeBufferPointer { src in
      for c in 0..<3 {
        let m = mean[c]
        let s = std[c]
        for p in 0..<plane {
          target[c * plane + p] = (Float(src[p * 3 + c]) / 255 - m) / s
        }
      }
    }
  }

  /// A `[3, imageSize, imageSize]` float32 tensor of a preprocessed image.
  public func tensor(_ image: RGBImage) throws -> Tensor {
    var values = [Float](repeating: 0, count: elementCount)
    values.withUnsafeMutableBufferPointer { normalize(image, into: $0) }
    return try Tensor(values, shape: [3, config.imageSize, config.imageSize])
  }
}

import Data
import Foundation
import TestSupport
import Testing
import Torch

/// CLIP preprocessing against torchvision's transforms on PIL images (the pipeline CLIP and
/// open_clip use): the resampler reproduces PIL's fixed-point arithmetic, so the 8-bit
/// results are expected to be identical, and the normalized tensors within 1/255 per pixel.
@Suite struct PreprocessParityTests {
  static func sourceImage(_ fx: [String: Tensor], _ name: String) throws -> RGBImage {
    let index = try fx["\(name)/source"]!.itemInt()
    let fileName = String(decoding: try fx["names/\(index)"]!.toArray(UInt8.self), as: UTF8.self)
    return try ImageFile.decode(fx["\(fileName)/bytes"]!.toArray(UInt8.self), name: fileName)
  }

  static func pixels(_ t: Tensor) throws -> [UInt8] { try t.toArray(UInt8.self) }

  /// Largest difference in normalized units, divided by the largest the spec allows
  /// (1/255 of a pixel value, which is 1/(255·std) after normalizing).
  static func normalizedExcess(_ actual: Tensor, _ expected: Tensor) throws -> Double {
    let a = try actual.toArray(Float.self)
    let e = try expected.toArray(Float.self)
    let plane = a.count / 3
    var worst = 0.0
    for i in a.indices {
      let limit = 1.0 / (255.0 * PreprocessConfig.clipStd[i / plane])
      worst = max(worst, Double(abs(a[i] - e[i])) / limit)
    }
    return worst
  }

  @Test(arguments: ["shrink", "shrink_tall", "enlarge", "odd_crop", "pad_crop", "bilinear", "clip224"])
  func evaluationTransformMatchesTorchvision(_ name: String) throws {
    let fx = try CodecTests.fixture()
    let params = try fx["\(name)/params"]!.toArray(Int64.self).map(Int.init)
    let image = try Self.sourceImage(fx, name)
    var config = PreprocessConfig(imageSize: params[1], resizeSize: params[0])
    config.filter = params[2] == 0 ? .bicubic : .bilinear
    let preprocessor = try ImagePreprocessor(config)

    if let resized = fx["\(name)/resized"] {
      let ours = image.resizedShortestSide(to: params[0], filter: config.filter)
      #expect([ours.height, ours.width, 3] == resized.shape)
      #expect(ours.pixels == (try Self.pixels(resized)), "\(name): resize differs from PIL")
    }
    let cropped = preprocessor.evaluationImage(image)
    if let expected = fx["\(name)/cropped"] {
      #expect(cropped.pixels == (try Self.pixels(expected)), "\(name): crop differs from torchvision")
    } else {
      let rows = try Self.pixels(fx["\(name)/cropped_rows4"]!)
      let rowLength = cropped.width * 3
      let ours = stride(from: 0, to: cropped.height, by: 4).flatMap { cropped.pixels[$0 * rowLength..<($0 + 1) * rowLength] }
      #expect(ours == rows, "\(name): crop differs from torchvision")
      #expect(cropped.pixels.reduce(0) { $0 + Int($1) } == (try fx["\(name)/cropped_sum"]!.itemInt()))
    }
    if let tensor = fx["\(name)/tensor"] {
      let excess = try Self.normalizedExcess(preprocessor.tensor(cropped), tensor)
      #expect(excess <= 1, "\(name): normalized values differ by \(excess)/255")
    }
  }

  @Test(arguments: ["rrc0", "rrc1"])
  func resizedCropMatchesTorchvision(_ name: String) throws {
    let fx = try CodecTests.fixture()
    let box = try fx["\(name)/box"]!.toArray(Int64.self).map(Int.init)
    let size = try fx["\(name)/params"]!.toArray(Int64.self).map(Int.init)[0]
    let image = try Self.sourceImage(fx, name)
    let region = image.cropped(top: box[0], left: box[1], height: box[2], width: box[3])
    let out = Resampler.resize(region, width: size, height: size)
    #expect(out.pixels == (try Self.pixels(fx["\(name)/cropped"]!)))
    let preprocessor = try ImagePreprocessor(PreprocessConfig(imageSize: size))
    #expect(try Self.normalizedExcess(preprocessor.tensor(out), fx["\(name)/tensor"]!) <= 1)
  }

  @Test func randomResizedCropFollowsItsKey() throws {
    let config = AugmentationConfig(scale: [0.5, 1.0])
    var areas: [Double] = []
    for key in UInt64(0)..<200 {
      let view = config.view(forKey: key, width: 120, height: 80)
      #expect(view == config.view(forKey: key, width: 120, height: 80))
      let box = try #require(view.crop)
      #expect(box.top >= 0 && box.left >= 0 && box.top + box.height <= 80 && box.left + box.width <= 120)
      let ratio = Double(box.width) / Double(box.height)
      #expect(ratio > 0.7 && ratio < 1.4)
      areas.append(Double(box.width * box.height) / 9600)
      #expect(!view.flipped)
    }
    #expect(areas.min()! < 0.6 && areas.max()! > 0.8)
    #expect(config.view(forKey: 1, width: 120, height: 80) != config.view(forKey: 2, width: 120, height: 80))
  }

  @Test func trainingViewIsTheRequestedSize() throws {
    let preprocessor = try ImagePreprocessor(PreprocessConfig(imageSize: 24))
    let view = preprocessor.trainingImage(testImage(width: 50, height: 30), augmentationKey: 9)
    #expect(view.width == 24 && view.height == 24)
    var flipping = PreprocessConfig(imageSize: 24)
    flipping.augmentation = AugmentationConfig(randomResizedCrop: false, horizontalFlip: true)
    let flipper = try ImagePreprocessor(flipping)
    let image = testImage(width: 24, height: 24)
    let outcomes = Set((UInt64(0)..<20).map { flipper.trainingImage(image, augmentationKey: $0) == image.flippedHorizontally() })
    #expect(outcomes == [true, false])
  }

  @Test func configDecodesFromPartialJSON() throws {
    let config = try JSONDecoder().decode(PreprocessConfig.self, from: Data(#"{"image_size": 96}"#.utf8))
    #expect(config.imageSize == 96)
    #expect(config.mean == PreprocessConfig.clipMean)
    #expect(config.augmentation.scale == [0.9, 1.0])
    #expect(config.fingerprint != PreprocessConfig().fingerprint)
    #expect(PreprocessConfig().fingerprint == PreprocessConfig().fingerprint)
    var bad = PreprocessConfig()
    bad.std = [1, 0, 1]
    #expect(dataError { _ = try ImagePreprocessor(bad) }?.kind == .invalidArgument)
  }
}

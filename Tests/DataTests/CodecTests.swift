import Data
import Foundation
import TestSupport
import Testing
import Torch

/// Decoding against PIL (fixtures from scripts/fixtures/data.py) and error cases.
@Suite struct CodecTests {
  static func fixture() throws -> [String: Tensor] { try loadFixture("DataTests", "images") }

  static func bytes(_ name: String) throws -> [UInt8] { try fixture()["\(name)/bytes"]!.toArray(UInt8.self) }

  static func image(_ key: String) throws -> RGBImage {
    let t = try fixture()[key]!
    return RGBImage(width: t.shape[1], height: t.shape[0], pixels: try t.toArray(UInt8.self))
  }

  @Test(arguments: ["jpeg420", "jpeg444", "jpeg_gray", "jpeg_progressive", "png_rgb", "png_rgba", "png_gray", "png_palette"])
  func decodesLikePIL(_ name: String) throws {
    let decoded = try ImageFile.decode(Self.bytes(name), name: name)
    let expected = try Self.image("\(name)/decoded")
    #expect(decoded.width == expected.width && decoded.height == expected.height)
    let worst = zip(decoded.pixels, expected.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
    // Both run libjpeg-turbo's accurate IDCT; PNG is lossless. Allow one level for a
    // different libjpeg-turbo build's rounding, but expect none.
    #expect(worst <= 1, "\(name): max difference \(worst) from PIL")
  }

  @Test func pngRoundTripIsExact() throws {
    let image = testImage(width: 19, height: 7, seed: 3)
    #expect(try PNG.decode(PNG.encode(image)) == image)
  }

  @Test func jpegRoundTripIsClose() throws {
    // Smooth content: JPEG's chroma subsampling is lossy on sharp colour edges by design.
    var pixels: [UInt8] = []
    for p in 0..<(24 * 32) { pixels += [UInt8(p % 32 * 8), UInt8(p / 32 * 10), 128] }
    let image = RGBImage(width: 32, height: 24, pixels: pixels)
    let back = try JPEG.decode(JPEG.encode(image, quality: 95))
    #expect(back.width == 32 && back.height == 24)
    var total = 0
    for (a, b) in zip(back.pixels, image.pixels) { total += abs(Int(a) - Int(b)) }
    #expect(Double(total) / Double(image.pixels.count) < 3)
  }

  @Test func truncatedJPEGIsAnErrorNamingTheFile() throws {
    let full = try JPEG.encode(testImage(width: 64, height: 64), quality: 90)
    let error = dataError { _ = try ImageFile.decode(Array(full.prefix(full.count / 2)), name: "images/0042.jpg") }
    #expect(error?.kind == .undecodableImage)
    #expect(error?.file == "images/0042.jpg")
  }

  @Test func corruptPNGIsAnError() throws {
    var png = try PNG.encode(testImage(width: 16, height: 16))
    for i in 40..<png.count { png[i] ^= 0x5A }
    let error = dataError { _ = try ImageFile.decode(png, name: "x.png") }
    #expect(error?.kind == .undecodableImage)
    #expect(error?.description.hasPrefix("x.png: ") == true)
  }

  @Test func unknownFormatNamesItsFirstBytes() {
    let error = dataError { _ = try ImageFile.decode(Array("<html>".utf8), name: "images/0042.jpg") }
    #expect(error?.description == "images/0042.jpg: not a JPEG or PNG (first bytes 3c 68 74 6d)")
    #expect(dataError { _ = try ImageFile.decode([], name: "e.jpg") }?.message == "empty file")
  }

  @Test func missingFileIsAMissingImage() {
    let error = dataError { _ = try ImageFile.load("/nonexistent/cat.jpg") }
    #expect(error?.kind == .missingImage)
    #expect(error?.description == "/nonexistent/cat.jpg: no such file")
  }
}

/// An 8-bit RGB image in memory: rows top to bottom, pixels interleaved `r, g, b`.
///
/// Every decoder produces this layout (alpha dropped, grey expanded), and every transform
/// works on it, so that resizing runs on the same 8-bit values PIL resizes.
public struct RGBImage: Equatable, Sendable {
  public let width: Int
  public let height: Int
  /// `height * width * 3` bytes, row-major, channels last.
  public var pixels: [UInt8]

  /// An image from existing pixels (`pixels.count` must be `width * height * 3`).
  public init(width: Int, height: Int, pixels: [UInt8]) {
    precondition(
      width >= 0 && height >= 0 && pixels.count == width * height * 3, "RGBImage: \(pixels.count) bytes for \(width)×\(height)")
    self.width = width
    self.height = height
    self.pixels = pixels
  }

  /// A `width`×`height` image filled with one colour.
  public init(width: Int, height: Int, fill: (UInt8, UInt8, UInt8) = (0, 0, 0)) {
    var pixels = [UInt8](repeating: 0, count: width * height * 3)
    for i in stride(from: 0, to: pixels.count, by: 3) {
      pixels[i] = fill.0
      pixels[i + 1] = fill.1
      pixels[i + 2] = fill.2
    }
    self.init(width: width, height: height, pixels: pixels)
  }

  /// The pixel at column `x`, row `y`.
  public subscript(x: Int, y: Int) -> (r: UInt8, g: UInt8, b: UInt8) {
    let i = (y * width + x) * 3
    return (pixels[i], pixels[i + 1], pixels[i + 2])
  }
}

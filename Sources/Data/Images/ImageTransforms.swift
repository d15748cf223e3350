/// Geometric transforms on 8-bit images, each matching its torchvision counterpart on a PIL
/// image (`resize`, `center_crop`, `crop`, `hflip`).
extension RGBImage {
  /// The region `top..<top+height`, `left..<left+width`; parts outside the image are black
  /// (as PIL's `Image.crop`).
  public func cropped(top: Int, left: Int, height: Int, width: Int) -> RGBImage {
    var out = [UInt8](repeating: 0, count: height * width * 3)
    let x0 = max(left, 0)
    let x1 = min(left + width, self.width)
    guard x1 > x0 else { return RGBImage(width: width, height: height, pixels: out) }
    for y in max(top, 0)..<min(top + height, self.height) {
      let src = (y * self.width + x0) * 3
      let dst = ((y - top) * width + (x0 - left)) * 3
      out.replaceSubrange(dst..<dst + (x1 - x0) * 3, with: pixels[src..<src + (x1 - x0) * 3])
    }
    return RGBImage(width: width, height: height, pixels: out)
  }

  /// torchvision's `Resize(size)` with one int: the shorter side becomes `size`, the longer
  /// keeps the aspect ratio (truncated, as torchvision computes it).
  public func resizedShortestSide(to size: Int, filter: ResampleFilter = .bicubic) -> RGBImage {
    let (short, long) = width <= height ? (width, height) : (height, width)
    let newLong = Int(Double(size * long) / Double(short))
    let (w, h) = width <= height ? (size, newLong) : (newLong, size)
    return Resampler.resize(self, width: w, height: h, filter: filter)
  }

  /// torchvision's `CenterCrop`: pads with black when the image is smaller, then takes the
  /// middle, rounding offsets half-to-even as Python's `round` does.
  public func centerCropped(height cropHeight: Int, width cropWidth: Int) -> RGBImage {
    var image = self
    if cropWidth > width || cropHeight > height {
      let padLeft = cropWidth > width ? (cropWidth - width) / 2 : 0
      let padTop = cropHeight > height ? (cropHeight - height) / 2 : 0
      let padRight = cropWidth > width ? (cropWidth - width + 1) / 2 : 0
      let padBottom = cropHeight > height ? (cropHeight - height + 1) / 2 : 0
      image = cropped(top: -padTop, left: -padLeft, height: height + padTop + padBottom, width: width + padLeft + padRight)
      if image.width == cropWidth && image.height == cropHeight { return image }
    }
    let top = Int((Double(image.height - cropHeight) / 2).rounded(.toNearestOrEven))
    let left = Int((Double(image.width - cropWidth) / 2).rounded(.toNearestOrEven))
    return image.cropped(top: top, left: left, height: cropHeight, width: cropWidth)
  }

  /// Mirrored left to right.
  public func flippedHorizontally() -> RGBImage {
    var out = pixels
    for y in 0..<height {
      for x in 0..<width {
        let s = (y * width + x) * 3
        let d = (y * width + (width - 1 - x)) * 3
        out[d] = pixels[s]
        out[d + 1] = pixels[s + 1]
        out[d + 2] = pixels[s + 2]
      }
    }
    return RGBImage(width: width, height: height, pixels: out)
  }
}

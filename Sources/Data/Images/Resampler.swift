/// The resampling filter of a resize.
public enum ResampleFilter: String, Codable, Sendable {
  /// Keys' cubic convolution with a = −0.5 (PIL's `BICUBIC`, CLIP's choice).
  case bicubic
  /// Triangle filter (PIL's `BILINEAR`).
  case bilinear

  /// The filter's half-width at scale 1.
  var support: Double {
    switch self {
    case .bicubic: 2
    case .bilinear: 1
    }
  }

  func weight(_ t: Double) -> Double {
    let x = t < 0 ? -t : t
    switch self {
    case .bicubic:
      let a = -0.5
      if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
      if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
      return 0
    case .bilinear:
      return x < 1 ? 1 - x : 0
    }
  }
}

/// PIL's separable, antialiased resize (`Image.resize` on an 8-bit image), reproduced
/// operation for operation so the output bytes equal PIL's.
///
/// Why PIL rather than LibTorch's `interpolate(bicubic, antialias: true)`: CLIP, open_clip and
/// the torchvision transforms people run on decoded files all resize PIL images, and PIL works
/// in 8-bit fixed point (it rounds after the horizontal pass), which float interpolation only
/// approximates. Integer arithmetic also makes the result identical on every machine.
///
/// Coefficients are computed in binary64 exactly as `precompute_coeffs` does, then scaled to
/// 22-bit fixed point (`normalize_coeffs_8bpc`); each pass accumulates in integers, rounds by
/// adding half and clamps to 0…255.
public enum Resampler {
  /// PIL's `PRECISION_BITS` (32 − 8 − 2): two spare bits for filters' negative lobes.
  static let precisionBits = 22

  /// Per output position: the first input index and the fixed-point weights that follow.
  struct Coefficients {
    /// Maximum taps per output position (the stride of `weights`).
    let taps: Int
    /// `first[i]` is the first input index output `i` reads; `counts[i]` how many it reads.
    let first: [Int]
    let counts: [Int]
    let weights: [Int]
  }

  /// `precompute_coeffs` + `normalize_coeffs_8bpc` for resizing `inSize` → `outSize`.
  static func coefficients(inSize: Int, outSize: Int, filter: ResampleFilter) -> Coefficients {
    let scale = Double(inSize) / Double(outSize)
    let filterScale = max(scale, 1)
    let support = filter.support * filterScale
    let taps = Int(support.rounded(.up)) * 2 + 1
    var first = [Int](repeating: 0, count: outSize)
    var counts = [Int](repeating: 0, count: outSize)
    var weights = [Int](repeating: 0, count: outSize * taps)
    var row = [Double](repeating: 0, count: taps)
    let one = Double(1 << precisionBits)
    for out in 0..<outSize {
      let center = (Double(out) + 0.5) * scale
      let inverse = 1.0 / filterScale
      // C's (int) cast truncates toward zero; Int(_:) does the same.
      let lower = max(Int(center - support + 0.5), 0)
      let upper = min(Int(center + support + 0.5), inSize)
      let count = upper - lower
      var total = 0.0
      for x in 0..<count {
        let w = filter.weight((Double(x + lower) - center + 0.5) * inverse)
        row[x] = w
        total += w
      }
      for x in 0..<count {
        let w = total != 0 ? row[x] / total : row[x]
        weights[out * taps + x] = w < 0 ? Int(-0.5 + w * one) : Int(0.5 + w * one)
      }
      first[out] = lower
      counts[out] = count
    }
    return Coefficients(taps: taps, first: first, counts: counts, weights: weights)
  }

  /// Resizes to `width`×`height`. A no-op when the size does not change (as in PIL).
  public static func resize(_ image: RGBImage, width: Int, height: Int, filter: ResampleFilter = .bicubic) -> RGBImage {
    precondition(width > 0 && height > 0, "resize to \(width)×\(height)")
    if width == image.width && height == image.height { return image }
    let vertical = coefficients(inSize: image.height, outSize: height, filter: filter)
    var source = image.pixels
    var sourceWidth = image.width
    var rowOffset = 0
    if width != image.width {
      // Only the rows the vertical pass reads are resampled horizontally (as PIL does).
      let firstRow = vertical.first[0]
      let lastRow = vertical.first[height - 1] + vertical.counts[height - 1]
      let horizontal = coefficients(inSize: image.width, outSize: width, filter: filter)
      source = horizontalPass(image.pixels, inWidth: image.width, rows: firstRow..<lastRow, horizontal)
      sourceWidth = width
      rowOffset = firstRow
    }
    if height == image.height { return RGBImage(width: width, height: height, pixels: source) }
    let pixels = verticalPass(source, width: sourceWidth, rowOffset: rowOffset, outHeight: height, vertical)
    return RGBImage(width: width, height: height, pixels: pixels)
  }

  @inline(__always)
  private static func clip8(_ sum: Int32) -> UInt8 {
    let v = sum >> Int32(precisionBits)
    return v < 0 ? 0 : v > 255 ? 255 : UInt8(truncatingIfNeeded: v)
  }

  // The passes accumulate in Int32 with wrapping operators, as PIL's C does in `int`: the
  // 22-bit precision leaves room for 8-bit values times weights, so nothing wraps, and
  // unchecked arithmetic lets the compiler vectorize the loops.

  private static func horizontalPass(_ input: [UInt8], inWidth: Int, rows: Range<Int>, _ c: Coefficients) -> [UInt8] {
    let outWidth = c.first.count
    let half = Int32(1 << (precisionBits - 1))
    let weights = c.weights.map { Int32($0) }
    var output = [UInt8](repeating: 0, count: rows.count * outWidth * 3)
    input.withUnsafeBufferPointer { src in
      weights.withUnsafeBufferPointer { k in
        output.withUnsafeMutableBufferPointer { dst in
          for (outRow, y) in rows.enumerated() {
            let rowBase = y * inWidth * 3
            for xx in 0..<outWidth {
              var r = half
              var g = half
              var b = half
              var p = rowBase + c.first[xx] * 3
              let kBase = xx * c.taps
              for t in 0..<c.counts[xx] {
                let w = k[kBase + t]
                r = r &+ Int32(src[p]) &* w
                g = g &+ Int32(src[p + 1]) &* w
                b = b &+ Int32(src[p + 2]) &* w
                p += 3
              }
              let o = (outRow * outWidth + xx) * 3
              dst[o] = clip8(r)
              dst[o + 1] = clip8(g)
              dst[o + 2] = clip8(b)
            }
          }
        }
      }
    }
    return output
  }

  private static func verticalPass(_ input: [UInt8], width: Int, rowOffset: Int, outHeight: Int, _ c: Coefficients) -> [UInt8] {
    let half = Int32(1 << (precisionBits - 1))
    let rowLength = width * 3
    var output = [UInt8](repeating: 0, count: outHeight * rowLength)
    var sums = [Int32](repeating: 0, count: rowLength)
    input.withUnsafeBufferPointer { src in
      output.withUnsafeMutableBufferPointer { dst in
        sums.withUnsafeMutableBufferPointer { sums in
          for yy in 0..<outHeight {
            for i in 0..<rowLength { sums[i] = half }
            let firstRow = c.first[yy] - rowOffset
            for t in 0..<c.counts[yy] {
              let w = Int32(c.weights[yy * c.taps + t])
              let row = UnsafeBufferPointer(rebasing: src[(firstRow + t) * rowLength..<(firstRow + t + 1) * rowLength])
              // Row-at-a-time accumulation: the same sums as PIL's per-pixel loop, in cache order.
              for i in 0..<rowLength { sums[i] = sums[i] &+ Int32(row[i]) &* w }
            }
            let o = yy * rowLength
            for i in 0..<rowLength { dst[o + i] = clip8(sums[i]) }
          }
        }
      }
    }
    return output
  }
}

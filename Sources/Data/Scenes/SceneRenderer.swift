/// Rasterises scenes with integer arithmetic only: 4×4 samples per pixel, exact inside-tests,
/// integer blending. The same scene and size give the same bytes everywhere.
///
/// ```swift
/// let image = SceneRenderer.render(scene, size: 64)
/// ```
public enum SceneRenderer {
  /// Samples per pixel along each axis.
  static let samples = 4
  /// Geometry is in 1/`unit` pixel, so the sample centres (1/8, 3/8, 5/8, 7/8) are integers.
  static let unit = 2 * samples

  /// Radius of an object in geometry units: about 0.13 (large) or 0.08 (small) of the side.
  static func radius(_ object: SceneObject, size: Int) -> Int {
    let nominal = size * unit * (object.size == .large ? 13 : 8) / 100
    return nominal * object.radiusPermille / 1000
  }

  /// Centre of an object in geometry units: its cell's centre plus its jitter, scaled by
  /// `jitterPermille` (1000: the whole room in the cell).
  static func center(_ object: SceneObject, size: Int, jitterPermille: Int = 1000) -> (x: Int, y: Int) {
    let cell = size * unit / 3
    let reach = radius(object, size: size) * ShapeGeometry.extentPermille / 1000
    // Keep half a pixel between the outline and the cell border.
    let room = max(0, cell / 2 - reach - unit / 2) * jitterPermille / 1000
    return (
      object.cell.column * cell + cell / 2 + object.slackX * room / 1000,
      object.cell.row * cell + cell / 2 + object.slackY * room / 1000
    )
  }

  /// Period of stripes and dots in geometry units: 1/16 of the side (4 px at 64 px), never
  /// under 2 px — fine detail that a 4× downsample averages away.
  static func patternPeriod(size: Int) -> Int { max(2, size / 16) * unit }

  public static func render(_ scene: Scene, size: Int, jitterPermille: Int = 1000) -> RGBImage {
    var pixels = background(scene.background, size: size)
    for object in scene.objects { draw(object, size: size, jitterPermille: jitterPermille, into: &pixels) }
    return RGBImage(width: size, height: size, pixels: pixels)
  }

  private static func background(_ bg: SceneBackground, size: Int) -> [UInt8] {
    var pixels = [UInt8](repeating: 0, count: size * size * 3)
    let span = max(1, size - 1)
    let tile = max(1, size / 4)
    let base = (bg.base[0], bg.base[1], bg.base[2])
    let step = (bg.second[0] - base.0, bg.second[1] - base.1, bg.second[2] - base.2)
    let noiseKey = SplitMix64.mix(bg.noiseSeed)
    pixels.withUnsafeMutableBufferPointer { out in
      for y in 0..<size {
        for x in 0..<size {
          var shift = 0
          var t = 0  // gradient position, 0…1000
          switch bg.kind {
          case .flat: break
          case .verticalGradient: t = y * 1000 / span
          case .horizontalGradient: t = x * 1000 / span
          case .diagonalGradient: t = (x + y) * 1000 / (2 * span)
          case .noise: shift = Int(SplitMix64.mix(noiseKey ^ UInt64(y * size + x)) % 13) - 6
          case .checker: shift = (x / tile + y / tile) % 2 == 0 ? 8 : -8
          }
          let o = (y * size + x) * 3
          out[o] = UInt8(clamping: base.0 + step.0 * t / 1000 + shift)
          out[o + 1] = UInt8(clamping: base.1 + step.1 * t / 1000 + shift)
          out[o + 2] = UInt8(clamping: base.2 + step.2 * t / 1000 + shift)
        }
      }
    }
    return pixels
  }

  private static func draw(_ object: SceneObject, size: Int, jitterPermille: Int, into pixels: inout [UInt8]) {
    let (nr, ng, nb) = object.color.rgb
    let body = (
      clamp255(nr + object.colorJitter[0]), clamp255(ng + object.colorJitter[1]), clamp255(nb + object.colorJitter[2])
    )
    // Stripes and dots: lighter on dark colours, darker on light ones, so they always show.
    let luma = (299 * body.0 + 587 * body.1 + 114 * body.2) / 1000
    let shade = { (c: Int) in luma < 90 ? c + (255 - c) * 50 / 100 : c * 55 / 100 }
    let detail = (shade(body.0), shade(body.1), shade(body.2))
    let r = radius(object, size: size)
    let (cx, cy) = center(object, size: size, jitterPermille: jitterPermille)
    let reach = r * ShapeGeometry.extentPermille / 1000 + unit
    let period = patternPeriod(size: size)
    let dotRadius = period * 3 / 10
    let x0 = max(0, (cx - reach) / unit)
    let x1 = min(size - 1, (cx + reach) / unit)
    let y0 = max(0, (cy - reach) / unit)
    let y1 = min(size - 1, (cy + reach) / unit)
    guard x0 <= x1, y0 <= y1 else { return }
    let total = samples * samples
    let outline = ShapeGeometry.Outline(object.shape, radius: r)
    for py in y0...y1 {
      for px in x0...x1 {
        var covered = 0
        var sum = (0, 0, 0)
        for sy in 0..<samples {
          for sx in 0..<samples {
            let dx = px * unit + 2 * sx + 1 - cx
            let dy = py * unit + 2 * sy + 1 - cy
            guard outline.contains(dx: dx, dy: dy) else { continue }
            covered += 1
            let patterned: Bool
            switch object.fill {
            case .solid: patterned = false
            case .striped: patterned = floorMod(dx + dy, period) < period / 2
            case .dotted:
              let mx = floorMod(dx, period) - period / 2
              let my = floorMod(dy, period) - period / 2
              patterned = mx * mx + my * my <= dotRadius * dotRadius
            }
            let colour = patterned ? detail : body
            sum = (sum.0 + colour.0, sum.1 + colour.1, sum.2 + colour.2)
          }
        }
        guard covered > 0 else { continue }
        let o = (py * size + px) * 3
        let keep = total - covered
        pixels[o] = UInt8((Int(pixels[o]) * keep + sum.0 + total / 2) / total)
        pixels[o + 1] = UInt8((Int(pixels[o + 1]) * keep + sum.1 + total / 2) / total)
        pixels[o + 2] = UInt8((Int(pixels[o + 2]) * keep + sum.2 + total / 2) / total)
      }
    }
  }

  private static func clamp255(_ v: Int) -> Int { min(255, max(0, v)) }

  private static func floorMod(_ a: Int, _ m: Int) -> Int {
    let r = a % m
    return r < 0 ? r + m : r
  }
}

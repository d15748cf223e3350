import Models
import Torch
import TorchNN

/// The vision pyramid P2–P5 of one batch.
public struct VisionLevels {
  /// Spatial levels P2, P3, P4: [B, D, h, w] at the sizes of the configured ladder
  /// (`PyramidConfig.levelSizes`).
  public var maps: [Tensor]
  /// P5, the global level: [B, D].
  public var global: Tensor

  public init(maps: [Tensor], global: Tensor) {
    self.maps = maps
    self.global = global
  }

  /// Level `i` (0…3) as the loss sees it: maps for 0–2, the global vector for 3.
  public subscript(_ level: Level) -> Tensor { level == .global ? global : maps[level.rawValue] }
}

/// Parameter-free extraction of P2–P5 from a ViT's hidden states (the teacher side, so
/// targets are fixed and cacheable; the student side runs the same code, then adapters).
///
/// P2, P3, P4 are the patch tokens of the first three taps laid out on the patch grid, then
/// sized by the ladder: `native` keeps P2 on the grid and pools P3, P4 to ⌈g/2⌉, ⌈g/4⌉ (ViTs
/// have one resolution; pooling the deeper taps gives the halving ladder, as ViTDet does);
/// `seed` upsamples P2, P3 bilinearly to `p2Scale`× and `p3Scale`× the grid. P5 is the mean of
/// the fourth tap's class token and the global average of its patch tokens.
public enum VisionPyramid {
  /// Hidden states at the taps (what the teacher cache stores): 4 tensors [B, 1 + N, D].
  public static func taps(_ output: VisionOutput, config: PyramidConfig) throws -> [Tensor] {
    let depth = output.states.count - 1
    return try config.taps(config.visionTaps, depth: depth, tower: "vision").map { try output.states.layer($0) }
  }

  /// The parameter-free summary the levels are built from (and what a cache stores): the
  /// first three taps' patch maps on the native grid [B, D, gh, gw] and P5 [B, D].
  public static func compact(taps: [Tensor], grid: (height: Int, width: Int)) throws -> (maps: [Tensor], global: Tensor) {
    guard taps.count == 4 else { throw PyramidError("vision pyramid needs 4 taps, got \(taps.count)") }
    let maps = try taps[0..<3].map { state in
      let (b, d) = (state.size(0), state.size(2))
      return try state.narrow(dim: 1, start: 1, length: grid.height * grid.width)  // [B, N, D]
        .transpose(1, 2).reshape([b, d, grid.height, grid.width])  // [B, D, gh, gw]
    }
    let last = taps[3]
    let cls = try last.select(dim: 1, index: 0)  // [B, D]
    let meanPatch = try last.narrow(dim: 1, start: 1, length: last.size(1) - 1).mean(dim: 1)
    return (maps, try (cls + meanPatch) * 0.5)
  }

  /// Expands a compact summary into P2–P5 at the ladder's sizes for `targetGrid` (the
  /// teacher's grid): a larger map is average-pooled (adaptive, as a CNN pyramid would
  /// stride), a smaller one upsampled bilinearly; a map already at its size is used as is.
  public static func expand(maps: [Tensor], global: Tensor, targetGrid: (height: Int, width: Int), config: PyramidConfig) throws
    -> VisionLevels
  {
    let levels = try zip(maps, config.levelSizes(grid: targetGrid)).map { map, size in
      try resize(map, to: size)
    }
    return VisionLevels(maps: levels, global: global)
  }

  /// [B, D, h, w] → [B, D, size]: adaptive average pooling down, bilinear up.
  static func resize(_ map: Tensor, to size: (Int, Int)) throws -> Tensor {
    let (h, w) = (map.size(2), map.size(3))
    if (h, w) == size { return map }
    if size.0 <= h && size.1 <= w { return try Functional.adaptiveAvgPool2d(channelsLast(map), outputSize: size) }
    return try Functional.interpolate(map, size: size, mode: .bilinear)
  }

  /// `map` [B, D, h, w] with the channels innermost in memory (a copy only when they are not).
  /// ATen's CPU adaptive average pooling of an NCHW-contiguous map takes a path about 15× slower
  /// than on the same map laid out channels-last (3×3 → 2×2 at [64, 128]: 205 against 12 µs,
  /// torch 2.11, 2 threads). A map made from a tap is channels-last already (a view of [B, N, D]
  /// tokens); a teacher map read from the cache is not.
  static func channelsLast(_ map: Tensor) throws -> Tensor {
    if map.strides[1] == 1 { return map }
    return try map.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
  }

  /// Builds the levels from the four tap states.
  /// - Parameters:
  ///   - taps: 4 tensors [B, 1 + gh·gw, D] (class token first).
  ///   - grid: the patch grid of these states.
  ///   - targetGrid: the P4 grid to produce (the teacher's); nil = `grid`.
  public static func levels(
    taps: [Tensor], grid: (height: Int, width: Int), targetGrid: (height: Int, width: Int)? = nil, config: PyramidConfig
  ) throws -> VisionLevels {
    let (maps, global) = try compact(taps: taps, grid: grid)
    return try expand(maps: maps, global: global, targetGrid: targetGrid ?? grid, config: config)
  }
}

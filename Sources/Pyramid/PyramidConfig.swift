import Torch

/// Which layers feed which pyramid level, and the shape choices of the levels.
///
/// Depth is split into quarters by default: with L layers the taps are after layers
/// L/4, L/2, 3L/4 and L (rounded, at least 1), feeding P2, P3, P4, P5 (vision) and
/// L1, L2, L3, L4 (language). Hidden state 0 (the embeddings) is never a tap.
public struct PyramidConfig: Codable, Equatable, Sendable {
  /// Explicit vision taps (1-based layer numbers for P2…P5); nil = quarters of the depth.
  public var visionTaps: [Int]?
  /// Explicit language taps (1-based layer numbers for L1…L4); nil = quarters.
  public var languageTaps: [Int]?
  /// Tokens per phrase window at L2.
  public var phraseWindow: Int = 3
  /// The resolutions of P2–P4 (SPEC §3): `native` halves down from the ViT's own grid,
  /// `seed` upsamples the shallow maps to 4× and 2× the grid.
  public var ladder: PyramidLadder = .native
  /// `seed` ladder only: P2 and P3 are the shallow and middle maps upsampled by these factors.
  public var p2Scale: Int = 4
  public var p3Scale: Int = 2
  /// The student's level adapters (`linear` or `mlp`, `AdapterKind`).
  public var adapter: AdapterKind = .linear

  enum CodingKeys: String, CodingKey {
    case visionTaps = "vision_taps", languageTaps = "language_taps", phraseWindow = "phrase_window", ladder
    case p2Scale = "p2_scale", p3Scale = "p3_scale", adapter
  }

  public init(
    visionTaps: [Int]? = nil, languageTaps: [Int]? = nil, phraseWindow: Int = 3, ladder: PyramidLadder = .native,
    p2Scale: Int = 4, p3Scale: Int = 2, adapter: AdapterKind = .linear
  ) {
    self.visionTaps = visionTaps
    self.languageTaps = languageTaps
    self.phraseWindow = phraseWindow
    self.ladder = ladder
    self.p2Scale = p2Scale
    self.p3Scale = p3Scale
    self.adapter = adapter
  }

  /// The (height, width) of P2, P3, P4 for a teacher patch grid.
  public func levelSizes(grid: (height: Int, width: Int)) -> [(Int, Int)] {
    switch ladder {
    case .native:
      // g, ⌈g/2⌉, ⌈g/4⌉: ViT-B/16 at 224 px gives 14, 7, 4.
      return [1, 2, 4].map { f in ((grid.height + f - 1) / f, (grid.width + f - 1) / f) }
    case .seed:
      return [p2Scale, p3Scale, 1].map { s in (grid.height * s, grid.width * s) }
    }
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    visionTaps = try c.decodeIfPresent([Int].self, forKey: .visionTaps)
    languageTaps = try c.decodeIfPresent([Int].self, forKey: .languageTaps)
    phraseWindow = try c.decode(.phraseWindow, default: 3)
    ladder = try c.decode(.ladder, default: .native)
    p2Scale = try c.decode(.p2Scale, default: 4)
    p3Scale = try c.decode(.p3Scale, default: 2)
    adapter = try c.decode(.adapter, default: .linear)
  }

  /// Quarter-depth taps for a tower of `depth` layers.
  public static func quarterTaps(depth: Int) -> [Int] {
    (1...4).map { q in max(1, Int((Double(depth * q) / 4).rounded())) }
  }

  /// The taps for a tower of `depth` layers, validated.
  public func taps(_ explicit: [Int]?, depth: Int, tower: String) throws -> [Int] {
    let taps = explicit ?? PyramidConfig.quarterTaps(depth: depth)
    guard taps.count == 4, taps.allSatisfy({ (1...depth).contains($0) }) else {
      throw PyramidError("\(tower) taps \(taps) must be 4 layer numbers in 1…\(depth)")
    }
    return taps
  }
}

/// How the vision pyramid's spatial levels are sized (SPEC §3).
public enum PyramidLadder: String, Codable, Sendable, CaseIterable {
  /// P2 = the shallow tap on the ViT's grid g, P3 = the middle tap pooled to ⌈g/2⌉, P4 = the
  /// deep tap pooled to ⌈g/4⌉: the halving ladder, placed where a ViT has information.
  case native
  /// The seed's literal sizes: P2 = 4g, P3 = 2g (bilinear upsampling), P4 = g. An upsampled
  /// map carries no more information than the native one and costs the student's 3×3
  /// adapters 16× and 4× the work; kept as an ablation.
  case seed
}

/// A pyramid configuration or input that cannot work, with what to change.
public struct PyramidError: Error, CustomStringConvertible, Equatable {
  public let description: String
  public init(_ description: String) { self.description = description }
}

/// The four levels of each pyramid, coarse to fine in the order the progressive schedule
/// turns them on: index 3 is P5/L4 (global), 0 is P2/L1 (finest).
public enum Level: Int, CaseIterable, Codable, Sendable {
  case fine = 0, middle = 1, deep = 2, global = 3

  public var visionName: String { ["P2", "P3", "P4", "P5"][rawValue] }
  public var languageName: String { ["L1", "L2", "L3", "L4"][rawValue] }
}

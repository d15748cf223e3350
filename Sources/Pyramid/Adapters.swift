import Torch
import TorchNN

// Student-side adapters, student width → teacher width (FitNet-style), one per level.
// Each is "conv 3×3 (or Linear) + norm + GELU" as the method describes, followed by a linear
// output layer: an adapter that ended in GELU could never produce the negative values teacher
// features take, and the regression target would be out of reach.

/// A spatial level: conv 3×3 + GroupNorm + GELU + conv 1×1.
public final class SpatialAdapter: Module {
  public let conv: Conv2d
  public let norm: GroupNorm
  public let out: Conv2d

  public init(from inChannels: Int, to outChannels: Int) throws {
    conv = try Conv2d(inChannels, outChannels, kernel: (3, 3), padding: (1, 1))
    norm = try GroupNorm(groups: SpatialAdapter.groups(outChannels), channels: outChannels)
    out = try Conv2d(outChannels, outChannels, kernel: (1, 1))
    super.init()
  }

  /// [B, Cin, H, W] → [B, Cout, H, W]
  public func callAsFunction(_ x: Tensor) throws -> Tensor { try out(norm(conv(x)).gelu()) }

  /// Up to 32 groups that divide the channels.
  static func groups(_ channels: Int) -> Int { (1...min(32, channels)).last { channels % $0 == 0 } ?? 1 }
}

/// A vector or sequence level: Linear + LayerNorm + GELU + Linear, on the last dimension.
public final class VectorAdapter: Module {
  public let proj: Linear
  public let norm: LayerNorm
  public let out: Linear

  public init(from inFeatures: Int, to outFeatures: Int) throws {
    proj = try Linear(inFeatures, outFeatures)
    norm = try LayerNorm(outFeatures)
    out = try Linear(outFeatures, outFeatures)
    super.init()
  }

  /// [..., Din] → [..., Dout]
  public func callAsFunction(_ x: Tensor) throws -> Tensor { try out(norm(proj(x)).gelu()) }
}

/// The student's pyramid: the same parameter-free extraction as the teacher's, then one
/// adapter per level into the teacher's widths and resolutions.
public final class StudentPyramid: Module {
  public let p2: SpatialAdapter
  public let p3: SpatialAdapter
  public let p4: SpatialAdapter
  public let p5: VectorAdapter
  public let l1: VectorAdapter
  public let l2: VectorAdapter
  public let l3: VectorAdapter
  public let l4: VectorAdapter

  /// - Parameters:
  ///   - studentWidths: (vision, text) hidden sizes of the student towers.
  ///   - teacherWidths: (vision, text) hidden sizes of the teacher towers.
  public init(studentWidths: (vision: Int, text: Int), teacherWidths: (vision: Int, text: Int)) throws {
    let (sv, st, tv, tt) = (studentWidths.vision, studentWidths.text, teacherWidths.vision, teacherWidths.text)
    p2 = try SpatialAdapter(from: sv, to: tv)
    p3 = try SpatialAdapter(from: sv, to: tv)
    p4 = try SpatialAdapter(from: sv, to: tv)
    p5 = try VectorAdapter(from: sv, to: tv)
    l1 = try VectorAdapter(from: st, to: tt)
    l2 = try VectorAdapter(from: st, to: tt)
    l3 = try VectorAdapter(from: st, to: tt)
    l4 = try VectorAdapter(from: st, to: tt)
    super.init()
  }

  /// Adapts the student's raw levels (already at the teacher's resolutions). Only the levels
  /// in `visionLevels` / `languageLevels` run their adapter; the others keep the raw
  /// (student-width) tensor, which no loss may read (a shape error if one does).
  public func adapt(
    vision: VisionLevels, language: LanguageLevels, visionLevels: Set<Level> = Set(Level.allCases),
    languageLevels: Set<Level> = Set(Level.allCases)
  ) throws -> (VisionLevels, LanguageLevels) {
    let spatial = [p2, p3, p4]
    let maps = try (0..<3).map { i in
      visionLevels.contains(Level(rawValue: i)!) ? try spatial[i](vision.maps[i]) : vision.maps[i]
    }
    let v = VisionLevels(maps: maps, global: visionLevels.contains(.global) ? try p5(vision.global) : vision.global)
    var l = language
    // Re-mask after the adapter: its bias would otherwise give padded positions a value.
    if languageLevels.contains(.fine) { l.tokens = try l1(language.tokens) * language.tokenMask.unsqueeze(2) }
    if languageLevels.contains(.middle) { l.phrases = try l2(language.phrases) * language.phraseMask.unsqueeze(2) }
    if languageLevels.contains(.deep) { l.sentence = try l3(language.sentence) }
    if languageLevels.contains(.global) { l.global = try l4(language.global) }
    return (v, l)
  }
}

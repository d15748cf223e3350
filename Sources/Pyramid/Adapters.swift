import Torch
import TorchNN

// Student-side adapters, student width → teacher width (FitNet-style), one per level, of one of
// two kinds (`AdapterKind`): one linear map over channels (the default), or "conv 3×3 (or
// Linear) + norm + GELU" followed by a linear output layer (an adapter that ended in GELU could
// never produce the negative values teacher features take).

/// What a level's adapter is (`pyramid.adapter`).
public enum AdapterKind: String, Codable, Sendable, CaseIterable {
  /// One linear map from the student's width to the teacher's per position (a 1×1 conv on the
  /// maps): FitNets' regressor, what CLIP-KD's feature distillation uses. The default: on the
  /// demo's validation split it matches `mlp` (65.17 ± 0.06 against 65.21 ± 0.37, seeds 0–2)
  /// at about two thirds of the cached step's time (docs/method.md).
  case linear
  /// conv 3×3 + GroupNorm + GELU + conv 1×1 on the maps, Linear + LayerNorm + GELU + Linear on
  /// vectors and sequences (the default until session 13; the ablation `mlp_adapters`).
  case mlp
}

/// A level's adapter: [B, Cin, H, W] → [B, Cout, H, W] for P2–P4, [..., Din] → [..., Dout] for
/// the others.
public protocol LevelAdapter: Module {
  func callAsFunction(_ x: Tensor) throws -> Tensor
  /// The adapter on a sequence x [B, T, D] with mask [B, T] (1 real, 0 padding): padded
  /// positions 0, which the adapter's bias would otherwise give a value.
  func onSequence(_ x: Tensor, mask: Tensor) throws -> Tensor
}

extension LevelAdapter {
  /// Every position through the adapter, the padding masked after it.
  public func onSequence(_ x: Tensor, mask: Tensor) throws -> Tensor { try self(x) * mask.unsqueeze(2) }
}

/// One linear map over channels: on a map [B, Cin, H, W] per position (a 1×1 conv), on a vector
/// or sequence [..., Din] on the last dimension.
public final class LinearAdapter: Module, LevelAdapter {
  public let proj: Linear
  /// Whether inputs are maps with channels in dimension 1.
  let spatial: Bool

  public init(from inFeatures: Int, to outFeatures: Int, spatial: Bool) throws {
    proj = try Linear(inFeatures, outFeatures)
    self.spatial = spatial
    super.init()
  }

  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    guard spatial else { return try proj(x) }
    return try proj(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
  }
}

/// A spatial level: conv 3×3 + GroupNorm + GELU + conv 1×1.
public final class SpatialAdapter: Module, LevelAdapter {
  public let conv: Conv2d
  public let norm: GroupNorm
  public let out: Conv2d

  public init(from inChannels: Int, to outChannels: Int) throws {
    conv = try Conv2d(inChannels, outChannels, kernel: (3, 3), padding: (1, 1))
    norm = try GroupNorm(groups: SpatialAdapter.groups(outChannels), channels: outChannels)
    out = try Conv2d(outChannels, outChannels, kernel: (1, 1))
    super.init()
  }

  /// [B, Cin, H, W] → [B, Cout, H, W]: `out(gelu(norm(conv(x))))`, with two cheaper routes to the
  /// same values at the small maps of a ViT's pyramid (ATen's convolutions cost most of a spatial
  /// adapter there): the 1×1 convolution as a matrix product over channels, and on a 1×1 map the
  /// zero-padded 3×3 convolution as a matrix product with its centre tap, the only one it sees.
  public func callAsFunction(_ x: Tensor) throws -> Tensor {
    let (b, h, w) = (x.size(0), x.size(2), x.size(3))
    let hidden: Tensor
    if h == 1, w == 1, conv.padding == (1, 1), conv.stride == (1, 1) {
      let centre = try conv.weight.select(dim: 3, index: 1).select(dim: 2, index: 1)  // [Cout, Cin]
      hidden = try Functional.linear(x.reshape([b, -1]), weight: centre, bias: conv.bias).reshape([b, -1, 1, 1])
    } else {
      hidden = try conv(x)
    }
    let activated = try norm(hidden).gelu().permute([0, 2, 3, 1])  // [B, H, W, C]
    let weight = try out.weight.reshape([out.weight.size(0), out.weight.size(1)])
    return try Functional.linear(activated, weight: weight, bias: out.bias).permute([0, 3, 1, 2])
  }

  /// Up to 32 groups that divide the channels.
  static func groups(_ channels: Int) -> Int { (1...min(32, channels)).last { channels % $0 == 0 } ?? 1 }
}

/// A vector or sequence level: Linear + LayerNorm + GELU + Linear, on the last dimension.
public final class VectorAdapter: Module, LevelAdapter {
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

  /// On the real positions only (`StudentPyramid.onRealPositions`): a linear adapter costs less
  /// than the gathering, this one more.
  public func onSequence(_ x: Tensor, mask: Tensor) throws -> Tensor { try StudentPyramid.onRealPositions(self, x, mask: mask) }
}

/// The student's pyramid: the same parameter-free extraction as the teacher's, then one
/// adapter per level into the teacher's widths and resolutions.
public final class StudentPyramid: Module {
  public let p2: any LevelAdapter
  public let p3: any LevelAdapter
  public let p4: any LevelAdapter
  public let p5: any LevelAdapter
  public let l1: any LevelAdapter
  public let l2: any LevelAdapter
  public let l3: any LevelAdapter
  public let l4: any LevelAdapter

  /// - Parameters:
  ///   - studentWidths: (vision, text) hidden sizes of the student towers.
  ///   - teacherWidths: (vision, text) hidden sizes of the teacher towers.
  ///   - kind: the adapters' kind (`pyramid.adapter`).
  public init(
    studentWidths: (vision: Int, text: Int), teacherWidths: (vision: Int, text: Int), kind: AdapterKind = .linear
  ) throws {
    let (sv, st, tv, tt) = (studentWidths.vision, studentWidths.text, teacherWidths.vision, teacherWidths.text)
    func spatial() throws -> any LevelAdapter {
      kind == .mlp ? try SpatialAdapter(from: sv, to: tv) : try LinearAdapter(from: sv, to: tv, spatial: true)
    }
    func vector(_ din: Int, _ dout: Int) throws -> any LevelAdapter {
      kind == .mlp ? try VectorAdapter(from: din, to: dout) : try LinearAdapter(from: din, to: dout, spatial: false)
    }
    p2 = try spatial()
    p3 = try spatial()
    p4 = try spatial()
    p5 = try vector(sv, tv)
    l1 = try vector(st, tt)
    l2 = try vector(st, tt)
    l3 = try vector(st, tt)
    l4 = try vector(st, tt)
    super.init()
  }

  /// Adapts the student's raw levels (already at the teacher's resolutions). Only the levels
  /// in `visionLevels` / `languageLevels` run their adapter; the others keep the raw
  /// (student-width) tensor, which no loss may read (a shape error if one does).
  ///   - zeroPadding: whether padded positions of L1 and L2 come out 0; false leaves a linear
  ///     adapter's output there as it is, for callers that mask them anyway (CMAPKD's losses and
  ///     bridges do): one multiply and its backward fewer per sequence level.
  public func adapt(
    vision: VisionLevels, language: LanguageLevels, visionLevels: Set<Level> = Set(Level.allCases),
    languageLevels: Set<Level> = Set(Level.allCases), zeroPadding: Bool = true
  ) throws -> (VisionLevels, LanguageLevels) {
    func sequence(_ adapter: any LevelAdapter, _ x: Tensor, mask: Tensor) throws -> Tensor {
      !zeroPadding && adapter is LinearAdapter ? try adapter(x) : try adapter.onSequence(x, mask: mask)
    }
    let spatial = [p2, p3, p4]
    let maps = try (0..<3).map { i in
      visionLevels.contains(Level(rawValue: i)!) ? try spatial[i](vision.maps[i]) : vision.maps[i]
    }
    let v = VisionLevels(maps: maps, global: visionLevels.contains(.global) ? try p5(vision.global) : vision.global)
    var l = language
    if languageLevels.contains(.fine) { l.tokens = try sequence(l1, language.tokens, mask: language.tokenMask) }
    if languageLevels.contains(.middle) { l.phrases = try sequence(l2, language.phrases, mask: language.phraseMask) }
    if languageLevels.contains(.deep) { l.sentence = try l3(language.sentence) }
    if languageLevels.contains(.global) { l.global = try l4(language.global) }
    return (v, l)
  }

  /// `adapter` on the real positions of x [B, T, D] (mask [B, T]: 1 real, 0 padding):
  /// [B, T, D'] holding adapter(x) · mask, padded positions 0 (the adapter's bias would
  /// otherwise give them a value). On CPU only the real positions go through the adapter: the
  /// token and phrase levels are the costliest adapters of a step, and most of a batch of short
  /// captions is padding. On other devices counting the real positions would wait for the
  /// device, so every position is computed and masked.
  public static func onRealPositions(_ adapter: VectorAdapter, _ x: Tensor, mask: Tensor) throws -> Tensor {
    guard x.device == .cpu else { return try adapter(x) * mask.unsqueeze(2) }
    let (b, t) = (x.size(0), x.size(1))
    // Whole rows of the flattened [B·T, D] tensor, gathered and put back by index: far cheaper
    // than element masks (masked_select / masked_scatter test every element of every row).
    let rows = try mask.reshape([b * t]).gt(0.5).nonzero().squeeze(1)  // [N]
    let adapted = try adapter(x.reshape([b * t, x.size(2)]).indexSelect(dim: 0, index: rows))  // [N, D']
    let zeros = try Tensor.zeros([b * t, adapted.size(1)], dtype: adapted.dtype, device: x.device)
    return try zeros.indexCopy(dim: 0, index: rows, source: adapted).reshape([b, t, adapted.size(1)])
  }
}

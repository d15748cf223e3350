import Models
import Torch
import TorchNN

/// Pools a level to one vector per sample: spatial maps by global average, sequences by
/// masked mean, vectors unchanged.
public func levelVector(_ features: Tensor, mask: Tensor? = nil) throws -> Tensor {
  switch features.rank {
  case 4: return try features.mean(dims: [2, 3])  // [B, D, h, w] → [B, D]
  case 3:
    return try LanguageHierarchy.maskedMean(
      features, mask: mask ?? Tensor.ones([features.size(0), features.size(1)], dtype: features.dtype, device: features.device))
  default: return features
  }
}

/// Norm + linear map of one level into the shared space.
public final class BridgeProjector: Module {
  public let norm: LayerNorm
  public let proj: Linear

  public init(width: Int, sharedWidth: Int, eps: Double = 1e-5) throws {
    norm = try LayerNorm(width, eps: eps)
    proj = try Linear(width, sharedWidth, bias: false)
    super.init()
  }

  /// Starts as a copy of a frozen tower's own norm and projection.
  public convenience init(copying norm: LayerNorm, _ projection: Linear) throws {
    try self.init(width: projection.inFeatures, sharedWidth: projection.outFeatures, eps: norm.eps)
    try Torch.noGrad {
      if let w = norm.weight, let b = norm.bias {
        try self.norm.weight!.copy(from: w)
        try self.norm.bias!.copy(from: b)
      }
      try proj.weight.copy(from: projection.weight)
    }
  }

  /// [B, width] → [B, shared]
  public func callAsFunction(_ x: Tensor) throws -> Tensor { try proj(norm(x)) }
}

/// The student's per-level bridges into the shared space: V2L for vision levels P2–P5 and
/// L2V for language levels L1–L4 (keys `v2l.<i>` / `l2v.<i>`).
///
/// The shared space is the teacher's joint embedding space: the teacher side of every
/// cross-modal comparison uses the teacher's frozen post-norm + projection (`TeacherBridge`),
/// which has no trainable parameters, so teacher targets stay fixed and cacheable. The
/// student's bridges start as copies of that map (the adapters already produce teacher
/// widths) and then learn.
public final class CrossModalBridge: Module {
  public let v2l: [BridgeProjector]
  public let l2v: [BridgeProjector]

  public init(teacher: TeacherBridge) throws {
    v2l = try (0..<4).map { _ in try BridgeProjector(copying: teacher.visionNorm, teacher.visionProjection) }
    l2v = try (0..<4).map { _ in try BridgeProjector(copying: teacher.textNorm, teacher.textProjection) }
    super.init()
  }

  /// Each level of the student's (adapted) pyramids as a shared-space vector [B, P]; a level
  /// outside `visionLevels` / `languageLevels` is not computed and holds an empty tensor.
  public func shared(
    vision: VisionLevels, language: LanguageLevels, visionLevels: Set<Level> = Set(Level.allCases),
    languageLevels: Set<Level> = Set(Level.allCases)
  ) throws -> (vision: [Tensor], language: [Tensor]) {
    let v = try Level.allCases.map { level in
      visionLevels.contains(level) ? try v2l[level.rawValue](levelVector(vision[level])) : try Tensor.zeros([0])
    }
    let l = try Level.allCases.map { level in
      guard languageLevels.contains(level) else { return try Tensor.zeros([0]) }
      let (features, mask) = language[level]
      return try l2v[level.rawValue](levelVector(features, mask: mask))
    }
    return (v, l)
  }
}

/// The teacher's frozen map into its joint space, applied to pyramid levels.
public struct TeacherBridge {
  public let visionNorm: LayerNorm
  public let visionProjection: Linear
  public let textNorm: LayerNorm
  public let textProjection: Linear

  public init(_ teacher: CLIPModel) {
    visionNorm = teacher.visionModel.postLayernorm
    visionProjection = teacher.visualProjection
    textNorm = teacher.textModel.finalLayerNorm
    textProjection = teacher.textProjection
  }

  /// Each level as a shared-space vector [B, P] (no gradient: the teacher is frozen).
  public func shared(vision: VisionLevels, language: LanguageLevels) throws -> (vision: [Tensor], language: [Tensor]) {
    (try sharedVision(vision), try sharedLanguage(language))
  }

  /// The vision levels alone (the cache stores an image's features apart from its captions').
  public func sharedVision(_ vision: VisionLevels) throws -> [Tensor] {
    try Torch.noGrad { try Level.allCases.map { try visionProjection(visionNorm(levelVector(vision[$0]))) } }
  }

  public func sharedLanguage(_ language: LanguageLevels) throws -> [Tensor] {
    try Torch.noGrad {
      try Level.allCases.map { level in
        let (features, mask) = language[level]
        return try textProjection(textNorm(levelVector(features, mask: mask)))
      }
    }
  }
}

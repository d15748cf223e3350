import Models
import Pyramid
import Torch

/// Everything the frozen teacher contributes to a batch: the pyramid taps (native
/// resolution), the shared-space level vectors and its embeddings. A teacher-feature cache
/// stores exactly this, so training from the cache needs no teacher forward pass.
public struct TeacherFeatures {
  /// 4 vision taps [B, 1 + N, Dv] and the patch grid they lie on.
  public var visionTaps: [Tensor]
  public var grid: (height: Int, width: Int)
  /// 4 language taps [B, T, Dt], the attention mask [B, T] and pooling positions [B] (or nil).
  public var textTaps: [Tensor]
  public var attentionMask: Tensor
  public var pooledPositions: Tensor?
  /// Shared-space vectors of each level, 4 × [B, P] per modality (teacher's frozen bridge).
  public var sharedVision: [Tensor]
  public var sharedLanguage: [Tensor]
  /// The teacher's own image and text embeddings [B, P] (not normalized).
  public var imageEmbedding: Tensor
  public var textEmbedding: Tensor

  public init(
    visionTaps: [Tensor], grid: (height: Int, width: Int), textTaps: [Tensor], attentionMask: Tensor, pooledPositions: Tensor?,
    sharedVision: [Tensor], sharedLanguage: [Tensor], imageEmbedding: Tensor, textEmbedding: Tensor
  ) {
    self.visionTaps = visionTaps
    self.grid = grid
    self.textTaps = textTaps
    self.attentionMask = attentionMask
    self.pooledPositions = pooledPositions
    self.sharedVision = sharedVision
    self.sharedLanguage = sharedLanguage
    self.imageEmbedding = imageEmbedding
    self.textEmbedding = textEmbedding
  }

  /// Runs the frozen teacher (no gradient) on one batch.
  public static func compute(teacher: CLIPModel, pixels: Tensor, ids: Tensor, attentionMask: Tensor, pyramid: PyramidConfig) throws -> TeacherFeatures {
    try Torch.noGrad {
      let vision = try teacher.visionModel(pixels)
      let text = try teacher.textModel(ids, attentionMask: attentionMask)
      let visionTaps = try VisionPyramid.taps(vision, config: pyramid)
      let textTaps = try LanguageHierarchy.taps(text, config: pyramid)
      var features = TeacherFeatures(
        visionTaps: visionTaps, grid: vision.grid, textTaps: textTaps, attentionMask: text.attentionMask,
        pooledPositions: text.pooledPositions, sharedVision: [], sharedLanguage: [],
        imageEmbedding: try teacher.visualProjection(vision.pooled), textEmbedding: try teacher.textProjection(text.pooled))
      let (v, l) = try features.levels(pyramid)
      (features.sharedVision, features.sharedLanguage) = try TeacherBridge(teacher).shared(vision: v, language: l)
      return features
    }
  }

  /// The teacher's pyramid levels, rebuilt from the taps (parameter-free).
  public func levels(_ pyramid: PyramidConfig) throws -> (VisionLevels, LanguageLevels) {
    (
      try VisionPyramid.levels(taps: visionTaps, grid: grid, config: pyramid),
      try LanguageHierarchy.levels(taps: textTaps, attentionMask: attentionMask, pooledPositions: pooledPositions, config: pyramid)
    )
  }
}

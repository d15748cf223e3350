import TorchNN

/// Model sizes the project uses, from test-sized to the real OpenAI CLIP shapes.
public enum Presets {
  /// Test-sized: 32×32 images, 2 layers per tower, CLIP's real vocabulary.
  public static let tiny = clip(
    vision: (width: 64, layers: 2, heads: 4, patch: 8, image: 32), text: (width: 64, layers: 2, heads: 4, context: 77),
    projection: 32)

  /// Teacher for the embedded captioned-scenes benchmark (48×48 images, 16×16 patches, captions
  /// up to 32 tokens): sized so that `make demo` trains it in minutes on two CPU cores. The 3×3
  /// patch grid matches the scenes' 3×3 layout grid, one object per patch: at the demo's budget
  /// this learned ~7× faster than 64 px (mean recall 0.249 vs 0.035 after 600 steps).
  public static let sceneTeacher = clip(
    vision: (width: 128, layers: 4, heads: 4, patch: 16, image: 48), text: (width: 128, layers: 4, heads: 4, context: 32),
    projection: 128)

  /// A second teacher for the embedded benchmark, shaped unlike `sceneTeacher`: a wider,
  /// shallower vision tower (192 × 3 layers against 128 × 4), a narrower, deeper text tower
  /// (96 × 6 against 128 × 4) and a narrower joint space (96 against 128), so that multi-teacher
  /// distillation combines two teachers whose features live in different spaces. Its patches
  /// stay 16 px: at 8 px (a 6×6 grid) the same budget barely started learning (loss 4.1 after
  /// 124 steps, against 3.1 after 100 for `sceneTeacher`) at under half the speed.
  public static let sceneTeacherB = clip(
    vision: (width: 192, layers: 3, heads: 6, patch: 16, image: 48), text: (width: 96, layers: 6, heads: 4, context: 32),
    projection: 96)

  /// Student for the embedded benchmark: half the teacher's width, fewer layers.
  public static let sceneStudent = clip(
    vision: (width: 64, layers: 3, heads: 2, patch: 16, image: 48), text: (width: 64, layers: 3, heads: 2, context: 32),
    projection: 128)

  /// OpenAI CLIP ViT-B/32.
  public static let vitB32 = clip(
    vision: (width: 768, layers: 12, heads: 12, patch: 32, image: 224), text: (width: 512, layers: 12, heads: 8, context: 77),
    projection: 512)

  /// OpenAI CLIP ViT-B/16.
  public static let vitB16 = clip(
    vision: (width: 768, layers: 12, heads: 12, patch: 16, image: 224), text: (width: 512, layers: 12, heads: 8, context: 77),
    projection: 512)

  /// A ViT-S/16 student for a ViT-B/16 teacher (DeiT-S's vision tower, a 6-layer text tower of
  /// the same width, the teacher's joint width): the GPU benchmark's real-size student.
  public static let vitS16 = clip(
    vision: (width: 384, layers: 12, heads: 6, patch: 16, image: 224), text: (width: 384, layers: 6, heads: 6, context: 77),
    projection: 512)

  /// OpenAI CLIP ViT-L/14.
  public static let vitL14 = clip(
    vision: (width: 1024, layers: 24, heads: 16, patch: 14, image: 224), text: (width: 768, layers: 12, heads: 12, context: 77),
    projection: 768)

  /// Every preset by name (for configs and the CLI).
  public static let all: [String: CLIPConfig] = [
    "tiny": tiny, "scene-teacher": sceneTeacher, "scene-teacher-b": sceneTeacherB, "scene-student": sceneStudent,
    "vit-b-32": vitB32, "vit-b-16": vitB16, "vit-s-16": vitS16, "vit-l-14": vitL14,
  ]

  /// A CLIP config with 4× MLPs, quick-GELU and CLIP's vocabulary.
  static func clip(
    vision v: (width: Int, layers: Int, heads: Int, patch: Int, image: Int),
    text t: (width: Int, layers: Int, heads: Int, context: Int), projection: Int
  ) -> CLIPConfig {
    CLIPConfig(
      text: CLIPTextConfig(
        vocabSize: 49408, hiddenSize: t.width, intermediateSize: 4 * t.width, numHiddenLayers: t.layers,
        numAttentionHeads: t.heads,
        maxPositionEmbeddings: t.context, projectionDim: projection),
      vision: CLIPVisionConfig(
        hiddenSize: v.width, intermediateSize: 4 * v.width, numHiddenLayers: v.layers, numAttentionHeads: v.heads,
        imageSize: v.image,
        patchSize: v.patch, projectionDim: projection),
      projectionDim: projection)
  }
}

import Models
import Pyramid
import Torch

/// Everything the frozen teacher contributes to a batch, in the compact form the levels are
/// expanded from: a teacher-feature cache stores exactly this, so training from the cache
/// needs no teacher forward pass.
public struct TeacherFeatures {
  /// The first three vision taps as native-grid maps, 3 × [B, Dv, gh, gw], and P5 [B, Dv].
  public var visionMaps: [Tensor]
  public var visionGlobal: Tensor
  /// The language summary: two token taps [B, T, Dt], L3, L4 [B, Dt] and the mask [B, T].
  public var language: CompactLanguage
  /// Shared-space vectors of each level, 4 × [B, P] per modality (teacher's frozen bridge).
  public var sharedVision: [Tensor]
  public var sharedLanguage: [Tensor]
  /// The teacher's own image and text embeddings [B, P] (not normalized).
  public var imageEmbedding: Tensor
  public var textEmbedding: Tensor

  public init(
    visionMaps: [Tensor], visionGlobal: Tensor, language: CompactLanguage, sharedVision: [Tensor], sharedLanguage: [Tensor],
    imageEmbedding: Tensor, textEmbedding: Tensor
  ) {
    self.visionMaps = visionMaps
    self.visionGlobal = visionGlobal
    self.language = language
    self.sharedVision = sharedVision
    self.sharedLanguage = sharedLanguage
    self.imageEmbedding = imageEmbedding
    self.textEmbedding = textEmbedding
  }

  /// The patch grid of the vision maps.
  public var grid: (height: Int, width: Int) { (visionMaps[2].size(2), visionMaps[2].size(3)) }

  /// Runs the frozen teacher (no gradient) on one batch.
  public static func compute(teacher: CLIPModel, pixels: Tensor, ids: Tensor, attentionMask: Tensor, pyramid: PyramidConfig)
    throws -> TeacherFeatures
  {
    let image = try computeImage(teacher: teacher, pixels: pixels, pyramid: pyramid)
    let text = try computeText(teacher: teacher, ids: ids, attentionMask: attentionMask, pyramid: pyramid)
    return try TeacherFeatures(named: image.merging(text) { a, _ in a })
  }

  /// Whether a field of `named()` depends on the image alone (the rest depend on the caption
  /// alone): what lets a cache store an image's features once per view, not once per caption.
  public static func isImageField(_ name: String) -> Bool {
    name.hasPrefix("vision_") || name.hasPrefix("shared_vision") || name == "image_embedding"
  }

  /// The image fields of `named()` for `pixels`: the teacher's vision tower alone.
  public static func computeImage(teacher: CLIPModel, pixels: Tensor, pyramid: PyramidConfig) throws -> [String: Tensor] {
    try Torch.noGrad {
      let vision = try teacher.visionModel(pixels)
      let (views, global) = try VisionPyramid.compact(taps: VisionPyramid.taps(vision, config: pyramid), grid: vision.grid)
      // Contiguous, as the cache gives them back: a loss reduces a strided view in another
      // order, and live and cached features must train to the same bits.
      let maps = try views.map { try $0.contiguous() }
      let levels = try VisionPyramid.expand(
        maps: maps, global: global, targetGrid: (maps[2].size(2), maps[2].size(3)), config: pyramid)
      var out = ["vision_global": global, "image_embedding": try teacher.visualProjection(vision.pooled)]
      for (i, m) in maps.enumerated() { out["vision_map\(i)"] = m }
      for (i, v) in try TeacherBridge(teacher).sharedVision(levels).enumerated() { out["shared_vision\(i)"] = v }
      return out
    }
  }

  /// The caption fields of `named()` for `ids`: the teacher's text tower alone.
  public static func computeText(teacher: CLIPModel, ids: Tensor, attentionMask: Tensor, pyramid: PyramidConfig) throws
    -> [String: Tensor]
  {
    try Torch.noGrad {
      let text = try teacher.textModel(ids, attentionMask: attentionMask)
      let language = try LanguageHierarchy.compact(
        taps: LanguageHierarchy.taps(text, config: pyramid), attentionMask: text.attentionMask,
        pooledPositions: text.pooledPositions)
      var out = [
        "text_tokens": language.tokens, "text_phrase_source": language.phraseSource, "text_sentence": language.sentence,
        "text_global": language.global, "text_mask": language.mask, "text_embedding": try teacher.textProjection(text.pooled),
      ]
      let levels = try LanguageHierarchy.expand(language, config: pyramid)
      for (i, l) in try TeacherBridge(teacher).sharedLanguage(levels).enumerated() { out["shared_language\(i)"] = l }
      return out
    }
  }

  /// The teacher's pyramid levels, expanded from the compact form (parameter-free).
  public func levels(_ pyramid: PyramidConfig) throws -> (VisionLevels, LanguageLevels) {
    (
      try VisionPyramid.expand(maps: visionMaps, global: visionGlobal, targetGrid: grid, config: pyramid),
      try LanguageHierarchy.expand(language, config: pyramid)
    )
  }

  /// Every field on `device` (the cache reads to the CPU; training may run elsewhere).
  public func to(_ device: Device) throws -> TeacherFeatures {
    guard imageEmbedding.device != device else { return self }
    var out: [String: Tensor] = [:]
    for (name, t) in named() { out[name] = try t.to(device) }
    return try TeacherFeatures(named: out)
  }

  /// Every field transformed by `transform` (e.g. gathered from every data-parallel rank).
  public func map(_ transform: (Tensor) throws -> Tensor) throws -> TeacherFeatures {
    var out: [String: Tensor] = [:]
    for (name, t) in named() { out[name] = try transform(t) }
    return try TeacherFeatures(named: out)
  }

  /// Every floating-point field rounded through `storage` and back to its own dtype: the
  /// numbers a cache that stores `storage` gives back.
  public func rounded(to storage: DType) throws -> TeacherFeatures {
    var out: [String: Tensor] = [:]
    for (name, t) in named() { out[name] = try TeacherFeatures.rounded(t, to: storage) }
    return try TeacherFeatures(named: out)
  }

  /// One field rounded through `storage` and back (integer fields unchanged).
  public static func rounded(_ t: Tensor, to storage: DType) throws -> Tensor {
    t.dtype.isFloatingPoint && t.dtype != storage ? try t.to(storage).to(t.dtype) : t
  }

  /// Named tensors for storage, one batch.
  public func named() -> [(String, Tensor)] {
    var out: [(String, Tensor)] = []
    for (i, m) in visionMaps.enumerated() { out.append(("vision_map\(i)", m)) }
    out += [
      ("vision_global", visionGlobal), ("text_tokens", language.tokens), ("text_phrase_source", language.phraseSource),
      ("text_sentence", language.sentence), ("text_global", language.global), ("text_mask", language.mask),
      ("image_embedding", imageEmbedding), ("text_embedding", textEmbedding),
    ]
    for (i, v) in sharedVision.enumerated() { out.append(("shared_vision\(i)", v)) }
    for (i, l) in sharedLanguage.enumerated() { out.append(("shared_language\(i)", l)) }
    return out
  }

  /// The inverse of `named()`; throws naming the first missing field.
  public init(named tensors: [String: Tensor]) throws {
    func get(_ key: String) throws -> Tensor {
      guard let t = tensors[key] else { throw PyramidError("teacher features lack '\(key)'") }
      return t
    }
    self.init(
      visionMaps: try (0..<3).map { try get("vision_map\($0)") }, visionGlobal: try get("vision_global"),
      language: CompactLanguage(
        tokens: try get("text_tokens"), phraseSource: try get("text_phrase_source"), sentence: try get("text_sentence"),
        global: try get("text_global"), mask: try get("text_mask")),
      sharedVision: try (0..<4).map { try get("shared_vision\($0)") },
      sharedLanguage: try (0..<4).map { try get("shared_language\($0)") },
      imageEmbedding: try get("image_embedding"), textEmbedding: try get("text_embedding"))
  }
}

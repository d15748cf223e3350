import Models
import Pyramid
import Torch
import TorchNN

/// Settings of `iva`.
public struct IVAConfig: Codable, Equatable, Sendable {
  /// τ of the relevance softmax over patches (cosines in the joint space).
  public var temperature = 0.05
  /// Which of the teacher's three patch-map taps (`visionMaps`, quarters of its depth) carries
  /// the relevance: 0, 1, 2; nil (`auto`) picks the one whose relevance changes most between
  /// two captions of the same image (`IVAMethod.chooseLayer`, on `probe_images` training images).
  public var layer: Int?
  /// Training images (with two captions each) the automatic layer choice is measured on.
  public var probeImages = 64
  /// λ of the relevance-weighted patch regression.
  public var regressionWeight = 1.0
  /// λ of KL(teacher relevance ‖ student relevance).
  public var relevanceWeight = 1.0
  /// λ of the student's CLIP loss.
  public var taskWeight = 1.0

  enum CodingKeys: String, CodingKey {
    case temperature, layer
    case probeImages = "probe_images", regressionWeight = "regression_weight", relevanceWeight = "relevance_weight"
    case taskWeight = "task_weight"
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = IVAConfig()
    temperature = try c.decode(.temperature, default: d.temperature)
    layer = try c.decodeIfPresent(Int.self, forKey: .layer)
    probeImages = try c.decode(.probeImages, default: d.probeImages)
    regressionWeight = try c.decode(.regressionWeight, default: d.regressionWeight)
    relevanceWeight = try c.decode(.relevanceWeight, default: d.relevanceWeight)
    taskWeight = try c.decode(.taskWeight, default: d.taskWeight)
  }
}

/// Images with two captions each, for choosing the relevance layer: pixels [N, 3, H, W] and
/// two tokenised captions per image ([N, L] ids and masks each).
public struct CaptionProbe {
  public var pixels: Tensor
  public var captions: [(ids: Tensor, attentionMask: Tensor)]

  public init(pixels: Tensor, captions: [(ids: Tensor, attentionMask: Tensor)]) {
    self.pixels = pixels
    self.captions = captions
  }
}

/// `iva`'s trainable module: the patch regressor, student width → teacher width (1×1 conv).
public final class IVAHead: Module {
  public let regressor: Conv2d

  public init(studentWidth: Int, teacherWidth: Int) throws {
    regressor = try Conv2d(studentWidth, teacherWidth, kernel: (1, 1))
    super.init()
  }
}

/// `iva`: token-interaction distillation mapped to a dual encoder (SPEC §7). A dual encoder has
/// no cross-attention from text to patches, so the interaction is read off the joint space:
/// the relevance of patch j to caption c is r_j = softmax_j(⟨P(v_j), t(c)⟩ / τ), P the tower's
/// own post-norm and visual projection applied to a patch token (normalised), t(c) the caption's
/// normalised embedding. The teacher's relevance
///   - weights the student's patch regression: Σ_j r_T,j · mean_d (R(s_j) − LN(t_j))², R a 1×1
///     conv, LN a non-affine layer norm of the teacher's token (intermediate tokens of a ViT have
///     a few huge residual channels that would otherwise decide the loss), and
///   - is matched by the student's own relevance map: KL(r_T ‖ r_S);
/// plus the task loss. Both use the teacher's patch map at one tap (`layer`) and the student's
/// at the same relative depth, resampled bilinearly to the teacher's grid.
public final class IVAMethod: DistillationMethod {
  public let name = "iva"
  public let teacherInputs: Set<TeacherInput> = [.embeddings, .visionMaps]
  public let config: IVAConfig
  public let ivaHead: IVAHead
  public var head: Module? { ivaHead }
  /// The tap the relevance and regression use.
  public let layer: Int
  /// Mean total-variation distance between the two captions' relevance maps at each tap, when
  /// the layer was chosen on a probe.
  public let layerScores: [Double]?
  let teacherNorm: LayerNorm
  let teacherProjection: Linear
  let pyramid: PyramidConfig

  public init(config: IVAConfig, context: MethodContext) throws {
    guard config.temperature > 0, config.temperature.isFinite else {
      throw MethodError("iva: temperature is \(config.temperature); it must be > 0")
    }
    if let layer = config.layer, !(0...2).contains(layer) {
      throw MethodError("iva: layer is \(layer); it must be 0, 1 or 2 (a patch-map tap, 2 = three quarters of the depth) or absent (auto)")
    }
    for (value, field) in [
      (config.regressionWeight, "regression_weight"), (config.relevanceWeight, "relevance_weight"), (config.taskWeight, "task_weight"),
    ] {
      try Baselines.checkWeight(value, "iva", field)
    }
    self.config = config
    pyramid = context.pyramid
    teacherNorm = context.teacher.visionModel.postLayernorm
    teacherProjection = context.teacher.visualProjection
    ivaHead = try IVAHead(
      studentWidth: context.student.visionConfig.hiddenSize, teacherWidth: context.teacher.config.visionConfig.hiddenSize)
    if let layer = config.layer {
      self.layer = layer
      layerScores = nil
    } else if let probe = context.captionProbe {
      let scores = try IVAMethod.layerScores(
        teacher: context.teacher, probe: probe, pyramid: context.pyramid, temperature: config.temperature)
      layer = scores.indices.max { scores[$0] < scores[$1] }!
      layerScores = scores
    } else {
      // No image with two captions to measure on (or a unit test): the deepest patch tap.
      layer = 2
      layerScores = nil
    }
  }

  /// r = softmax_j(⟨normalize(projection(norm(v_j))), normalize(text)⟩ / τ) over the patches of
  /// `maps` [B, D, gh, gw] against `text` [B, P]: log-relevance [B, N].
  public static func logRelevance(maps: Tensor, text: Tensor, norm: LayerNorm, projection: Linear, temperature: Double)
    throws -> Tensor
  {
    let tokens = try maps.flatten(start: 2).transpose(1, 2)  // [B, N, D]
    let patches = try Functional.normalize(projection(norm(tokens)))  // [B, N, P]
    let logits = try patches.matmul(Functional.normalize(text).unsqueeze(2)).squeeze(2)  // [B, N]
    return try (logits / temperature).logSoftmax(dim: 1)
  }

  /// For each of the teacher's three patch taps, the mean over the probe's images of the total
  /// variation ½ Σ_j |r_j(caption 1) − r_j(caption 2)|: how much the caption moves the relevance.
  public static func layerScores(teacher: CLIPModel, probe: CaptionProbe, pyramid: PyramidConfig, temperature: Double)
    throws -> [Double]
  {
    guard probe.captions.count >= 2 else { throw MethodError("iva: the layer probe needs two captions per image") }
    return try Torch.noGrad {
      let vision = try teacher.visionModel(probe.pixels)
      let (maps, _) = try VisionPyramid.compact(taps: VisionPyramid.taps(vision, config: pyramid), grid: vision.grid)
      let texts = try probe.captions.prefix(2).map { try teacher.encodeText($0.ids, attentionMask: $0.attentionMask) }
      return try maps.map { map in
        let r = try texts.map {
          try logRelevance(
            maps: map, text: $0, norm: teacher.visionModel.postLayernorm, projection: teacher.visualProjection,
            temperature: temperature
          ).exp()
        }
        return try ((r[0] - r[1]).abs().sum(dim: 1) * 0.5).mean().item()
      }
    }
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let teacher = try batch.requireTeacher(name)
    let pass = try StudentPass(student: student, batch: batch)
    let target = teacher.visionMaps[layer]  // [B, Dt, g, g]
    var parts = LossParts()
    if config.regressionWeight > 0 || config.relevanceWeight > 0 {
      let (maps, _) = try VisionPyramid.compact(taps: VisionPyramid.taps(pass.vision, config: pyramid), grid: pass.vision.grid)
      let grid = (target.size(2), target.size(3))
      let s = maps[layer]
      let resized = (s.size(2), s.size(3)) == grid ? s : try Functional.interpolate(s, size: grid, mode: .bilinear)
      let teacherLog = try Torch.noGrad {
        try IVAMethod.logRelevance(
          maps: target, text: teacher.textEmbedding, norm: teacherNorm, projection: teacherProjection,
          temperature: config.temperature)
      }
      let iva = try IVAMethod.parts(
        student: resized, studentText: pass.caption, studentNorm: student.visionModel.postLayernorm,
        studentProjection: student.visualProjection, teacher: target, teacherLogRelevance: teacherLog,
        regressor: ivaHead.regressor, temperature: config.temperature)
      if config.regressionWeight > 0 { parts.add("\(name)/regression", try iva.regression * config.regressionWeight) }
      if config.relevanceWeight > 0 { parts.add("\(name)/relevance", try iva.relevance * config.relevanceWeight) }
    }
    try parts.addWeighted(config.taskWeight, "task") { try Baselines.task(pass, student: student) }
    var metrics = ["iva/layer": Double(layer)]
    for (i, score) in (layerScores ?? []).enumerated() { metrics["iva/layer_score\(i)"] = score }
    var step = try MethodStep(loss: parts, method: name, metrics: metrics)
    step.embeddings = (pass.image, pass.caption)
    return step
  }

  /// The two terms on one batch, for student maps `student` [B, Ds, g, g] on the teacher's grid
  /// and the teacher's maps `teacher` [B, Dt, g, g] with its log-relevance [B, N]:
  ///   regression = mean_b Σ_j r_T,bj · mean_d (R(s)_bjd − LN(t_bj)_d)²
  ///   relevance  = mean_b Σ_j r_T,bj (log r_T,bj − log r_S,bj)
  public static func parts(
    student: Tensor, studentText: Tensor, studentNorm: LayerNorm, studentProjection: Linear, teacher: Tensor,
    teacherLogRelevance: Tensor, regressor: Conv2d, temperature: Double
  ) throws -> (regression: Tensor, relevance: Tensor) {
    let rT = try teacherLogRelevance.detach().exp()  // [B, N]
    let regressed = try regressor(student).flatten(start: 2).transpose(1, 2)  // [B, N, Dt]
    let tokens = try teacher.detach().flatten(start: 2).transpose(1, 2)
    let goal = try Functional.layerNorm(tokens, normalizedShape: [tokens.size(2)])
    let perPatch = try (regressed - goal).square().mean(dim: 2)  // [B, N]
    let regression = try (perPatch * rT).sum(dim: 1).mean()
    let studentLog = try logRelevance(
      maps: student, text: studentText, norm: studentNorm, projection: studentProjection, temperature: temperature)
    let relevance = try (rT * (teacherLogRelevance.detach() - studentLog)).sum(dim: 1).mean()
    return (regression, relevance)
  }
}

import Foundation
import Models
import Pyramid
import Torch
import TorchNN

/// λ for each term of the total loss (SPEC §5); 0 switches a term off.
public struct LossWeights: Codable, Equatable, Sendable {
  public var intraVision = 1.0
  public var intraLanguage = 1.0
  public var align = 0.5
  public var pyramid = 0.5
  public var relation = 0.3
  public var layerRelation = 0.3
  public var task = 1.0

  enum CodingKeys: String, CodingKey {
    case intraVision = "intra_vision", intraLanguage = "intra_language", align, pyramid, relation
    case layerRelation = "layer_relation", task
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = LossWeights()
    intraVision = try c.decode(.intraVision, default: d.intraVision)
    intraLanguage = try c.decode(.intraLanguage, default: d.intraLanguage)
    align = try c.decode(.align, default: d.align)
    pyramid = try c.decode(.pyramid, default: d.pyramid)
    relation = try c.decode(.relation, default: d.relation)
    layerRelation = try c.decode(.layerRelation, default: d.layerRelation)
    task = try c.decode(.task, default: d.task)
  }
}

/// CMAPKD's settings.
public struct CMAPKDConfig: Codable, Equatable, Sendable {
  public var pyramid = PyramidConfig()
  public var lambdas = LossWeights()
  public var temperature = 0.07
  public var selection: SelectionMode = .uniform
  /// For `manual` selection: 4 vision, 4 language and optionally 16 coupling weights.
  public var manualVision: [Double]?
  public var manualLanguage: [Double]?
  public var manualCoupling: [Double]?

  enum CodingKeys: String, CodingKey {
    case pyramid, lambdas, temperature, selection
    case manualVision = "manual_vision", manualLanguage = "manual_language", manualCoupling = "manual_coupling"
  }

  public init(pyramid: PyramidConfig = PyramidConfig(), lambdas: LossWeights = LossWeights(), temperature: Double = 0.07, selection: SelectionMode = .uniform) {
    self.pyramid = pyramid
    self.lambdas = lambdas
    self.temperature = temperature
    self.selection = selection
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    pyramid = try c.decode(.pyramid, default: PyramidConfig())
    lambdas = try c.decode(.lambdas, default: LossWeights())
    temperature = try c.decode(.temperature, default: 0.07)
    selection = try c.decode(.selection, default: .uniform)
    manualVision = try c.decodeIfPresent([Double].self, forKey: .manualVision)
    manualLanguage = try c.decodeIfPresent([Double].self, forKey: .manualLanguage)
    manualCoupling = try c.decodeIfPresent([Double].self, forKey: .manualCoupling)
  }
}

/// The student-side modules CMAPKD adds: level adapters, the cross-modal bridge and the ALSN.
/// Dropped at inference: the distilled student is the plain `CLIPModel`.
public final class CMAPKDHead: Module {
  public let pyramid: StudentPyramid
  public let bridge: CrossModalBridge
  public let alsn: ALSN

  public init(student: CLIPConfig, teacher: CLIPModel) throws {
    let t = teacher.config
    pyramid = try StudentPyramid(
      studentWidths: (student.visionConfig.hiddenSize, student.textConfig.hiddenSize),
      teacherWidths: (t.visionConfig.hiddenSize, t.textConfig.hiddenSize))
    bridge = try CrossModalBridge(teacher: TeacherBridge(teacher))
    alsn = try ALSN(featureWidth: student.projectionDim)
    super.init()
  }
}

/// One batch's CMAPKD loss: λ-weighted named parts and the level weights used.
public struct CMAPKDStep {
  public var loss: LossParts
  public var weights: LevelWeights
  public var total: Tensor
}

/// Cross-Modal Adaptive Pyramid Knowledge Distillation: composes pyramids, bridge, ALSN and
/// the three levels of losses into the student's training loss.
public struct CMAPKD {
  public var config: CMAPKDConfig

  public init(_ config: CMAPKDConfig) { self.config = config }

  /// The loss of one batch at a stage of the progressive schedule.
  /// - Parameters:
  ///   - student: the student being trained; `head`: its CMAPKD modules.
  ///   - teacher: the teacher's features for the same batch (computed live or from the cache).
  ///   - pixels [B, C, H, W], ids [B, T], attentionMask [B, T].
  public func step(
    student: CLIPModel, head: CMAPKDHead, teacher: TeacherFeatures, pixels: Tensor, ids: Tensor, attentionMask: Tensor, stage: Stage
  ) throws -> CMAPKDStep {
    let pyramidConfig = config.pyramid
    let lambdas = config.lambdas
    let active = stage.activeLevels
    let vision = try student.visionModel(pixels)
    let text = try student.textModel(ids, attentionMask: attentionMask)
    let image = try student.visualProjection(vision.pooled)  // [B, P_s]
    let caption = try student.textProjection(text.pooled)

    // Pyramids: the student's own, at the teacher's resolutions, then adapted to its widths.
    let (teacherVision, teacherLanguage) = try teacher.levels(pyramidConfig)
    let rawVision = try VisionPyramid.levels(
      taps: VisionPyramid.taps(vision, config: pyramidConfig), grid: vision.grid, targetGrid: teacher.grid, config: pyramidConfig)
    let rawLanguage = try LanguageHierarchy.levels(
      taps: LanguageHierarchy.taps(text, config: pyramidConfig), attentionMask: attentionMask, pooledPositions: text.pooledPositions,
      config: pyramidConfig)
    let (studentVision, studentLanguage) = try head.pyramid.adapt(vision: rawVision, language: rawLanguage)
    let shared = try head.bridge.shared(vision: studentVision, language: studentLanguage)

    let weights = try levelWeights(head: head, image: image, text: caption, active: active)
    var parts = LossParts()
    func add(_ lambda: Double, _ name: String, _ make: () throws -> LossParts) throws {
      guard lambda != 0 else { return }
      var scaled = LossParts()
      for (part, value) in try make().parts { scaled.add(part, try value * lambda) }
      parts.merge(scaled, prefix: name)
    }
    try add(lambdas.intraVision, "intra_v") {
      try Losses.intraVision(student: studentVision, teacher: teacherVision, weights: weights.vision, active: active)
    }
    try add(lambdas.intraLanguage, "intra_l") {
      try Losses.intraLanguage(student: studentLanguage, teacher: teacherLanguage, weights: weights.language, active: active)
    }
    try add(lambdas.align, "align") {
      try Losses.alignment(
        studentImage: shared.vision[3], studentText: shared.language[3], teacherImage: teacher.sharedVision[3],
        teacherText: teacher.sharedLanguage[3], temperature: config.temperature)
    }
    try add(lambdas.pyramid, "pyramid") {
      try Losses.pyramidAlignment(
        student: shared, teacher: (teacher.sharedVision, teacher.sharedLanguage), coupling: weights.coupling, activeVision: active,
        activeLanguage: active, temperature: config.temperature)
    }
    try add(lambdas.relation, "relation") {
      try Losses.sampleRelation(student: [shared.vision[3], shared.language[3]], teacher: [teacher.sharedVision[3], teacher.sharedLanguage[3]])
    }
    try add(lambdas.layerRelation, "layer_relation") {
      let levels = Level.allCases.filter { active.contains($0) }.map(\.rawValue)
      guard levels.count > 1 else { return LossParts() }  // one level has no relation to another
      return try Losses.layerRelation(
        student: [levels.map { shared.vision[$0] }, levels.map { shared.language[$0] }],
        teacher: [levels.map { teacher.sharedVision[$0] }, levels.map { teacher.sharedLanguage[$0] }])
    }
    try add(lambdas.task, "task") {
      var task = LossParts()
      task.add("clip", try Losses.clip(images: image, texts: caption, logitScale: student.logitScale))
      return task
    }
    guard let total = try parts.sum() else { throw PyramidError("every loss term is switched off (all λ are 0)") }
    return CMAPKDStep(loss: parts, weights: weights, total: total)
  }

  func levelWeights(head: CMAPKDHead, image: Tensor, text: Tensor, active: Set<Level>) throws -> LevelWeights {
    switch config.selection {
    case .uniform:
      return try FixedWeights.make(batch: image.size(0), activeVision: active, activeLanguage: active, device: image.device)
    case .manual:
      return try FixedWeights.make(
        batch: image.size(0), vision: config.manualVision, language: config.manualLanguage, coupling: config.manualCoupling,
        activeVision: active, activeLanguage: active, device: image.device)
    case .gating, .policy:
      // The weights multiply the losses as constants: the selector is never trained on the
      // loss it weights (that collapses onto the easiest level). Its own signal comes from
      // held-out progress (not implemented yet: see docs/method.md).
      let w = try head.alsn(image: image, text: text, activeVision: active, activeLanguage: active)
      return LevelWeights(vision: try w.vision.detach(), language: try w.language.detach(), coupling: try w.coupling.detach())
    }
  }
}

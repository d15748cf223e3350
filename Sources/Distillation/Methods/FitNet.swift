import Models
import Pyramid
import Torch
import TorchNN

/// Settings of `fitnet`. Taps are indices into the four pyramid taps of each tower (quarters of
/// its depth, `PyramidConfig`): 0–2 are token-level hints, 3 the pooled global vector.
public struct FitNetConfig: Codable, Equatable, Sendable {
  /// Which vision tap is the hint: 0–2 the patch maps (the teacher's `visionMaps`), 3 P5.
  public var visionTap = 1
  /// Which text tap: 0, 1 the token sequences (`language.tokens`, `language.phraseSource`),
  /// 2 the sentence mean, 3 the pooled global vector.
  public var textTap = 1
  public var visionWeight = 1.0
  public var textWeight = 1.0
  public var taskWeight = 1.0

  enum CodingKeys: String, CodingKey {
    case visionTap = "vision_tap", textTap = "text_tap", visionWeight = "vision_weight", textWeight = "text_weight"
    case taskWeight = "task_weight"
  }

  public init(visionTap: Int = 1, textTap: Int = 1, visionWeight: Double = 1, textWeight: Double = 1, taskWeight: Double = 1) {
    self.visionTap = visionTap
    self.textTap = textTap
    self.visionWeight = visionWeight
    self.textWeight = textWeight
    self.taskWeight = taskWeight
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = FitNetConfig()
    visionTap = try c.decode(.visionTap, default: d.visionTap)
    textTap = try c.decode(.textTap, default: d.textTap)
    visionWeight = try c.decode(.visionWeight, default: d.visionWeight)
    textWeight = try c.decode(.textWeight, default: d.textWeight)
    taskWeight = try c.decode(.taskWeight, default: d.taskWeight)
  }
}

/// FitNet's regressors, student width → teacher width: a 1×1 convolution for the vision hint
/// (Romero et al. regress conv maps with a conv) and a Linear for the text hint.
public final class FitNetHead: Module {
  public let vision: Conv2d
  public let text: Linear

  public init(studentWidths: (vision: Int, text: Int), teacherWidths: (vision: Int, text: Int)) throws {
    vision = try Conv2d(studentWidths.vision, teacherWidths.vision, kernel: (1, 1))
    text = try Linear(studentWidths.text, teacherWidths.text)
    super.init()
  }
}

/// `fitnet`: hint regression (Romero et al. 2015, "FitNets"). One student tap per tower is
/// mapped by a learned regressor onto the teacher's tap at the same relative depth, with an MSE
/// loss; plus the task loss.
///
/// Both sides are the pyramid's compact summaries (`VisionPyramid.compact`,
/// `LanguageHierarchy.compact`), so teacher hints come straight from `TeacherFeatures` (and the
/// cache). Student patch maps are resampled bilinearly to the teacher's grid before the regressor,
/// as the pyramid does.
public final class FitNetMethod: DistillationMethod {
  public let name = "fitnet"
  public let teacherInputs: Set<TeacherInput> = [.visionMaps, .language]
  public let config: FitNetConfig
  public let fitnetHead: FitNetHead
  public var head: Module? { fitnetHead }
  let pyramid: PyramidConfig
  let teacherWidths: (vision: Int, text: Int)

  public init(config: FitNetConfig, context: MethodContext) throws {
    for (tap, field) in [(config.visionTap, "vision_tap"), (config.textTap, "text_tap")] where !(0...3).contains(tap) {
      throw MethodError(
        "fitnet: \(field) is \(tap); it must be 0, 1, 2 or 3 (an index into the four pyramid taps, 1 = half depth)")
    }
    for (value, field) in [
      (config.visionWeight, "vision_weight"), (config.textWeight, "text_weight"), (config.taskWeight, "task_weight"),
    ] {
      try Baselines.checkWeight(value, name, field)
    }
    self.config = config
    pyramid = context.pyramid
    let t = context.teacher.config
    teacherWidths = (t.visionConfig.hiddenSize, t.textConfig.hiddenSize)
    fitnetHead = try FitNetHead(
      studentWidths: (context.student.visionConfig.hiddenSize, context.student.textConfig.hiddenSize),
      teacherWidths: teacherWidths)
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let pass = try StudentPass(student: student, batch: batch)
    var parts = LossParts()
    try parts.addWeighted(config.visionWeight, name) {
      let teacher = try batch.requireTeacher(name)
      let (maps, global) = try VisionPyramid.compact(
        taps: VisionPyramid.taps(pass.vision, config: pyramid), grid: pass.vision.grid)
      let tap = config.visionTap
      let target = tap < 3 ? teacher.visionMaps[tap] : teacher.visionGlobal  // [B, Dv, g, g] or [B, Dv]
      try Baselines.checkWidth(target, expected: teacherWidths.vision, name, "the teacher's vision tap \(tap)")
      return try FitNetMethod.visionHint(student: tap < 3 ? maps[tap] : global, teacher: target, regressor: fitnetHead.vision)
    }
    try parts.addWeighted(config.textWeight, name) {
      let teacher = try batch.requireTeacher(name)
      let compact = try LanguageHierarchy.compact(
        taps: LanguageHierarchy.taps(pass.text, config: pyramid), attentionMask: batch.attentionMask,
        pooledPositions: pass.text.pooledPositions)
      let tap = config.textTap
      let t = teacher.language
      let (s, target) = [
        (compact.tokens, t.tokens), (compact.phraseSource, t.phraseSource), (compact.sentence, t.sentence),
        (compact.global, t.global),
      ][tap]
      try Baselines.checkWidth(target, dim: target.rank - 1, expected: teacherWidths.text, name, "the teacher's text tap \(tap)")
      return try FitNetMethod.textHint(student: s, teacher: target, mask: tap < 2 ? t.mask : nil, regressor: fitnetHead.text)
    }
    try parts.addWeighted(config.taskWeight, "task") { try Baselines.task(pass, student: student) }
    var step = try MethodStep(loss: parts, method: name)
    step.embeddings = (pass.image, pass.caption)
    return step
  }

  /// Part `vision`: MSE(r(resize(S)), T) over every element, where S [B, Ds, gs, gs] is resized
  /// bilinearly to T's grid [B, Dv, g, g] and r is the 1×1 conv. A global hint S [B, Ds] against
  /// T [B, Dv] goes through the same conv as a 1×1 map.
  public static func visionHint(student: Tensor, teacher: Tensor, regressor: Conv2d) throws -> LossParts {
    let regressed: Tensor
    if student.rank == 4 {
      let grid = (teacher.size(2), teacher.size(3))
      let resized =
        (student.size(2), student.size(3)) == grid ? student : try Functional.interpolate(student, size: grid, mode: .bilinear)
      regressed = try regressor(resized)  // [B, Dv, g, g]
    } else {
      regressed = try regressor(student.view([student.size(0), student.size(1), 1, 1])).flatten(start: 1)  // [B, Dv]
    }
    var parts = LossParts()
    parts.add("vision", try Functional.mseLoss(regressed, teacher.detach()))
    return parts
  }

  /// Part `text`: for token hints S [B, T, Ds], T [B, T, Dt] with mask [B, T],
  ///   Σ_bt m_bt · mean_d (r(S) − T)²_btd / Σ_bt m_bt
  /// (padding never counts); for vector hints [B, D] the plain MSE.
  public static func textHint(student: Tensor, teacher: Tensor, mask: Tensor?, regressor: Linear) throws -> LossParts {
    let squared = try (regressor(student) - teacher.detach()).square()
    var parts = LossParts()
    if let mask {
      let perToken = try squared.mean(dim: 2) * mask  // [B, T]
      parts.add("text", try perToken.sum() / mask.sum().clamp(min: 1))
    } else {
      parts.add("text", try squared.mean())
    }
    return parts
  }
}

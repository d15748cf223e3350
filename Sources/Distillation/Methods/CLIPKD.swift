import Foundation
import Models
import Torch
import TorchNN

/// Settings of `clipkd`. Defaults are CLIP-KD's (Yang et al. 2023): λ_FD = 2000 because FD is a
/// mean over embedding elements of unit vectors, so its raw value is about 2(1 − cos)/P.
public struct CLIPKDConfig: Codable, Equatable, Sendable {
  /// λ of feature distillation.
  public var fdWeight = 2000.0
  /// λ of interactive contrastive learning.
  public var iclWeight = 1.0
  /// λ of contrastive relational distillation.
  public var crdWeight = 1.0
  public var taskWeight = 1.0
  /// Temperature of the relational KL (CLIP-KD uses 1).
  public var crdTemperature = 1.0
  /// Initial temperature of ICL's learned logit scale (CLIP's 0.07).
  public var iclTemperature = 0.07

  enum CodingKeys: String, CodingKey {
    case fdWeight = "fd_weight", iclWeight = "icl_weight", crdWeight = "crd_weight", taskWeight = "task_weight"
    case crdTemperature = "crd_temperature", iclTemperature = "icl_temperature"
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = CLIPKDConfig()
    fdWeight = try c.decode(.fdWeight, default: d.fdWeight)
    iclWeight = try c.decode(.iclWeight, default: d.iclWeight)
    crdWeight = try c.decode(.crdWeight, default: d.crdWeight)
    taskWeight = try c.decode(.taskWeight, default: d.taskWeight)
    crdTemperature = try c.decode(.crdTemperature, default: d.crdTemperature)
    iclTemperature = try c.decode(.iclTemperature, default: d.iclTemperature)
  }
}

/// CLIP-KD's student-side modules: projections of the student's embeddings into the teacher's
/// width (only when the widths differ; CLIP-KD's `visual_proj` / `text_proj`) and ICL's learned
/// logit scale. Dropped at inference.
public final class CLIPKDHead: Module {
  /// [B, P_s] → [B, P_t]; nil when P_s = P_t (the embeddings are compared directly).
  public let imageProjection: Linear?
  public let textProjection: Linear?
  /// log of the scale of the student-vs-teacher logits (CLIP's parameterisation).
  public let iclLogitScale: Tensor

  public init(studentWidth: Int, teacherWidth: Int, iclTemperature: Double) throws {
    let differ = studentWidth != teacherWidth
    imageProjection = differ ? try Linear(studentWidth, teacherWidth) : nil
    textProjection = differ ? try Linear(studentWidth, teacherWidth) : nil
    iclLogitScale = try parameter(Tensor.scalar(Foundation.log(1 / iclTemperature)))
    super.init()
  }

  /// The student's embeddings in the teacher's width (not normalized).
  public func project(image: Tensor, text: Tensor) throws -> (image: Tensor, text: Tensor) {
    (try imageProjection.map { try $0(image) } ?? image, try textProjection.map { try $0(text) } ?? text)
  }
}

/// `clipkd`: CLIP-KD (Yang et al. 2023, "CLIP-KD: An Empirical Study of CLIP Model
/// Distillation") — feature distillation, interactive contrastive learning and contrastive
/// relational distillation on the final embeddings, plus the task loss.
public final class CLIPKDMethod: DistillationMethod {
  public let name = "clipkd"
  public let teacherInputs: Set<TeacherInput> = [.embeddings]
  public let config: CLIPKDConfig
  public let clipkdHead: CLIPKDHead
  public var head: Module? { clipkdHead }
  /// exp of the teacher's logit scale (for the relational term).
  public let teacherLogitScale: Double
  let teacherWidth: Int

  public init(config: CLIPKDConfig, context: MethodContext) throws {
    for (value, field) in [
      (config.fdWeight, "fd_weight"), (config.iclWeight, "icl_weight"), (config.crdWeight, "crd_weight"),
      (config.taskWeight, "task_weight"),
    ] {
      try Baselines.checkWeight(value, name, field)
    }
    guard config.crdTemperature > 0, config.iclTemperature > 0 else {
      throw MethodError(
        "clipkd: crd_temperature and icl_temperature must be positive (got \(config.crdTemperature), \(config.iclTemperature))")
    }
    self.config = config
    teacherWidth = context.teacher.config.projectionDim
    clipkdHead = try CLIPKDHead(
      studentWidth: context.student.projectionDim, teacherWidth: teacherWidth, iclTemperature: config.iclTemperature)
    teacherLogitScale = try Baselines.logitScale(of: context.teacher)
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let pass = try StudentPass(student: student, batch: batch)
    var parts = LossParts()
    if config.fdWeight != 0 || config.iclWeight != 0 || config.crdWeight != 0 {
      let teacher = try batch.requireTeacher(name)
      try Baselines.checkWidth(teacher.imageEmbedding, expected: teacherWidth, name, "the teacher's image embedding")
      try Baselines.checkWidth(teacher.textEmbedding, expected: teacherWidth, name, "the teacher's text embedding")
      let projected = try clipkdHead.project(image: pass.image, text: pass.caption)  // [B, P_t]
      try parts.addWeighted(config.fdWeight, name) {
        try CLIPKDMethod.featureDistillation(
          studentImage: projected.image, studentText: projected.text, teacherImage: teacher.imageEmbedding,
          teacherText: teacher.textEmbedding)
      }
      try parts.addWeighted(config.iclWeight, name) {
        try CLIPKDMethod.interactiveContrastive(
          studentImage: projected.image, studentText: projected.text, teacherImage: teacher.imageEmbedding,
          teacherText: teacher.textEmbedding,
          scale: clipkdHead.iclLogitScale.exp())
      }
      try parts.addWeighted(config.crdWeight, name) {
        try CLIPKDMethod.relational(
          studentImage: pass.image, studentText: pass.caption, studentScale: student.logitScale.exp(),
          teacherImage: teacher.imageEmbedding,
          teacherText: teacher.textEmbedding, teacherScale: teacherLogitScale, temperature: config.crdTemperature)
      }
    }
    try parts.addWeighted(config.taskWeight, "task") { try Baselines.task(pass, student: student) }
    var step = try MethodStep(loss: parts, method: name)
    step.embeddings = (pass.image, pass.caption)
    return step
  }

  /// Part `fd`: MSE(ŝ_image, t̂_image) + MSE(ŝ_text, t̂_text), x̂ = x / ‖x‖, each MSE a mean over
  /// the [B, P_t] elements. Student embeddings already projected to the teacher's width.
  public static func featureDistillation(studentImage: Tensor, studentText: Tensor, teacherImage: Tensor, teacherText: Tensor)
    throws -> LossParts
  {
    let image = try Functional.mseLoss(Functional.normalize(studentImage), Functional.normalize(teacherImage.detach()))
    let text = try Functional.mseLoss(Functional.normalize(studentText), Functional.normalize(teacherText.detach()))
    var parts = LossParts()
    parts.add("fd", try image + text)
    return parts
  }

  /// Part `icl`: ½ [CE(s · ŝ_image t̂_textᵀ, diag) + CE(s · ŝ_text t̂_imageᵀ, diag)]: each student
  /// embedding must pick its own pair among the teacher's embeddings of the other modality.
  /// - Parameter scale: exp of the learned ICL logit scale (0-d).
  public static func interactiveContrastive(
    studentImage: Tensor, studentText: Tensor, teacherImage: Tensor, teacherText: Tensor, scale: Tensor
  ) throws -> LossParts {
    let labels = try Tensor.arange(studentImage.size(0), device: studentImage.device)
    let imageToText = try scale * Baselines.cosine(images: studentImage, texts: teacherText.detach())  // [B, B]
    let textToImage = try scale * Baselines.cosine(images: studentText, texts: teacherImage.detach())
    var parts = LossParts()
    parts.add("icl", try (Functional.crossEntropy(imageToText, labels) + Functional.crossEntropy(textToImage, labels)) * 0.5)
    return parts
  }

  /// Part `crd`: ½ [KL(P_T ‖ P_S) over texts per image + the same over images per text], P the
  /// softmax of each model's own scale · cos logits / T (KL averaged over rows, × T²).
  public static func relational(
    studentImage: Tensor, studentText: Tensor, studentScale: Tensor, teacherImage: Tensor, teacherText: Tensor,
    teacherScale: Double,
    temperature: Double
  ) throws -> LossParts {
    let both = try Baselines.batchDistributions(
      studentImage: studentImage, studentText: studentText, studentScale: studentScale, teacherImage: teacherImage,
      teacherText: teacherText, teacherScale: teacherScale, temperature: temperature, form: .kl)
    var parts = LossParts()
    parts.add("crd", try both["i2t"]! + both["t2i"]!)
    return parts
  }
}

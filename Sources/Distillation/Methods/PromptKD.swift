import Models
import Torch
import TorchNN

/// Settings of `promptkd`.
public struct PromptKDConfig: Codable, Equatable, Sendable {
  /// T of the logit distillation (the official scripts: 1).
  public var temperature = 1.0
  /// KD_WEIGHT: the official scripts use 1000 (ImageNet, Caltech, … ; 200 for three small sets):
  /// the loss is a mean over every logit, so it is small.
  public var weight = 1000.0
  /// λ of the student's own CLIP loss: 0, as PromptKD trains without labels (CE_WEIGHT 0).
  public var taskWeight = 0.0

  enum CodingKeys: String, CodingKey {
    case temperature, weight
    case taskWeight = "task_weight"
  }

  public init(temperature: Double = 1.0, weight: Double = 1000.0, taskWeight: Double = 0.0) {
    self.temperature = temperature
    self.weight = weight
    self.taskWeight = taskWeight
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = PromptKDConfig()
    temperature = try c.decode(.temperature, default: d.temperature)
    weight = try c.decode(.weight, default: d.weight)
    taskWeight = try c.decode(.taskWeight, default: d.taskWeight)
  }
}

/// `promptkd`: PromptKD (Li et al., CVPR 2024; github zhengli97/PromptKD, trainers/promptkd.py)
/// adapted to a dual-encoder student.
///
/// PromptKD distils a CLIP teacher into a student image encoder on unlabelled images, reusing
/// the teacher's text features as the student's classifier: student logits
/// s · norm(proj(student image)) · teacher textᵀ against the teacher's logits
/// s · teacher image · teacher textᵀ, with
///   L = KL(softmax(z_T / T) ‖ softmax(z_S / T)) summed · T² / (number of logits) · KD_WEIGHT.
/// For retrieval the "classes" are the batch's captions, and the text tower is trained the same
/// way against the teacher's image features (text→image); each direction is weighted ½. Both
/// use the teacher's logit scale (PromptKD's student shares CLIP's fixed scale with the teacher).
/// The student's own embeddings are compared with the teacher's directly when the joint widths
/// agree; otherwise through a linear map per modality (`head`, dropped at inference).
public final class PromptKDMethod: DistillationMethod {
  public let name = "promptkd"
  public let teacherInputs: Set<TeacherInput> = [.embeddings]
  public let config: PromptKDConfig
  public let projection: DSMDProjection?
  public var head: Module? { projection }
  /// exp of the teacher's logit scale.
  public let teacherLogitScale: Double

  public init(config: PromptKDConfig, context: MethodContext) throws {
    guard config.temperature > 0, config.temperature.isFinite else {
      throw MethodError("promptkd: temperature is \(config.temperature); it must be a positive number")
    }
    try Baselines.checkWeight(config.weight, name, "weight")
    try Baselines.checkWeight(config.taskWeight, name, "task_weight")
    self.config = config
    let width = context.teacher.config.projectionDim
    projection = context.student.projectionDim == width ? nil : try DSMDProjection(from: context.student.projectionDim, to: width)
    teacherLogitScale = try Baselines.logitScale(of: context.teacher)
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let teacher = try batch.requireTeacher(name)
    let image = try student.encodeImage(batch.pixels)
    let text = try student.encodeTextByLength(batch.ids, attentionMask: batch.attentionMask)
    var parts = LossParts()
    if config.weight != 0 {
      let (i, t) = (try projection.map { try $0.image(image) } ?? image, try projection.map { try $0.text(text) } ?? text)
      for (part, value) in try PromptKDMethod.kd(
        studentImage: i, studentText: t, teacherImage: teacher.imageEmbedding, teacherText: teacher.textEmbedding,
        scale: teacherLogitScale, temperature: config.temperature
      ).parts {
        parts.add("promptkd/\(part)", try value * config.weight)
      }
    }
    if config.taskWeight != 0 {
      parts.add("task/clip", try Losses.clip(images: image, texts: text, logitScale: student.logitScale) * config.taskWeight)
    }
    var step = try MethodStep(loss: parts, method: name)
    step.embeddings = (image, text)
    return step
  }

  /// Parts `i2t` (student images against the teacher's texts) and `t2i` (student texts against
  /// the teacher's images), each ½ · L_ukd, unweighted by KD_WEIGHT.
  public static func kd(
    studentImage: Tensor, studentText: Tensor, teacherImage: Tensor, teacherText: Tensor, scale: Double, temperature: Double
  ) throws -> LossParts {
    let (si, st) = (try Functional.normalize(studentImage), try Functional.normalize(studentText))
    let (ti, tt) = (try Functional.normalize(teacherImage.detach()), try Functional.normalize(teacherText.detach()))
    let teacherLogits = try ti.matmul(tt.transpose(0, 1)) * scale  // [B images, B texts]
    func ukd(_ student: Tensor, _ teacher: Tensor) throws -> Tensor {
      let logP = try (teacher / temperature).logSoftmax(dim: 1)
      let logQ = try (student / temperature).logSoftmax(dim: 1)
      let kl = try (logP.exp() * (logP - logQ)).sum()
      return try kl * (temperature * temperature / Double(student.count))
    }
    var parts = LossParts()
    parts.add("i2t", try ukd(si.matmul(tt.transpose(0, 1)) * scale, teacherLogits) * 0.5)
    parts.add("t2i", try ukd(st.matmul(ti.transpose(0, 1)) * scale, teacherLogits.transpose(0, 1)) * 0.5)
    return parts
  }
}

import Models
import Torch
import TorchNN

/// Settings of `kd`: Hinton knowledge distillation on the batch's image↔text similarity
/// distributions.
public struct KDConfig: Codable, Equatable, Sendable {
  /// T of softmax(logits / T); the loss is scaled by T² (Hinton).
  public var temperature = 4.0
  /// `kl` (Hinton) or `soft_ce` (open_clip's distillation loss).
  public var form: SoftTargetForm = .kl
  /// λ of the distillation term (the mean of its image→text and text→image directions).
  public var weight = 1.0
  /// λ of the student's own CLIP loss.
  public var taskWeight = 1.0

  enum CodingKeys: String, CodingKey {
    case temperature, form, weight
    case taskWeight = "task_weight"
  }

  public init(temperature: Double = 4.0, form: SoftTargetForm = .kl, weight: Double = 1.0, taskWeight: Double = 1.0) {
    self.temperature = temperature
    self.form = form
    self.weight = weight
    self.taskWeight = taskWeight
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = KDConfig()
    temperature = try c.decode(.temperature, default: d.temperature)
    form = try c.decode(.form, default: d.form)
    weight = try c.decode(.weight, default: d.weight)
    taskWeight = try c.decode(.taskWeight, default: d.taskWeight)
  }
}

/// `kd`: the student's batch similarity distributions (image→text rows and text→image columns
/// of scale · cos) follow the teacher's, softened by T (Hinton et al. 2015), plus the task loss.
///
/// The teacher's logits use the teacher's own logit scale, read once from `MethodContext.teacher`
/// (it is frozen), so a cache of teacher embeddings suffices at training time.
///
/// `tinyclip` is this method under its own name and defaults (`TinyCLIPConfig`).
public final class KDMethod: DistillationMethod {
  public let name: String
  public let teacherInputs: Set<TeacherInput> = [.embeddings]
  public var head: Module? { nil }
  public let config: KDConfig
  /// exp of the teacher's logit scale.
  public let teacherLogitScale: Double
  /// `tinyclip`: the teacher the student inherits its weights from (`WeightInheritance`).
  public var inheritFrom: CLIPModel?

  public init(name: String = "kd", config: KDConfig, context: MethodContext) throws {
    self.name = name
    guard config.temperature > 0, config.temperature.isFinite else {
      throw MethodError("\(name): temperature is \(config.temperature); it must be a positive number")
    }
    try Baselines.checkWeight(config.weight, name, "weight")
    try Baselines.checkWeight(config.taskWeight, name, "task_weight")
    self.config = config
    teacherLogitScale = try Baselines.logitScale(of: context.teacher)
  }

  public func prepare(student: CLIPModel) throws {
    if let teacher = inheritFrom { try WeightInheritance.inherit(student: student, from: teacher) }
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let pass = try StudentPass(student: student, batch: batch)
    var parts = LossParts()
    try parts.addWeighted(config.weight, name) {
      let teacher = try batch.requireTeacher(name)
      return try KDMethod.kd(
        studentImage: pass.image, studentText: pass.caption, studentScale: student.logitScale.exp(),
        teacherImage: teacher.imageEmbedding,
        teacherText: teacher.textEmbedding, teacherScale: teacherLogitScale, temperature: config.temperature, form: config.form)
    }
    try parts.addWeighted(config.taskWeight, "task") { try Baselines.task(pass, student: student) }
    var step = try MethodStep(loss: parts, method: name)
    step.embeddings = (pass.image, pass.caption)
    return step
  }

  /// Parts `i2t`, `t2i`: ½ · T² · D(P_T ‖ P_S) per direction, P = softmax(scale · cos / T) over
  /// the batch, D = KL or soft cross-entropy (`Baselines.softTargets`).
  public static func kd(
    studentImage: Tensor, studentText: Tensor, studentScale: Tensor, teacherImage: Tensor, teacherText: Tensor,
    teacherScale: Double,
    temperature: Double, form: SoftTargetForm
  ) throws -> LossParts {
    try Baselines.batchDistributions(
      studentImage: studentImage, studentText: studentText, studentScale: studentScale, teacherImage: teacherImage,
      teacherText: teacherText, teacherScale: teacherScale, temperature: temperature, form: form)
  }
}

import Models
import Torch
import TorchNN

/// Settings of `tinyclip`: affinity mimicking.
public struct TinyCLIPConfig: Codable, Equatable, Sendable {
  /// TinyCLIP compares the affinities at the models' own logit scales (T = 1); kept as a knob.
  public var temperature = 1.0
  /// TinyCLIP's loss is the cross-entropy of the student's affinities against the teacher's.
  public var form: SoftTargetForm = .softCE
  /// λ of the affinity-mimicking term (the mean of image→text and text→image).
  public var weight = 1.0
  public var taskWeight = 1.0

  enum CodingKeys: String, CodingKey {
    case temperature, form, weight
    case taskWeight = "task_weight"
  }

  public init(temperature: Double = 1.0, form: SoftTargetForm = .softCE, weight: Double = 1.0, taskWeight: Double = 1.0) {
    self.temperature = temperature
    self.form = form
    self.weight = weight
    self.taskWeight = taskWeight
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = TinyCLIPConfig()
    temperature = try c.decode(.temperature, default: d.temperature)
    form = try c.decode(.form, default: d.form)
    weight = try c.decode(.weight, default: d.weight)
    taskWeight = try c.decode(.taskWeight, default: d.taskWeight)
  }
}

/// `tinyclip`: TinyCLIP's affinity mimicking (Wu et al. 2023). The image→text affinity
/// A = softmax_j(scale · cos(image_i, text_j)) and its text→image counterpart, student against
/// teacher, each model at its own logit scale; plus the task loss. (TinyCLIP's weight inheritance
/// is a way to initialise the student, not a loss, and is not part of this method.)
///
/// The loss is Hinton KD at T = 1 in its soft-cross-entropy form; what differs from `kd` is the
/// defaults, and that no temperature reshapes the teacher's affinities.
public final class TinyCLIPMethod: DistillationMethod {
  public let name = "tinyclip"
  public let teacherInputs: Set<TeacherInput> = [.embeddings]
  public var head: Module? { nil }
  public let config: TinyCLIPConfig
  /// exp of the teacher's logit scale.
  public let teacherLogitScale: Double

  public init(config: TinyCLIPConfig, context: MethodContext) throws {
    guard config.temperature > 0, config.temperature.isFinite else {
      throw MethodError("tinyclip: temperature is \(config.temperature); it must be a positive number")
    }
    try Baselines.checkWeight(config.weight, name, "weight")
    try Baselines.checkWeight(config.taskWeight, name, "task_weight")
    self.config = config
    teacherLogitScale = try Baselines.logitScale(of: context.teacher)
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let pass = try StudentPass(student: student, batch: batch)
    var parts = LossParts()
    try parts.addWeighted(config.weight, "tinyclip") {
      let teacher = try batch.requireTeacher(name)
      return try TinyCLIPMethod.affinity(
        studentImage: pass.image, studentText: pass.caption, studentScale: student.logitScale.exp(),
        teacherImage: teacher.imageEmbedding,
        teacherText: teacher.textEmbedding, teacherScale: teacherLogitScale, temperature: config.temperature, form: config.form)
    }
    try parts.addWeighted(config.taskWeight, "task") { try Baselines.task(pass, student: student) }
    return try MethodStep(loss: parts, method: name)
  }

  /// Parts `i2t`, `t2i`: ½ · T² · D(A_T ‖ A_S) for the image→text and text→image affinities.
  public static func affinity(
    studentImage: Tensor, studentText: Tensor, studentScale: Tensor, teacherImage: Tensor, teacherText: Tensor,
    teacherScale: Double,
    temperature: Double = 1, form: SoftTargetForm = .softCE
  ) throws -> LossParts {
    try Baselines.batchDistributions(
      studentImage: studentImage, studentText: studentText, studentScale: studentScale, teacherImage: teacherImage,
      teacherText: teacherText, teacherScale: teacherScale, temperature: temperature, form: form)
  }
}

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
  /// Start the student from the teacher's leading layers, heads and channels (TinyCLIP's manual
  /// weight inheritance, `WeightInheritance`); false starts it from scratch like the others.
  public var inherit = true

  enum CodingKeys: String, CodingKey {
    case temperature, form, weight, inherit
    case taskWeight = "task_weight"
  }

  public init(
    temperature: Double = 1.0, form: SoftTargetForm = .softCE, weight: Double = 1.0, taskWeight: Double = 1.0, inherit: Bool = true
  ) {
    self.temperature = temperature
    self.form = form
    self.weight = weight
    self.taskWeight = taskWeight
    self.inherit = inherit
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = TinyCLIPConfig()
    temperature = try c.decode(.temperature, default: d.temperature)
    form = try c.decode(.form, default: d.form)
    weight = try c.decode(.weight, default: d.weight)
    taskWeight = try c.decode(.taskWeight, default: d.taskWeight)
    inherit = try c.decode(.inherit, default: d.inherit)
  }
}

extension TinyCLIPConfig {
  /// The same settings for `KDMethod`, which runs `tinyclip`.
  var asKD: KDConfig { KDConfig(temperature: temperature, form: form, weight: weight, taskWeight: taskWeight) }
}

/// `tinyclip`: TinyCLIP (Wu et al. 2023): manual weight inheritance, then affinity mimicking.
/// The student starts from the teacher's leading layers, heads and channels
/// (`WeightInheritance`, `inherit`); the image→text affinity A = softmax_j(scale · cos(image_i,
/// text_j)) and its text→image counterpart are distilled, student against teacher, each model
/// at its own logit scale; plus the task loss.
///
/// The loss is Hinton KD at T = 1 in its soft-cross-entropy form, so the method is `KDMethod`
/// under the name `tinyclip` with `TinyCLIPConfig`'s defaults and the teacher to inherit from.
public enum TinyCLIPMethod {
  public static func make(config: TinyCLIPConfig, context: MethodContext) throws -> KDMethod {
    let method = try KDMethod(name: "tinyclip", config: config.asKD, context: context)
    if config.inherit {
      try WeightInheritance.check(student: context.student, teacher: context.teacher.config)
      method.inheritFrom = context.teacher
    }
    return method
  }

  /// Parts `i2t`, `t2i`: ½ · T² · D(A_T ‖ A_S) for the image→text and text→image affinities.
  public static func affinity(
    studentImage: Tensor, studentText: Tensor, studentScale: Tensor, teacherImage: Tensor, teacherText: Tensor,
    teacherScale: Double, temperature: Double = 1, form: SoftTargetForm = .softCE
  ) throws -> LossParts {
    try KDMethod.kd(
      studentImage: studentImage, studentText: studentText, studentScale: studentScale, teacherImage: teacherImage,
      teacherText: teacherText, teacherScale: teacherScale, temperature: temperature, form: form)
  }
}

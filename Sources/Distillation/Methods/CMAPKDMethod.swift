import Models
import Pyramid
import Torch
import TorchNN

/// CMAPKD under the common method interface: the pyramid adapters, bridge and ALSN are its head.
public final class CMAPKDMethod: DistillationMethod {
  public let name = "cmapkd"
  public let teacherInputs: Set<TeacherInput> = [.embeddings, .visionMaps, .language, .shared]
  public let method: CMAPKD
  public let cmapkdHead: CMAPKDHead
  public var head: Module? { cmapkdHead }

  public init(config: CMAPKDConfig, context: MethodContext) throws {
    method = CMAPKD(config)
    cmapkdHead = try CMAPKDHead(student: context.student, teacher: context.teacher)
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let step = try method.step(
      student: student, head: cmapkdHead, teacher: try batch.requireTeacher(name), pixels: batch.pixels, ids: batch.ids,
      attentionMask: batch.attentionMask, stage: batch.stage)
    let entropies = try step.weights.entropies()
    let means = try step.weights.means()
    var metrics = ["alsn/entropy_vision": entropies.vision, "alsn/entropy_language": entropies.language, "alsn/entropy_coupling": entropies.coupling]
    for level in Level.allCases {
      metrics["alsn/\(level.visionName)"] = means.vision[level.rawValue]
      metrics["alsn/\(level.languageName)"] = means.language[level.rawValue]
    }
    return MethodStep(loss: step.loss, total: step.total, levelWeights: step.weights, metrics: metrics)
  }
}

import Models
import Pyramid
import Torch
import TorchNN

/// CMAPKD under the common method interface: the pyramid adapters, bridge and ALSN are its
/// head; in `gating` and `policy` selection its `SelectorTrainer` trains the ALSN after each
/// optimizer step from the held-out batch the runner provides (`StepContext.heldOut`).
public final class CMAPKDMethod: DistillationMethod {
  public let name = "cmapkd"
  public let teacherInputs: Set<TeacherInput> = [.embeddings, .visionMaps, .language, .shared]
  public let method: CMAPKD
  public let cmapkdHead: CMAPKDHead
  /// Trains the ALSN (`gating`, `policy`); nil for `uniform` and `manual` weights.
  public let selector: SelectorTrainer?
  /// The ALSN's parameters are in the head (checkpoints carry them) but never receive a
  /// gradient from the loss: only the selector's own optimizer moves them.
  public var head: Module? { cmapkdHead }

  public init(config: CMAPKDConfig, context: MethodContext) throws {
    try config.validate()
    method = CMAPKD(config)
    cmapkdHead = try CMAPKDHead(student: context.student, teacher: context.teacher)
    switch config.selection {
    case .gating, .policy: selector = try SelectorTrainer(cmapkd: method, alsn: cmapkdHead.alsn)
    case .uniform, .manual: selector = nil
    }
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let teacher = try batch.requireTeacher(name)
    let step: CMAPKDStep
    if let selector, method.config.selection == .policy {
      let side = try method.forward(
        student: student, head: cmapkdHead, teacher: teacher, pixels: batch.pixels, ids: batch.ids,
        attentionMask: batch.attentionMask)
      let weights = try selector.policyWeights(head: cmapkdHead, side: side, batch: batch)
      step = try method.losses(side, teacher: teacher, weights: weights, stage: batch.stage)
    } else {
      step = try method.step(
        student: student, head: cmapkdHead, teacher: teacher, pixels: batch.pixels, ids: batch.ids,
        attentionMask: batch.attentionMask, stage: batch.stage)
    }
    let entropies = try step.weights.entropies()
    let means = try step.weights.means()
    var metrics = [
      "alsn/entropy_vision": entropies.vision, "alsn/entropy_language": entropies.language,
      "alsn/entropy_coupling": entropies.coupling,
    ]
    for level in Level.allCases {
      metrics["alsn/\(level.visionName)"] = means.vision[level.rawValue]
      metrics["alsn/\(level.languageName)"] = means.language[level.rawValue]
    }
    // The selector's latest update (loss, credits or reward) rides along with the next step.
    metrics.merge(selector?.metrics ?? [:]) { current, _ in current }
    return MethodStep(loss: step.loss, total: step.total, levelWeights: step.weights, metrics: metrics)
  }

  public func afterStep(student: CLIPModel, batch: DistillBatch, result: MethodStep, context: StepContext) throws {
    guard let selector else { return }
    guard let heldOut = context.heldOut else {
      throw MethodError(
        "method 'cmapkd': selection '\(method.config.selection.rawValue)' trains the ALSN on held-out pairs, "
          + "but the runner gave no held-out batch (StepContext.heldOut); provide one or use selection 'uniform' / 'manual'")
    }
    try selector.afterStep(student: student, head: cmapkdHead, batch: batch, heldOut: heldOut, learningRate: context.learningRate)
  }

  public func stateTensors() throws -> [String: Tensor] { try selector?.stateTensors() ?? [:] }

  public func loadState(_ tensors: [String: Tensor]) throws {
    guard let selector else { return }
    try selector.loadState(tensors)
  }
}

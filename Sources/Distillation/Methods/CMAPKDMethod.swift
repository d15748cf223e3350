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

  /// - Parameter alwaysShared: compute the levels' shared-space vectors even when no CMAPKD term
  ///   reads them (`multiteacher` on CMAPKD does).
  public init(config: CMAPKDConfig, context: MethodContext, alwaysShared: Bool = false) throws {
    try config.validate()
    var method = try CMAPKD(config, teacher: context.teacher)
    method.alwaysShared = alwaysShared
    if config.needsTeacherSample {
      guard let sample = context.teacherSample, let images = sample.images.first, let texts = sample.texts.first else {
        throw MethodError(
          "method 'cmapkd': embedding_loss 'unified' standardises the teacher's embeddings by PHI-S, but the runner gave no sample of them (MethodContext.teacherSample)")
      }
      // Both modalities together: one map keeps the image–text geometry (as `multiteacher` fits it).
      method.standardizer = try PHISStandardizer(fitting: Tensor.cat([images, texts], dim: 0))
    }
    self.method = method
    cmapkdHead = try CMAPKDHead(
      student: context.student, teacher: context.teacher, embeddingLoss: config.embeddingLoss, bridges: method.needsShared,
      adapter: config.pyramid.adapter)
    switch config.selection {
    case .gating, .policy: selector = try SelectorTrainer(cmapkd: method, alsn: cmapkdHead.alsn)
    case .uniform, .manual: selector = nil
    }
  }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    try lossAndStep(student: student, batch: batch).result
  }

  /// The loss, and CMAPKD's step with the student's side (levels, shared-space vectors, weights).
  public func lossAndStep(student: CLIPModel, batch: DistillBatch) throws -> (result: MethodStep, step: CMAPKDStep) {
    let teacher = try batch.requireTeacher(name)
    let config = method.config
    let towers = try method.towers(student: student, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.attentionMask)
    let active = config.activeLevels(batch.stage)
    let weights: LevelWeights
    if let selector, config.selection == .policy {
      let cells = config.pyramid.levelSizes(grid: teacher.grid).map { $0.0 * $0.1 }
      weights = try selector.policyWeights(
        image: towers.image, text: towers.caption, active: active, step: batch.step, stage: batch.stage,
        levelCosts: (
          LevelCost.vision(levelCells: cells),
          LevelCost.language(tokens: batch.ids.size(1), window: config.pyramid.phraseWindow)
        ))
    } else {
      weights = try method.levelWeights(head: cmapkdHead, image: towers.image, text: towers.caption, active: active)
    }
    let step = try method.step(
      student: student, head: cmapkdHead, towers: towers, teacher: teacher, weights: weights, active: active)
    var result = MethodStep(
      loss: step.loss, total: step.total, levelWeights: step.weights,
      metrics: try CMAPKDMethod.selectionMetrics(step).merging(selector?.metrics ?? [:]) { current, _ in current })
    result.embeddings = (towers.image, towers.caption)
    return (result, step)
  }

  /// What the ALSN chose this step: batch-mean weight of each level, mean row entropies, the
  /// spread of each level's weight across samples (std over the batch, averaged over levels:
  /// 0 for any weighting shared by the whole batch), and how many levels ran.
  static func selectionMetrics(_ step: CMAPKDStep) throws -> [String: Double] {
    let entropies = try step.weights.entropies()
    let means = try step.weights.means()
    func spread(_ w: Tensor) throws -> Double {
      w.size(0) > 1 ? try w.detach().flatten(start: 1).std(dims: [0]).mean().item() : 0
    }
    var metrics = [
      "alsn/entropy_vision": entropies.vision, "alsn/entropy_language": entropies.language,
      "alsn/entropy_coupling": entropies.coupling,
      "alsn/spread_vision": try spread(step.weights.vision), "alsn/spread_language": try spread(step.weights.language),
      "alsn/spread_coupling": try spread(step.weights.coupling),
      "alsn/levels_computed": Double(step.computed.vision.count + step.computed.language.count),
    ]
    for level in Level.allCases {
      metrics["alsn/\(level.visionName)"] = means.vision[level.rawValue]
      metrics["alsn/\(level.languageName)"] = means.language[level.rawValue]
    }
    return metrics
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

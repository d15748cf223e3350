import Pyramid

/// One stage of progressive training.
public enum Stage: String, Codable, Sendable, CaseIterable {
  /// Only the global levels P5 / L4.
  case coarse
  /// P4–P5 / L3–L4.
  case medium
  /// Every level.
  case fine
  /// Every level; the student's learning rate is scaled by `refinement_lr_scale` (0 freezes
  /// it) while the ALSN keeps learning, on every step.
  case refinement

  public var activeLevels: Set<Level> {
    switch self {
    case .coarse: [.global]
    case .medium: [.deep, .global]
    case .fine, .refinement: Set(Level.allCases)
    }
  }
}

/// Epochs per stage (reference 5 / 5 / 10 / 0), or one stage over every level — the ablation.
public struct ProgressiveSchedule: Codable, Equatable, Sendable {
  public var coarseEpochs: Int
  public var mediumEpochs: Int
  public var fineEpochs: Int
  public var refinementEpochs: Int
  /// When false, every epoch trains all levels (the one-stage ablation).
  public var progressive: Bool
  /// The factor on the student's (and head's) learning rate during `refinement`.
  public var refinementLearningRateScale: Double

  enum CodingKeys: String, CodingKey {
    case coarseEpochs = "coarse_epochs", mediumEpochs = "medium_epochs", fineEpochs = "fine_epochs"
    case refinementEpochs = "refinement_epochs", progressive, refinementLearningRateScale = "refinement_lr_scale"
  }

  public init(
    coarseEpochs: Int = 5, mediumEpochs: Int = 5, fineEpochs: Int = 10, refinementEpochs: Int = 0, progressive: Bool = true,
    refinementLearningRateScale: Double = 0.1
  ) {
    self.refinementLearningRateScale = refinementLearningRateScale
    self.coarseEpochs = coarseEpochs
    self.mediumEpochs = mediumEpochs
    self.fineEpochs = fineEpochs
    self.refinementEpochs = refinementEpochs
    self.progressive = progressive
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = ProgressiveSchedule()
    coarseEpochs = try c.decode(.coarseEpochs, default: d.coarseEpochs)
    mediumEpochs = try c.decode(.mediumEpochs, default: d.mediumEpochs)
    fineEpochs = try c.decode(.fineEpochs, default: d.fineEpochs)
    refinementEpochs = try c.decode(.refinementEpochs, default: d.refinementEpochs)
    progressive = try c.decode(.progressive, default: d.progressive)
    refinementLearningRateScale = try c.decode(.refinementLearningRateScale, default: d.refinementLearningRateScale)
  }

  /// The factor on the student's learning rate at a stage.
  public func learningRateScale(_ stage: Stage) -> Double { stage == .refinement ? refinementLearningRateScale : 1 }

  public var totalEpochs: Int { coarseEpochs + mediumEpochs + fineEpochs + refinementEpochs }

  /// The stage of a (0-based) epoch; past the end the last stage continues.
  public func stage(atEpoch epoch: Int) -> Stage {
    guard progressive else { return .fine }
    var remaining = epoch
    for (stage, epochs) in [
      (Stage.coarse, coarseEpochs), (.medium, mediumEpochs), (.fine, fineEpochs), (.refinement, refinementEpochs),
    ] {
      if remaining < epochs { return stage }
      remaining -= epochs
    }
    return refinementEpochs > 0 ? .refinement : .fine
  }

  /// The stage at a fractional position in training (for step-based budgets): epoch = progress · total.
  public func stage(atProgress progress: Double) -> Stage {
    stage(atEpoch: Int((progress * Double(totalEpochs)).rounded(.down)))
  }
}

import Foundation
import Pyramid
import Torch
import TorchNN

/// How the per-sample level weights are chosen (SPEC §4); every mode is selectable in config
/// so ablations can compare them.
public enum SelectionMode: String, Codable, Sendable, CaseIterable {
  /// Equal weights over the active levels.
  case uniform
  /// Fixed weights from config.
  case manual
  /// The ALSN's differentiable weights, trained on a held-out signal (never on the loss they weight).
  case gating
  /// The ALSN as a stochastic policy trained with REINFORCE on held-out progress.
  case policy
}

/// Per-sample weights for one batch.
public struct LevelWeights {
  /// Vision levels P2–P5 [B, 4] and language levels L1–L4 [B, 4]; each row sums to 1 over active levels.
  public var vision: Tensor
  public var language: Tensor
  /// Cross-modal coupling α [B, 4, 4] (vision × language); each sample's active pairs sum to 1.
  public var coupling: Tensor

  public init(vision: Tensor, language: Tensor, coupling: Tensor) {
    self.vision = vision
    self.language = language
    self.coupling = coupling
  }

  /// Mean Shannon entropy (nats) of the rows of each weight tensor, for logging and collapse checks.
  public func entropies() throws -> (vision: Double, language: Double, coupling: Double) {
    (
      try LevelWeights.meanEntropy(vision.detach()).item(), try LevelWeights.meanEntropy(language.detach()).item(),
      try LevelWeights.meanEntropy(coupling.detach()).item()
    )
  }

  /// The mean over samples of each row's entropy (nats), differentiable: w [B, …] → 0-d.
  /// Levels with weight exactly 0 (inactive) contribute nothing.
  public static func meanEntropy(_ w: Tensor) throws -> Tensor {
    let p = try w.flatten(start: 1)
    return try (p * p.clamp(min: 1e-12).log()).sum(dim: 1).neg().mean()
  }

  /// The same weights cut from the autograd graph.
  public func detached() throws -> LevelWeights {
    LevelWeights(vision: try vision.detach(), language: try language.detach(), coupling: try coupling.detach())
  }

  /// Weights in proportion to per-level actions in [0, 1] (the `policy` mode's actions):
  /// w = a / Σ a over the active levels, exactly 0 elsewhere. Unlike the gating softmax, any
  /// ratio between two levels is reachable, without a temperature to learn.
  /// - Parameters:
  ///   - actions: [B, 24]: 4 vision, 4 language and 16 coupling actions (vision × language, row-major).
  public static func proportional(actions: Tensor, activeVision: Set<Level>, activeLanguage: Set<Level>) throws -> LevelWeights {
    func share(_ a: Tensor, _ mask: Tensor) throws -> Tensor {
      let kept = try a * mask
      return try kept / kept.sum(dim: 1, keepDim: true).clamp(min: 1e-12)
    }
    let (v, l, c) = try ALSN.split(actions)
    return LevelWeights(
      vision: try share(v, LevelMask.vector(activeVision, like: v)),
      language: try share(l, LevelMask.vector(activeLanguage, like: l)),
      coupling: try share(c, LevelMask.pairs(activeVision, activeLanguage, like: c)).view([-1, 4, 4]))
  }

  /// Batch-mean weight of each level, for plots of the weights over training.
  public func means() throws -> (vision: [Double], language: [Double]) {
    (try vision.detach().mean(dim: 0).doubles(), try language.detach().mean(dim: 0).doubles())
  }
}

/// The Adaptive Layer Selection Network: an MLP encoder (2D → 512 → 256, dropout 0.1) over a
/// sample's student image and text features, with three heads — vision level weights (4),
/// language level weights (4), a 4×4 cross-modal coupling — each normalized by a softmax
/// with a learnable temperature over the active levels. No sigmoid comes first: squashing the
/// logits into [0, 1] before the softmax would cap the ratio of any two weights at e^{1/T}
/// and keep the weights near uniform whatever the selector learns.
///
/// ```swift
/// let alsn = try ALSN(featureWidth: 256)
/// let w = try alsn(image: img, text: txt, activeVision: [.deep, .global], activeLanguage: [.deep, .global])
/// ```
public final class ALSN: Module {
  public let encoder1: Linear
  public let encoder2: Linear
  public let dropout: Dropout
  public let visionHead: Linear
  public let languageHead: Linear
  public let couplingHead: Linear
  /// log of the softmax temperature (learnable; starts at T = 1).
  public let logTemperature: Tensor

  public init(featureWidth: Int, hidden: (Int, Int) = (512, 256), dropout: Double = 0.1) throws {
    encoder1 = try Linear(2 * featureWidth, hidden.0)
    encoder2 = try Linear(hidden.0, hidden.1)
    self.dropout = try Dropout(dropout)
    visionHead = try Linear(hidden.1, 4)
    languageHead = try Linear(hidden.1, 4)
    couplingHead = try Linear(hidden.1, 16)
    logTemperature = try parameter(Tensor.zeros([]))
    super.init()
  }

  /// The heads' logits side by side: [B, 24] = vision (4), language (4), coupling (16,
  /// vision × language). The `policy` mode uses them as the mean of its logit-normal policy.
  public func logits(image: Tensor, text: Tensor) throws -> Tensor {
    // The selector reads the student's features but must not reshape them: detach its input.
    let x = try Tensor.cat([image.detach(), text.detach()], dim: 1)  // [B, 2D]
    let h = try dropout(encoder2(dropout(encoder1(x).gelu())).gelu())  // [B, 256]
    return try Tensor.cat([visionHead(h), languageHead(h), couplingHead(h)], dim: 1)
  }

  /// The heads' logits before normalization: [B, 4], [B, 4], [B, 16].
  public func scores(image: Tensor, text: Tensor) throws -> (vision: Tensor, language: Tensor, coupling: Tensor) {
    try ALSN.split(logits(image: image, text: text))
  }

  /// [B, 24] → vision [B, 4], language [B, 4], coupling [B, 16].
  public static func split(_ x: Tensor) throws -> (vision: Tensor, language: Tensor, coupling: Tensor) {
    (
      try x.narrow(dim: 1, start: 0, length: 4), try x.narrow(dim: 1, start: 4, length: 4),
      try x.narrow(dim: 1, start: 8, length: 16)
    )
  }

  /// [1, 24] with 1 at the heads' active entries (the inverse layout of `split`).
  public static func activeMask(activeVision: Set<Level>, activeLanguage: Set<Level>, like x: Tensor) throws -> Tensor {
    try Tensor.cat(
      [
        LevelMask.vector(activeVision, like: x), LevelMask.vector(activeLanguage, like: x),
        LevelMask.pairs(activeVision, activeLanguage, like: x),
      ],
      dim: 1)
  }

  /// Weights from given logits: softmax(logit / T) over the active levels only.
  public func normalize(
    vision: Tensor, language: Tensor, coupling: Tensor, activeVision: Set<Level>, activeLanguage: Set<Level>
  ) throws -> LevelWeights {
    let temperature = try logTemperature.exp()
    // With every level of a modality active (the fine stage) there is nothing to mask: no mask
    // is built and the softmax is plain (the same values).
    let partialVision = activeVision.count < Level.allCases.count
    let partialLanguage = activeLanguage.count < Level.allCases.count
    return LevelWeights(
      vision: try maskedSoftmax(vision / temperature, mask: partialVision ? LevelMask.vector(activeVision, like: vision) : nil),
      language: try maskedSoftmax(
        language / temperature, mask: partialLanguage ? LevelMask.vector(activeLanguage, like: language) : nil),
      coupling: try maskedSoftmax(
        coupling / temperature,
        mask: partialVision || partialLanguage ? LevelMask.pairs(activeVision, activeLanguage, like: coupling) : nil
      ).view([-1, 4, 4]))
  }

  public func callAsFunction(
    image: Tensor, text: Tensor, activeVision: Set<Level>, activeLanguage: Set<Level>
  ) throws -> LevelWeights {
    let s = try scores(image: image, text: text)
    return try normalize(
      vision: s.vision, language: s.language, coupling: s.coupling, activeVision: activeVision, activeLanguage: activeLanguage)
  }
}

/// Softmax over the last dimension where `mask` is 1; exactly 0 elsewhere. No mask: a plain softmax.
func maskedSoftmax(_ x: Tensor, mask: Tensor?) throws -> Tensor {
  guard let mask else { return try x.softmax(dim: -1) }
  return try x.maskedFill(mask.eq(0), -Double.infinity).softmax(dim: -1)
}

/// Masks of the active levels.
enum LevelMask {
  /// [1, 4] with 1 at active levels.
  static func vector(_ active: Set<Level>, like x: Tensor) throws -> Tensor {
    try Tensor(Level.allCases.map { active.contains($0) ? Float(1) : 0 }, shape: [1, 4]).to(x.device, x.dtype)
  }

  /// [1, 16] with 1 at active (vision, language) pairs, row-major vision × language.
  static func pairs(_ vision: Set<Level>, _ language: Set<Level>, like x: Tensor) throws -> Tensor {
    let values = Level.allCases.flatMap { v in
      Level.allCases.map { l in vision.contains(v) && language.contains(l) ? Float(1) : 0 }
    }
    return try Tensor(values, shape: [1, 16]).to(x.device, x.dtype)
  }
}

/// Weights that do not depend on the sample: uniform over active levels, or manual.
public enum FixedWeights {
  /// - Parameters:
  ///   - vision, language: per-level weights (4 each); nil = uniform. Renormalized over active levels.
  ///   - coupling: 16 weights, row-major vision × language; nil = uniform over active pairs.
  public static func make(
    batch: Int, vision: [Double]? = nil, language: [Double]? = nil, coupling: [Double]? = nil,
    activeVision: Set<Level>, activeLanguage: Set<Level>, device: Device = .cpu
  ) throws -> LevelWeights {
    func normalized(_ values: [Double], active: [Bool]) throws -> [Float] {
      let kept = zip(values, active).map { $1 ? max($0, 0) : 0 }
      let total = kept.reduce(0, +)
      guard total > 0 else { throw PyramidError("level weights \(values) give no weight to any active level") }
      return kept.map { Float($0 / total) }
    }
    let activeV = Level.allCases.map { activeVision.contains($0) }
    let activeL = Level.allCases.map { activeLanguage.contains($0) }
    let activePairs = activeV.flatMap { v in activeL.map { v && $0 } }
    let v = try normalized(vision ?? [1, 1, 1, 1], active: activeV)
    let l = try normalized(language ?? [1, 1, 1, 1], active: activeL)
    let c = try normalized(coupling ?? Array(repeating: 1, count: 16), active: activePairs)
    return LevelWeights(
      vision: try Tensor(v, shape: [1, 4]).expand([batch, 4]).to(device),
      language: try Tensor(l, shape: [1, 4]).expand([batch, 4]).to(device),
      coupling: try Tensor(c, shape: [1, 4, 4]).expand([batch, 4, 4]).to(device))
  }
}

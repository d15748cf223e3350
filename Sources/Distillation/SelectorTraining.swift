import Foundation
import Models
import Pyramid
import Torch
import TorchNN
import TorchOptim

// How the ALSN learns in the `gating` and `policy` modes (SPEC §4).
//
// The selector is never trained on the loss its weights multiply: that objective is lowest
// when all weight sits on the level that is already easiest, so the selector collapses onto
// it whether or not that level teaches the student anything. Both modes learn instead from
// the student's progress on a fixed held-out batch, measured by the held-out loss L_h: the
// student's own CLIP loss on held-out image–text pairs (symmetric InfoNCE of its image and
// text embeddings at the fixed temperature τ of the config). It is the deployed model's
// retrieval objective: it needs none of the head (dropped at inference) and does not move
// with the learnable logit scale, so only real changes of the student's embeddings lower it.
//
// The signal is per sample: one credit for every (sample, level) term, so the selector can
// learn that one sample needs P2 and another L3. A credit shared by the whole batch would
// train one weighting for every input, a fixed weighting rather than a selection.

/// The one-step look-ahead credit of every (sample, term) pair (learning to reweight).
///
/// Give each sample b's weighted term k a perturbation weight ε_bk, take a virtual SGD step
/// θ' = θ − η ∇_θ Σ ε_bk ℓ_bk, and measure the held-out loss after it. The credit is
/// c_bk = −∂L_h(θ')/∂ε_bk at ε = 0. There θ' = θ, so the derivative is exact at first
/// order and equals η·⟨∇L_h(θ), ∇ℓ_bk(θ)⟩: η is dropped (credits are normalised before use).
/// It is computed by double backward: g(ε) = ∇_θ Σ ε_bk ℓ_bk with the graph kept, then
/// ∂⟨g(ε), ∇L_h⟩/∂ε — one backward with `createGraph` and one through it, not one per term.
public enum LookAheadCredit {
  /// - Parameters:
  ///   - parameters: θ, the parameters of the virtual step.
  ///   - heldOutGradient: ∇_θ L_h, one entry per parameter (nil where L_h does not reach it).
  ///   - terms: Σ_bk ε_bk ℓ_bk for a given ε [B, K] (with whatever λ and 1/B the real loss has).
  ///   - shape: [B, K].
  /// - Returns: c [B, K], float64.
  public static func perSample(
    parameters: [Tensor], heldOutGradient: [Tensor?], shape: [Int], terms: (Tensor) throws -> Tensor?
  ) throws -> Tensor {
    try Torch.enableGrad {
      let device = parameters.first?.device ?? .cpu
      let epsilon = try Tensor.zeros(shape, dtype: parameters.first?.dtype ?? .float32, device: device).requiresGrad(true)
      // No credit (no weighted term): zeros, on the parameters' device like a real credit.
      guard let weighted = try terms(epsilon), weighted.requiresGrad else {
        return try Tensor.zeros(shape, dtype: .float64, device: device)
      }
      let g = try Torch.gradients(of: [weighted], withRespectTo: parameters, retainGraph: true, createGraph: true)
      var inner: [Tensor] = []
      for (gradient, direction) in zip(g, heldOutGradient) {
        if let gradient, let direction, gradient.requiresGrad { inner.append(try (gradient * direction.detach()).sum()) }
      }
      guard let first = inner.first else { return try Tensor.zeros(shape, dtype: .float64, device: device) }
      let total = try inner.dropFirst().reduce(first) { try $0 + $1 }
      let credit = try Torch.gradients(of: [total], withRespectTo: [epsilon])[0]
      return try (credit ?? Tensor.zeros(shape, device: device)).detach().to(.float64)
    }
  }

  /// The same credits by central differences along d = ∇L_h: the weighted terms are linear in
  /// ε, so ℓ_bk = ∂terms/∂ε_bk at any ε, read off by a backward through the loss operators alone
  /// (the student's side is computed without gradients); then
  /// c_bk ≈ [ℓ_bk(θ + h·d) − ℓ_bk(θ − h·d)] / 2h with h = radius / ‖d‖, an error of O(h²).
  ///
  /// The parameters are put back bit for bit (copied, not subtracted). The student runs in eval
  /// mode, so that dropout cannot differ between the two passes.
  /// - Parameters:
  ///   - direction: d, one entry per parameter (nil: that parameter stays put); `directionNorm` ‖d‖.
  ///   - forward: the student's side of the batch at the current parameters.
  ///   - terms: Σ_bk ε_bk ℓ_bk of a side for a given ε [B, 24].
  /// - Returns: c [B, 24] float64 and the side at θ (its embeddings: the mean of the two passes',
  ///   equal to the unperturbed ones up to O(h²)).
  static func centralDifference(
    student: Module, parameters: [Tensor], direction: [Tensor?], directionNorm: Double, radius: Double,
    forward: () throws -> StudentSide, terms: (StudentSide, Tensor) throws -> Tensor?
  ) throws -> (Tensor, StudentSide) {
    let wasTraining = student.isTraining
    student.eval()
    defer { student.train(wasTraining) }
    func losses(_ side: StudentSide) throws -> Tensor {
      let shape = [side.image.size(0), 24]
      return try Torch.enableGrad {
        let epsilon = try Tensor.zeros(shape, dtype: side.image.dtype, device: side.image.device).requiresGrad(true)
        guard let weighted = try terms(side, epsilon), weighted.requiresGrad,
          let l = try Torch.gradients(of: [weighted], withRespectTo: [epsilon])[0]
        else { return try Tensor.zeros(shape, dtype: .float64, device: side.image.device) }
        return try l.to(.float64)
      }
    }
    guard directionNorm > 0, directionNorm.isFinite else {
      let side = try Torch.noGrad { try forward() }
      return (try Tensor.zeros([side.image.size(0), 24], dtype: .float64, device: side.image.device), side)
    }
    let h = radius / directionNorm
    let moved = try zip(parameters, direction).compactMap { p, d in try d.map { (p, try $0.detach()) } }
    return try Torch.noGrad {
      let saved = try moved.map { try $0.0.detach().clone() }
      defer { for ((p, _), original) in zip(moved, saved) { try? p.copy(from: original) } }
      func side(at sign: Double) throws -> (StudentSide, Tensor) {
        for ((p, d), original) in zip(moved, saved) {
          if sign < 0 { try p.copy(from: original) }  // the + pass starts at θ itself
          try p.addInPlace(d, alpha: sign * h)
        }
        let side = try forward()
        return (side, try losses(side))
      }
      let (plus, lPlus) = try side(at: 1)
      let (minus, lMinus) = try side(at: -1)
      let credits = try (lPlus - lMinus) / (2 * h)
      var mid = plus
      mid.image = try (plus.image + minus.image) * 0.5
      mid.caption = try (plus.caption + minus.caption) * 0.5
      return (credits, mid)
    }
  }
}

/// The credits of one batch: per (sample, term) in the ALSN's head layout, and their batch
/// sums (the batch-level credit of each term, c_k = ⟨∇L_h, ∇L_k⟩ with L_k the batch's mean).
///
/// A credit is the first-order decrease of the held-out loss that a step on that term brings:
/// positive when the term's gradient agrees with the held-out gradient, ≈ 0 for a term whose
/// loss is already ≈ 0 (its gradient is ≈ 0) however easy it is.
public struct LevelCredits {
  /// [B, 24] float64: vision P2–P5 (4), language L1–L4 (4), coupling pairs (16, vision ×
  /// language); 0 where inactive or λ = 0.
  public var perSample: Tensor
  /// Batch sums per vision level, language level and pyramid-alignment pair.
  public var vision: [Double]
  public var language: [Double]
  public var coupling: [Double]
  /// L_h and ‖∇L_h‖ at the parameters the credits were taken at.
  public var heldOutLoss: Double
  public var heldOutGradientNorm: Double

  public init(perSample: Tensor, heldOutLoss: Double, heldOutGradientNorm: Double) throws {
    self.perSample = perSample
    let sums = try perSample.sum(dim: 0).doubles()
    vision = Array(sums[0..<4])
    language = Array(sums[4..<8])
    coupling = Array(sums[8..<24])
    self.heldOutLoss = heldOutLoss
    self.heldOutGradientNorm = heldOutGradientNorm
  }

  /// The 24 batch credits in the ALSN's head layout (vision, language, coupling).
  public var flat: [Double] { vision + language + coupling }

  /// Each sample's credits divided, head by head, by their absolute sum (Σ_k |ĉ_bk| = 1 per
  /// sample and head; an all-zero row stays zero): the share of that sample's predicted
  /// held-out change each level accounts for, independent of the learning rate and of the
  /// scale of the losses. [B, 24] float32.
  public func normalizedPerSample() throws -> Tensor {
    let (v, l, c) = try ALSN.split(perSample)
    func share(_ x: Tensor) throws -> Tensor { try x / x.abs().sum(dim: 1, keepDim: true).clamp(min: 1e-30) }
    return try Tensor.cat([share(v), share(l), share(c)], dim: 1).to(.float32)
  }

  /// The batch credits, broadcast to every sample: what a batch-level selector would see
  /// (kept for comparison; `normalizedPerSample` of it gives every sample the same target).
  public func batchLevel() throws -> LevelCredits {
    let b = perSample.size(0)
    let mean = try perSample.mean(dim: 0, keepDim: true).expand([b, 24]).contiguous()
    return try LevelCredits(perSample: mean, heldOutLoss: heldOutLoss, heldOutGradientNorm: heldOutGradientNorm)
  }
}

/// Trains the ALSN of one CMAPKD run with its own AdamW; the state a checkpoint carries
/// (`stateTensors`) is its optimizer, the latest batch credits and the policy's reward baseline.
///
/// - `gating`: every K steps, on the step's batch and the held-out batch, the per-sample
///   credits of the 24 weighted terms are computed (`credits`) and the selector minimises
///   −mean_b Σ_k w_bk·ĉ_bk − β·H(w) per head, where ĉ are each sample's credits normalised to
///   Σ_k |ĉ_bk| = 1 and H is the mean row entropy. Each sample's optimum is w_b ∝ exp(ĉ_b / β),
///   so the selector learns to map a sample's features to its own levels; as two normalised
///   credits differ by at most 1, β bounds the entropy from below (`entropyFloor`).
/// - `policy`: on the steps it learns from, each sample's action (level weights in [0, 1]) is
///   sampled from a logit-normal policy around the ALSN's heads (`policyWeights`); after the
///   optimizer step each sample's reward is the look-ahead gain of its own weights,
///   Σ_k w_bk·ĉ_bk, minus λ·its expected level cost, and the ALSN takes a REINFORCE step with
///   per-sample advantages against a running baseline.
public final class SelectorTrainer {
  public let cmapkd: CMAPKD
  public let alsn: ALSN
  public let optimizer: AdamW
  public private(set) var policy: LogitNormalPolicy
  /// Selector updates applied so far.
  public private(set) var updates = 0
  /// The latest credits.
  public private(set) var credits: LevelCredits?
  /// Numbers from the latest update (`selector/…`), reported with the next step's metrics.
  public private(set) var metrics: [String: Double] = [:]

  /// A sampled action waiting for its reward: what the REINFORCE step needs after the
  /// optimizer step. The policy mean keeps its graph to the ALSN's parameters until then.
  struct PendingAction {
    var step: Int
    var mean: Tensor  // [B, 24]
    var logits: Tensor  // [B, 24]
    var mask: Tensor  // [1, 24]
    var weights: LevelWeights
    var costs: (vision: [Double], language: [Double])
  }
  private var pending: PendingAction?

  /// Whether a sampled action is waiting for its reward.
  public var hasPendingAction: Bool { pending != nil }

  public init(cmapkd: CMAPKD, alsn: ALSN) throws {
    let config = cmapkd.config
    try config.validate()
    self.cmapkd = cmapkd
    self.alsn = alsn
    optimizer = try AdamW(alsn.parameters(), learningRate: config.selectorLearningRate, weightDecay: 0)
    policy = LogitNormalPolicy(sigma: config.policySigma, baselineMomentum: config.policyBaselineMomentum)
  }

  /// Whether the selector learns from optimizer step `step`: every `selector_interval` steps,
  /// and every step of the refinement stage, where the student barely moves and refining the
  /// selection is the stage's work.
  public func learnsAt(step: Int, stage: Stage = .fine) -> Bool {
    stage == .refinement || step % cmapkd.config.selectorInterval == 0
  }

  // MARK: The held-out signal

  /// L_h: the student's CLIP loss on held-out pairs at the fixed temperature τ (a 0-d tensor).
  public static func heldOutLoss(student: CLIPModel, batch: DistillBatch, temperature: Double) throws -> Tensor {
    let image = try student.encodeImage(batch.pixels)
    let text = try student.encodeText(batch.ids, attentionMask: batch.attentionMask)
    return try Losses.symmetricInfoNCE(image, text, temperature: temperature)
  }

  /// The per-sample look-ahead credits of the weighted terms at the student's current
  /// parameters (`LookAheadCredit`), by the configured estimator (`selector_credit`).
  ///
  /// The virtual step moves every trainable parameter of the student (towers, projections,
  /// logit scale). Not a subset of the last blocks: a level's term reaches the tower only up
  /// to its tap, so a virtual step on the last blocks would give P2/L1 zero credit by
  /// construction. Not the adapters and bridges either: L_h does not depend on them
  /// (∇_head L_h = 0), so they add nothing to ⟨∇L_h, ∇ℓ_bk⟩. The cost is one held-out
  /// forward and backward, then either two forwards of the batch without gradients
  /// (`finite_difference`) or one forward with gradients and a double backward
  /// (`double_backward`), every K steps.
  /// - Returns: the credits and the student's side of `batch` (its embeddings feed the ALSN).
  public static func credits(
    cmapkd: CMAPKD, student: CLIPModel, head: CMAPKDHead, batch: DistillBatch, heldOut: DistillBatch
  ) throws -> (credits: LevelCredits, side: StudentSide) {
    let config = cmapkd.config
    let teacher = try batch.requireTeacher("cmapkd")
    let active = config.activeLevels(batch.stage)
    let parameters = student.parameters().filter(\.requiresGrad)
    func forward() throws -> StudentSide {
      try cmapkd.forward(
        student: student, head: head, teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.attentionMask,
        computing: active)
    }
    func terms(_ side: StudentSide, _ epsilon: Tensor) throws -> Tensor? {
      try weightedTerms(cmapkd: cmapkd, side: side, teacher: teacher, active: active, epsilon: epsilon)
    }
    // L_h and its gradient need only single backward: attention keeps its fast kernel.
    let (heldOutLoss, direction) = try Torch.enableGrad {
      let loss = try SelectorTrainer.heldOutLoss(student: student, batch: heldOut, temperature: config.temperature)
      var direction = try Torch.gradients(of: [loss], withRespectTo: parameters)  // ∇L_h per parameter
      if let group = student.dataParallel {
        // Each rank holds W × its own rows' share of ∇L_h (the towers gather the held-out batch);
        // their mean is the whole gradient. The credits need nothing more: the double backward
        // (or the perturbed forwards) through the towers' gather already covers every rank's rows.
        let present = direction.compactMap { $0 }
        try group.allReduceSum(present)
        direction = try direction.map { try $0.map { try $0 / Double(group.worldSize) } }
      }
      return (try loss.item(), direction)
    }
    let norm = try Foundation.sqrt(SelectorTrainer.dot(direction, direction))
    let perSample: Tensor, side: StudentSide
    switch config.selectorCredit {
    case .doubleBackward:
      (perSample, side) = try Torch.twiceDifferentiable {
        try Torch.enableGrad {
          let side = try forward()
          let shape = [side.image.size(0), 24]
          let c = try LookAheadCredit.perSample(parameters: parameters, heldOutGradient: direction, shape: shape) {
            try terms(side, $0)
          }
          return (c, side)
        }
      }
    case .finiteDifference:
      (perSample, side) = try LookAheadCredit.centralDifference(
        student: student, parameters: parameters, direction: direction, directionNorm: norm, radius: config.selectorFDRadius,
        forward: forward, terms: terms)
    }
    let credits = try LevelCredits(perSample: perSample, heldOutLoss: heldOutLoss, heldOutGradientNorm: norm)
    return (credits, side)
  }

  /// Σ_bk ε_bk ℓ_bk: the weighted terms the selector's weights multiply (intra-modal levels and
  /// pyramid-alignment pairs, with their λ), for perturbation weights ε [B, 24] in the ALSN's
  /// head layout; nil when none is on.
  static func weightedTerms(
    cmapkd: CMAPKD, side: StudentSide, teacher: TeacherFeatures, active: (vision: Set<Level>, language: Set<Level>),
    epsilon: Tensor
  ) throws -> Tensor? {
    let config = cmapkd.config
    let lambdas = config.lambdas
    let (teacherVision, teacherLanguage) = try teacher.levels(config.pyramid)
    let (ev, el, ec) = try ALSN.split(epsilon)
    var terms: [Tensor] = []
    if lambdas.intraVision != 0, let t = try Losses.intraVision(
      student: side.vision, teacher: teacherVision, weights: ev, active: active.vision
    ).sum() {
      terms.append(try t * lambdas.intraVision)
    }
    if lambdas.intraLanguage != 0, let t = try Losses.intraLanguage(
      student: side.language, teacher: teacherLanguage, weights: el, active: active.language
    ).sum() {
      terms.append(try t * lambdas.intraLanguage)
    }
    if lambdas.pyramid != 0, let t = try Losses.pyramidAlignment(
      student: side.shared, teacher: (teacher.sharedVision, teacher.sharedLanguage), coupling: ec.reshape([-1, 4, 4]),
      activeVision: active.vision, activeLanguage: active.language, temperature: config.temperature
    ).sum() {
      terms.append(try t * lambdas.pyramid)
    }
    guard let first = terms.first else { return nil }
    return try terms.dropFirst().reduce(first) { try $0 + $1 }
  }

  /// Σ ⟨aₖ, bₖ⟩ over the pairs where both are present.
  static func dot(_ a: [Tensor?], _ b: [Tensor?]) throws -> Double {
    var terms: [Tensor] = []
    for (x, y) in zip(a, b) {
      if let x, let y { terms.append(try x.reshape([-1]).matmul(y.reshape([-1])).to(.float64)) }
    }
    return terms.isEmpty ? 0 : try Tensor.stack(terms).sum().item()
  }

  /// The lowest entropy (nats) of the `gating` selector's optimum over `levels` active levels
  /// with entropy weight β: that of softmax(1/β, 0, …, 0), the most concentrated weights that
  /// credits with Σ|ĉ| = 1 can call for.
  public static func entropyFloor(entropyWeight beta: Double, levels: Int) -> Double {
    guard levels > 1, beta > 0 else { return 0 }
    let top = Foundation.exp(1 / beta)
    let total = top + Double(levels - 1)
    let p = top / total, q = 1 / total
    return -(p * Foundation.log(p) + Double(levels - 1) * q * Foundation.log(q))
  }

  /// Which heads carry a learning signal: vision, language, coupling (λ ≠ 0).
  var headsOn: [Bool] {
    let l = cmapkd.config.lambdas
    return [l.intraVision != 0, l.intraLanguage != 0, l.pyramid != 0]
  }

  // MARK: After each optimizer step

  /// The selector's part of `afterStep`: learns on its interval, from the step's batch and the
  /// held-out batch (fetched only when needed).
  public func afterStep(
    student: CLIPModel, head: CMAPKDHead, batch: DistillBatch, heldOut: () throws -> DistillBatch, learningRate: Double
  ) throws {
    switch cmapkd.config.selection {
    case .gating:
      guard learnsAt(step: batch.step, stage: batch.stage) else { return }
      try gatingUpdate(student: student, head: head, batch: batch, heldOut: heldOut(), learningRate: learningRate)
    case .policy:
      try policyUpdate(student: student, head: head, batch: batch, heldOut: heldOut)
    case .uniform, .manual:
      return
    }
  }

  /// One `gating` update: per-sample credits at the current parameters, then one AdamW step
  /// of the ALSN on −Σ_heads [mean_b Σ_k w_bk·ĉ_bk + β·H(w)].
  @discardableResult
  public func gatingUpdate(
    student: CLIPModel, head: CMAPKDHead, batch: DistillBatch, heldOut: DistillBatch, learningRate: Double = 0
  ) throws -> [String: Double] {
    // The first S samples and H held-out pairs (`selector_samples`, `selector_heldout`): the
    // update's cost grows with both. Under data parallelism every rank's rows are used whole,
    // since the ranks' held-out images and captions are split differently.
    let config = cmapkd.config
    let (credited, held) =
      student.dataParallel == nil
      ? (try batch.firstRows(config.selectorSamples), try heldOut.firstRows(config.selectorHeldOut)) : (batch, heldOut)
    let (raw, side) = try SelectorTrainer.credits(cmapkd: cmapkd, student: student, head: head, batch: credited, heldOut: held)
    return try gatingUpdate(
      credits: raw, image: side.image, text: side.caption, active: cmapkd.config.activeLevels(batch.stage),
      learningRate: learningRate)
  }

  /// The ALSN step of a `gating` update, from credits already taken on the samples whose
  /// student embeddings are `image`, `text` [B, P].
  @discardableResult
  public func gatingUpdate(
    credits raw: LevelCredits, image: Tensor, text: Tensor, active: (vision: Set<Level>, language: Set<Level>),
    learningRate: Double = 0
  ) throws -> [String: Double] {
    let beta = cmapkd.config.selectorEntropyWeight
    let c = try raw.normalizedPerSample().to(image.device, image.dtype)  // [B, 24]
    let (cv, cl, cc) = try ALSN.split(c)
    var report: [String: Double] = [:]
    let loss: Tensor? = try Torch.enableGrad {
      let w = try alsn(image: image, text: text, activeVision: active.vision, activeLanguage: active.language)
      var terms: [Tensor] = []
      for ((weights, credit), on) in zip([(w.vision, cv), (w.language, cl), (w.coupling, cc)], headsOn) where on {
        let flat = try weights.flatten(start: 1)  // [B, K]
        terms.append(try (flat * credit).sum(dim: 1).mean().neg() - LevelWeights.meanEntropy(weights) * beta)
      }
      // First-order decrease of L_h that a plain SGD step at this learning rate would bring.
      let gain = try (Tensor.cat([w.vision.flatten(start: 1), w.language, w.coupling.flatten(start: 1)], dim: 1).detach()
        .to(.float64) * raw.perSample).sum().item()
      let h = try w.entropies()
      report = [
        "selector/entropy_vision": h.vision, "selector/entropy_language": h.language, "selector/entropy_coupling": h.coupling,
        "selector/predicted_gain": learningRate * gain,
      ]
      guard let first = terms.first else { return nil }
      return try terms.dropFirst().reduce(first) { try $0 + $1 }
    }
    if let loss, loss.requiresGrad {
      try applyGradient(of: loss)
      report["selector/loss"] = try loss.item()
    }
    record(raw, into: &report)
    metrics = report
    return report
  }

  /// Logs the latest credits: L_h, and each term's batch credit as a share of the total.
  private func record(_ raw: LevelCredits, into report: inout [String: Double]) {
    credits = raw
    report["selector/heldout_loss"] = raw.heldOutLoss
    func share(_ c: [Double]) -> [Double] {
      let total = c.reduce(0) { $0 + Swift.abs($1) }
      return total > 0 ? c.map { $0 / total } : c
    }
    let (v, l, c) = (share(raw.vision), share(raw.language), share(raw.coupling))
    for level in Level.allCases {
      report["selector/credit/\(level.visionName)"] = v[level.rawValue]
      report["selector/credit/\(level.languageName)"] = l[level.rawValue]
      for j in Level.allCases {
        report["selector/credit/\(level.visionName)-\(j.languageName)"] = c[4 * level.rawValue + j.rawValue]
      }
    }
    report["selector/updates"] = Double(updates)
  }

  /// The level weights of one batch in `policy` mode: each sample's action sampled around the
  /// ALSN's heads on a step the selector learns from, the policy's mean action otherwise (and
  /// whenever gradients are off, as in evaluation). Detached.
  /// - Parameters:
  ///   - levelCosts: the relative compute of each level (`LevelCost`), for the reward.
  public func policyWeights(
    image: Tensor, text: Tensor, active: (vision: Set<Level>, language: Set<Level>), step: Int, stage: Stage = .fine,
    levelCosts: (vision: [Double], language: [Double])
  ) throws -> LevelWeights {
    pending = nil
    let explore = Torch.isGradEnabled && learnsAt(step: step, stage: stage)
    let mean = try alsn.logits(image: image, text: text)  // [B, 24]
    guard explore else {
      return try LevelWeights.proportional(
        actions: mean.detach().sigmoid(), activeVision: active.vision, activeLanguage: active.language)
    }
    let (actions, z) = try policy.sample(mean: mean)
    let weights = try LevelWeights.proportional(actions: actions, activeVision: active.vision, activeLanguage: active.language)
    pending = PendingAction(
      step: step, mean: mean, logits: z,
      mask: try ALSN.activeMask(activeVision: active.vision, activeLanguage: active.language, like: mean),
      weights: weights, costs: levelCosts)
    return weights
  }

  /// Each sample's expected compute cost under weights w: the mean over the two modalities of
  /// Σᵢ w_bi·costᵢ, in [0, 1]. [B] float64.
  static func perSampleCost(_ weights: LevelWeights, costs: (vision: [Double], language: [Double])) throws -> Tensor {
    func expected(_ w: Tensor, _ c: [Double]) throws -> Tensor {
      try (w.detach().to(.float64) * Tensor(c, shape: [1, 4]).to(w.device)).sum(dim: 1)
    }
    return try (expected(weights.vision, costs.vision) + expected(weights.language, costs.language)) * 0.5
  }

  /// The `policy` part of `afterStep`: rewards the pending action of this step, sample by
  /// sample, with the look-ahead credits of the batch (taken after the step).
  public func policyUpdate(
    student: CLIPModel, head: CMAPKDHead, batch: DistillBatch, heldOut: () throws -> DistillBatch
  ) throws {
    guard let action = pending, action.step == batch.step else {
      pending = nil
      return
    }
    pending = nil
    let (raw, _) = try SelectorTrainer.credits(
      cmapkd: cmapkd, student: student, head: head, batch: batch, heldOut: heldOut())
    let c = try raw.normalizedPerSample().to(.float64)  // [B, 24]
    let (cv, cl, cc) = try ALSN.split(c)
    var gain = try Tensor.zeros([c.size(0)], dtype: .float64, device: c.device)
    let coupling = try action.weights.coupling.flatten(start: 1)
    for ((weights, credit), on) in zip([(action.weights.vision, cv), (action.weights.language, cl), (coupling, cc)], headsOn)
    where on {
      gain = try gain + (weights.detach().to(.float64) * credit).sum(dim: 1)
    }
    let cost = try SelectorTrainer.perSampleCost(action.weights, costs: action.costs)
    let rewards = try gain - cost * cmapkd.config.policyCostWeight  // [B]
    let meanReward = try rewards.mean().item()
    let surrogate = try Torch.enableGrad {
      try policy.surrogateLoss(mean: action.mean, logits: action.logits, rewards: rewards, mask: action.mask)
    }
    try applyGradient(of: surrogate)
    var report: [String: Double] = [
      "selector/reward": meanReward, "selector/reward_std": try rewards.std().item(),
      "selector/baseline": policy.baseline ?? meanReward, "selector/cost": try cost.mean().item(),
      "selector/loss": try surrogate.item(),
    ]
    record(raw, into: &report)
    metrics = report
  }

  /// One AdamW step of the ALSN on `loss`; its gradients are dropped afterwards, so the
  /// runner's optimizer (which may hold the ALSN's parameters as part of the head) never
  /// sees them.
  private func applyGradient(of loss: Tensor) throws {
    let parameters = alsn.parameters()
    let gradients = try Torch.gradients(of: [loss], withRespectTo: parameters)
    for (p, g) in zip(parameters, gradients) {
      if let g { try p.setGrad(g) }
    }
    try optimizer.step()
    try optimizer.zeroGrad()
    updates += 1
  }

  // MARK: Checkpoint state

  /// The selector's state (keys `selector.…`): its optimizer, update count, latest batch
  /// credits and the policy's baseline. A pending action is not state: it is consumed by the
  /// `afterStep` of its own step, before any checkpoint.
  public func stateTensors() throws -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for (key, t) in try optimizer.stateDict() { out["selector.optimizer.\(key)"] = t }
    out["selector.updates"] = try Tensor([Int64(updates)], shape: [])
    if let credits {
      out["selector.credits"] = credits.perSample
      out["selector.heldout"] = try Tensor([credits.heldOutLoss, credits.heldOutGradientNorm], shape: [2])
    }
    if let baseline = policy.baseline { out["selector.baseline"] = try Tensor([baseline], shape: []) }
    // The latest update's diagnostics are logged every step until the next update: a resumed
    // run logs what an uninterrupted one does.
    let names = metrics.keys.sorted()
    if !names.isEmpty {
      out["selector.metric_values"] = try Tensor(names.map { metrics[$0]! }, shape: [names.count])
      let text = Array(names.joined(separator: "\n").utf8)
      out["selector.metric_names"] = try Tensor(text, shape: [text.count])
    }
    return out
  }

  public func loadState(_ tensors: [String: Tensor]) throws {
    var optimizerState: [String: Tensor] = [:]
    for (key, t) in tensors where key.hasPrefix("selector.optimizer.") {
      optimizerState[String(key.dropFirst("selector.optimizer.".count))] = t
    }
    try optimizer.loadStateDict(optimizerState)
    updates = try tensors["selector.updates"]?.itemInt() ?? 0
    if let c = tensors["selector.credits"] {
      guard c.rank == 2, c.size(1) == 24 else {
        throw MethodError("cmapkd: selector.credits has shape \(c.shape), expected [B, 24] (per-sample credits)")
      }
      let h = try tensors["selector.heldout"]?.doubles() ?? [.nan, .nan]
      credits = try LevelCredits(perSample: c.to(.float64), heldOutLoss: h[0], heldOutGradientNorm: h[1])
    } else {
      credits = nil
    }
    let config = cmapkd.config
    policy = LogitNormalPolicy(
      sigma: config.policySigma, baselineMomentum: config.policyBaselineMomentum,
      baseline: try tensors["selector.baseline"]?.item())
    pending = nil
    metrics = [:]
    if let values = tensors["selector.metric_values"], let names = tensors["selector.metric_names"] {
      let keys = String(decoding: try names.toArray(UInt8.self), as: UTF8.self).split(separator: "\n").map(String.init)
      let numbers = try values.doubles()
      guard keys.count == numbers.count else {
        throw MethodError("cmapkd: selector.metric_names (\(keys.count)) and selector.metric_values (\(numbers.count)) differ")
      }
      metrics = Dictionary(uniqueKeysWithValues: zip(keys, numbers))
    }
  }
}

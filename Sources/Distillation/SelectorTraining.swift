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

/// The first-order credit of each weighted loss term: c_i = ⟨∇_θ L_h, ∇_θ L_i⟩.
///
/// An SGD step θ' = θ − η Σᵢ wᵢ ∇Lᵢ changes the held-out loss by ≈ −η Σᵢ wᵢ cᵢ, so a level
/// with a positive credit lowers L_h in proportion to its weight, and a level whose loss is
/// already ≈ 0 (gradient ≈ 0) earns ≈ 0 however easy it is. θ are the student's parameters;
/// the head's do not enter, as ∇_head L_h = 0.
public struct LevelCredits: Equatable, Sendable {
  /// Per vision level P2–P5 and language level L1–L4 (intra-modal terms), and per pyramid-
  /// alignment pair (16, vision × language, row-major). 0 where inactive or λ = 0.
  public var vision: [Double]
  public var language: [Double]
  public var coupling: [Double]
  /// L_h and ‖∇L_h‖ at the parameters the credits were taken at.
  public var heldOutLoss: Double
  public var heldOutGradientNorm: Double

  public init(vision: [Double], language: [Double], coupling: [Double], heldOutLoss: Double, heldOutGradientNorm: Double) {
    self.vision = vision
    self.language = language
    self.coupling = coupling
    self.heldOutLoss = heldOutLoss
    self.heldOutGradientNorm = heldOutGradientNorm
  }

  /// The 24 credits in the ALSN's head layout (vision, language, coupling).
  public var flat: [Double] { vision + language + coupling }

  /// Each head's credits divided by their absolute sum (Σ|ĉ| = 1; all-zero stays zero): the
  /// share of the predicted held-out change each level accounts for. Independent of the
  /// learning rate and of the scale of the losses.
  public func normalized() -> LevelCredits {
    func share(_ c: [Double]) -> [Double] {
      let total = c.reduce(0) { $0 + Swift.abs($1) }
      return total > 0 ? c.map { $0 / total } : c
    }
    return LevelCredits(
      vision: share(vision), language: share(language), coupling: share(coupling), heldOutLoss: heldOutLoss,
      heldOutGradientNorm: heldOutGradientNorm)
  }
}

/// Trains the ALSN of one CMAPKD run with its own AdamW; the state a checkpoint carries
/// (`stateTensors`) is its optimizer, the latest credits, the policy's reward baseline and
/// the latest held-out loss.
///
/// - `gating`: every K steps, on the step's batch and the held-out batch, the credits of the
///   24 weighted terms are computed (`credits`) and the selector minimises
///   −Σᵢ mean_b(w_bi)·ĉᵢ − β·H(w) per head, where H is the mean row entropy of the weights.
///   The optimum is w ∝ exp(ĉ / β); as Σ|ĉ| = 1, two credits differ by at most 1, which
///   bounds the entropy from below (`entropyFloor`).
/// - `policy`: on the steps it learns from, the step's level weights are sampled from a
///   logit-normal policy around the ALSN's heads (`policyWeights`); after the optimizer step
///   the reward is (L_h before − L_h after) − λ·(expected level cost) and the ALSN takes a
///   REINFORCE step with the running-mean baseline.
public final class SelectorTrainer {
  public let cmapkd: CMAPKD
  public let alsn: ALSN
  public let optimizer: AdamW
  public private(set) var policy: LogitNormalPolicy
  /// Selector updates applied so far.
  public private(set) var updates = 0
  /// The latest credits (`gating`).
  public private(set) var credits: LevelCredits?
  /// The latest held-out loss and the step after which it was measured (`policy`).
  public private(set) var lastHeldOut: (step: Int, loss: Double)?
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
    var tokens: Int
    var gridCells: Int
  }
  private var pending: PendingAction?

  /// Whether a sampled action is waiting for its reward.
  public var hasPendingAction: Bool { pending != nil }

  /// The central-difference step h of the pair credits' directional derivative: the length
  /// (L2 over all student parameters) of the move along ∇L_h/‖∇L_h‖. Absolute, not relative to
  /// ‖θ‖: ‖θ‖ is dominated by the token-embedding table, which the direction barely touches.
  /// Measured on the tiny test models against float64 credits with h = 1e-6: at h = 1e-2 the
  /// pair credits are within 2e-5 (float64: the curvature error) and 1e-4 (float32: rounding)
  /// of the largest credit; at h = 1e-3 float32 rounding grows to 1e-3. The tests compare the
  /// credits with finite differences of L_h along each term's own gradient.
  static let directionalStep = 1e-2

  public init(cmapkd: CMAPKD, alsn: ALSN) throws {
    let config = cmapkd.config
    try config.validate()
    self.cmapkd = cmapkd
    self.alsn = alsn
    optimizer = try AdamW(alsn.parameters(), learningRate: config.selectorLearningRate, weightDecay: 0)
    policy = LogitNormalPolicy(sigma: config.policySigma, baselineMomentum: config.policyBaselineMomentum)
  }

  /// Whether the selector learns from optimizer step `step` (every `selector_interval` steps).
  public func learnsAt(step: Int) -> Bool { step % cmapkd.config.selectorInterval == 0 }

  // MARK: The held-out signal

  /// L_h: the student's CLIP loss on held-out pairs at the fixed temperature τ (a 0-d tensor).
  public static func heldOutLoss(student: CLIPModel, batch: DistillBatch, temperature: Double) throws -> Tensor {
    let image = try student.encodeImage(batch.pixels)
    let text = try student.encodeText(batch.ids, attentionMask: batch.attentionMask)
    return try Losses.symmetricInfoNCE(image, text, temperature: temperature)
  }

  /// The credits of the weighted terms at the student's current parameters.
  ///
  /// ∇L_h is one backward pass on the held-out batch. The intra-modal terms (one per level
  /// and modality) each get their exact gradient (`Torch.gradients`, one partial backward
  /// each). The 16 pyramid-alignment pairs reach the student only through the 8 shared-space
  /// vectors sₖ, so ⟨∇L_h, ∇L_ij⟩ = ⟨Jᵥᵢ∇L_h, ∂L_ij/∂sᵥᵢ⟩ + ⟨Jₗⱼ∇L_h, ∂L_ij/∂sₗⱼ⟩: the
  /// directional derivatives Jₖ∇L_h come from two extra forward passes at θ ± h·∇L_h/‖∇L_h‖
  /// (central differences, no backward), the ∂L_ij/∂s from the loss alone — instead of 16
  /// more backward passes through the student.
  /// - Returns: the credits and the student's side of `batch` (its embeddings feed the ALSN).
  public static func credits(
    cmapkd: CMAPKD, student: CLIPModel, head: CMAPKDHead, batch: DistillBatch, heldOut: DistillBatch
  ) throws -> (credits: LevelCredits, side: StudentSide) {
    let config = cmapkd.config
    let lambdas = config.lambdas
    let teacher = try batch.requireTeacher("cmapkd")
    let active = batch.stage.activeLevels
    let parameters = student.parameters().filter(\.requiresGrad)
    return try Torch.enableGrad {
      let heldOutLoss = try SelectorTrainer.heldOutLoss(student: student, batch: heldOut, temperature: config.temperature)
      let direction = try Torch.gradients(of: [heldOutLoss], withRespectTo: parameters)  // ∇L_h per parameter
      let norm = try Foundation.sqrt(SelectorTrainer.dot(direction, direction))

      let side = try cmapkd.forward(
        student: student, head: head, teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.attentionMask)
      let (teacherVision, teacherLanguage) = try teacher.levels(config.pyramid)
      let ones = try Tensor.ones([side.image.size(0), 4], dtype: side.image.dtype, device: side.image.device)
      func credit(_ loss: Tensor, _ lambda: Double) throws -> Double {
        let g = try Torch.gradients(of: [loss], withRespectTo: parameters, retainGraph: true)
        return try lambda * SelectorTrainer.dot(direction, g)
      }
      var vision = [Double](repeating: 0, count: 4)
      var language = [Double](repeating: 0, count: 4)
      var coupling = [Double](repeating: 0, count: 16)
      if lambdas.intraVision != 0 {
        let parts = try Losses.intraVision(student: side.vision, teacher: teacherVision, weights: ones, active: active)
        for level in Level.allCases where active.contains(level) {
          if let part = parts[level.visionName] { vision[level.rawValue] = try credit(part, lambdas.intraVision) }
        }
      }
      if lambdas.intraLanguage != 0 {
        let parts = try Losses.intraLanguage(student: side.language, teacher: teacherLanguage, weights: ones, active: active)
        for level in Level.allCases where active.contains(level) {
          if let part = parts[level.languageName] { language[level.rawValue] = try credit(part, lambdas.intraLanguage) }
        }
      }
      if lambdas.pyramid != 0, norm > 0 {
        // ∂L_ij/∂s on leaves cut from the student: no pass through the towers.
        let v = try side.shared.vision.map { try $0.detach().requiresGrad(true) }
        let l = try side.shared.language.map { try $0.detach().requiresGrad(true) }
        let parts = try Losses.pyramidAlignment(
          student: (v, l), teacher: (teacher.sharedVision, teacher.sharedLanguage),
          coupling: ones.unsqueeze(2).expand([ones.size(0), 4, 4]), activeVision: active, activeLanguage: active,
          temperature: config.temperature)
        let (dv, dl) = try directionalDerivatives(
          cmapkd: cmapkd, student: student, head: head, teacher: teacher, batch: batch, parameters: parameters,
          direction: direction, norm: norm)
        for i in Level.allCases where active.contains(i) {
          for j in Level.allCases where active.contains(j) {
            guard let part = parts["\(i.visionName)-\(j.languageName)"] else { continue }
            let g = try Torch.gradients(of: [part], withRespectTo: [v[i.rawValue], l[j.rawValue]], retainGraph: true)
            coupling[4 * i.rawValue + j.rawValue] =
              try lambdas.pyramid * SelectorTrainer.dot([dv[i.rawValue], dl[j.rawValue]], g)
          }
        }
      }
      let credits = LevelCredits(
        vision: vision, language: language, coupling: coupling, heldOutLoss: try heldOutLoss.item(), heldOutGradientNorm: norm)
      return (credits, side)
    }
  }

  /// Jₖ∇L_h for the 8 shared-space vectors by central differences along ∇L_h: [B, P] each.
  /// The parameters are restored bit for bit afterwards.
  static func directionalDerivatives(
    cmapkd: CMAPKD, student: CLIPModel, head: CMAPKDHead, teacher: TeacherFeatures, batch: DistillBatch, parameters: [Tensor],
    direction: [Tensor?], norm: Double
  ) throws -> (vision: [Tensor], language: [Tensor]) {
    try Torch.noGrad {
      let saved = try parameters.map { try $0.detach().clone() }
      let h = directionalStep
      func shared(at sign: Double) throws -> (vision: [Tensor], language: [Tensor]) {
        for (p, (original, d)) in zip(parameters, zip(saved, direction)) {
          try p.copy(from: original)
          if let d { try p.addInPlace(d * (sign * h / norm)) }
        }
        return try cmapkd.forward(
          student: student, head: head, teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.attentionMask
        ).shared
      }
      func restore() throws { for (p, original) in zip(parameters, saved) { try p.copy(from: original) } }
      let plus: (vision: [Tensor], language: [Tensor])
      let minus: (vision: [Tensor], language: [Tensor])
      do {
        plus = try shared(at: 1)
        minus = try shared(at: -1)
      } catch {
        try restore()
        throw error
      }
      try restore()
      let scale = norm / (2 * h)  // (s(θ + hû) − s(θ − hû)) / 2h · ‖∇L_h‖
      return (
        try zip(plus.vision, minus.vision).map { try ($0 - $1) * scale },
        try zip(plus.language, minus.language).map { try ($0 - $1) * scale }
      )
    }
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

  // MARK: After each optimizer step

  /// The selector's part of `afterStep`: learns on its interval, from the step's batch and the
  /// held-out batch (fetched only when needed).
  public func afterStep(
    student: CLIPModel, head: CMAPKDHead, batch: DistillBatch, heldOut: () throws -> DistillBatch, learningRate: Double
  ) throws {
    switch cmapkd.config.selection {
    case .gating:
      guard learnsAt(step: batch.step) else { return }
      try gatingUpdate(student: student, head: head, batch: batch, heldOut: heldOut(), learningRate: learningRate)
    case .policy:
      try policyUpdate(student: student, batch: batch, heldOut: heldOut)
    case .uniform, .manual:
      return
    }
  }

  /// One `gating` update: credits at the current parameters, then one AdamW step of the ALSN
  /// on −Σ_heads [Σᵢ mean_b(w_bi)·ĉᵢ + β·H(w)].
  @discardableResult
  public func gatingUpdate(
    student: CLIPModel, head: CMAPKDHead, batch: DistillBatch, heldOut: DistillBatch, learningRate: Double = 0
  ) throws -> [String: Double] {
    let (raw, side) = try SelectorTrainer.credits(cmapkd: cmapkd, student: student, head: head, batch: batch, heldOut: heldOut)
    return try gatingUpdate(credits: raw, side: side, stage: batch.stage, learningRate: learningRate)
  }

  /// The ALSN step of a `gating` update, from credits already taken on the batch whose
  /// student side is `side`.
  @discardableResult
  public func gatingUpdate(
    credits raw: LevelCredits, side: StudentSide, stage: Stage, learningRate: Double = 0
  ) throws -> [String: Double] {
    let config = cmapkd.config
    let active = stage.activeLevels
    let c = raw.normalized()
    let beta = config.selectorEntropyWeight
    var report: [String: Double] = [:]
    let loss: Tensor? = try Torch.enableGrad {
      let w = try alsn(image: side.image, text: side.caption, activeVision: active, activeLanguage: active)
      var terms: [Tensor] = []
      var predictedGain = 0.0
      for (weights, credit, on) in [
        (w.vision, c.vision, config.lambdas.intraVision != 0), (w.language, c.language, config.lambdas.intraLanguage != 0),
        (w.coupling, c.coupling, config.lambdas.pyramid != 0),
      ] where on {
        let flat = try weights.flatten(start: 1)  // [B, K]
        let ct = try Tensor(credit.map(Float.init), shape: [1, credit.count]).to(flat.device, flat.dtype)
        terms.append(try (flat * ct).sum(dim: 1).mean().neg() - LevelWeights.meanEntropy(weights) * beta)
      }
      for (weights, credit) in [(w.vision, raw.vision), (w.language, raw.language), (w.coupling, raw.coupling)] {
        let mean = try weights.detach().flatten(start: 1).mean(dim: 0).doubles()
        predictedGain += zip(mean, credit).reduce(0) { $0 + $1.0 * $1.1 }
      }
      let h = try w.entropies()
      report = [
        "selector/entropy_vision": h.vision, "selector/entropy_language": h.language, "selector/entropy_coupling": h.coupling,
        // First-order decrease of L_h that a plain SGD step at this learning rate would bring.
        "selector/predicted_gain": learningRate * predictedGain,
      ]
      guard let first = terms.first else { return nil }
      return try terms.dropFirst().reduce(first) { try $0 + $1 }
    }
    if let loss, loss.requiresGrad {
      try applyGradient(of: loss)
      report["selector/loss"] = try loss.item()
    }
    credits = raw
    report["selector/heldout_loss"] = raw.heldOutLoss
    for level in Level.allCases {
      report["selector/credit/\(level.visionName)"] = c.vision[level.rawValue]
      report["selector/credit/\(level.languageName)"] = c.language[level.rawValue]
      for j in Level.allCases {
        report["selector/credit/\(level.visionName)-\(j.languageName)"] = c.coupling[4 * level.rawValue + j.rawValue]
      }
    }
    report["selector/updates"] = Double(updates)
    metrics = report
    return report
  }

  /// The level weights of one batch in `policy` mode: sampled around the ALSN's heads on a
  /// step the selector learns from (and whose "before" held-out loss is known), the policy's
  /// mean action otherwise (and whenever gradients are off, as in evaluation). Detached.
  public func policyWeights(head: CMAPKDHead, side: StudentSide, batch: DistillBatch) throws -> LevelWeights {
    let active = batch.stage.activeLevels
    pending = nil
    let explore = Torch.isGradEnabled && learnsAt(step: batch.step) && lastHeldOut?.step == batch.step - 1
    let mean = try alsn.logits(image: side.image, text: side.caption)  // [B, 24]
    guard explore else {
      return try LevelWeights.proportional(actions: mean.detach().sigmoid(), activeVision: active, activeLanguage: active)
    }
    let (actions, z) = try policy.sample(mean: mean)
    let weights = try LevelWeights.proportional(actions: actions, activeVision: active, activeLanguage: active)
    let teacher = try batch.requireTeacher("cmapkd")
    pending = PendingAction(
      step: batch.step, mean: mean, logits: z,
      mask: try ALSN.activeMask(activeVision: active, activeLanguage: active, like: mean),
      weights: weights, tokens: batch.ids.size(1), gridCells: teacher.grid.height * teacher.grid.width)
    return weights
  }

  /// The expected compute cost of a pending action's weights: the mean over the two
  /// modalities of Σᵢ wᵢ·costᵢ (`LevelCost`), in [0, 1].
  func cost(of action: PendingAction) throws -> Double {
    let vision = try LevelCost.expected(action.weights.vision, costs: LevelCost.vision(gridCells: action.gridCells))
    let language = try LevelCost.expected(
      action.weights.language, costs: LevelCost.language(tokens: action.tokens, window: cmapkd.config.pyramid.phraseWindow))
    return (vision + language) / 2
  }

  /// The `policy` part of `afterStep`: rewards the pending action of this step, and measures
  /// the held-out loss when the next step will need it as its "before".
  public func policyUpdate(student: CLIPModel, batch: DistillBatch, heldOut: () throws -> DistillBatch) throws {
    let action = pending
    pending = nil
    var after: Double?
    func measure() throws -> Double {
      let wasTraining = student.isTraining
      student.eval()
      defer { student.train(wasTraining) }
      return try Torch.noGrad {
        try SelectorTrainer.heldOutLoss(student: student, batch: heldOut(), temperature: cmapkd.config.temperature).item()
      }
    }
    if let action, action.step == batch.step, let before = lastHeldOut, before.step == batch.step - 1 {
      let now = try measure()
      after = now
      let cost = try cost(of: action)
      let reward = before.loss - now - cmapkd.config.policyCostWeight * cost
      let advantage = policy.advantage(reward)
      let surrogate = try Torch.enableGrad {
        try policy.surrogateLoss(mean: action.mean, logits: action.logits, reward: reward, mask: action.mask)
      }
      // The first reward only sets the baseline (advantage 0): nothing to learn from yet.
      if advantage != 0 { try applyGradient(of: surrogate) }
      metrics = [
        "selector/reward": reward, "selector/advantage": advantage, "selector/baseline": policy.baseline ?? reward,
        "selector/heldout_loss": now, "selector/heldout_gain": before.loss - now, "selector/cost": cost,
        "selector/loss": try surrogate.item(), "selector/updates": Double(updates),
      ]
    }
    if after == nil, (batch.step + 1) % cmapkd.config.selectorInterval == 0 { after = try measure() }
    if let after { lastHeldOut = (batch.step, after) }
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

  /// The selector's state (keys `selector.…`): its optimizer, update count, latest credits,
  /// the policy's baseline and the latest held-out loss. A pending action is not state: it is
  /// consumed by the `afterStep` of its own step, before any checkpoint.
  public func stateTensors() throws -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for (key, t) in try optimizer.stateDict() { out["selector.optimizer.\(key)"] = t }
    out["selector.updates"] = try Tensor([Int64(updates)], shape: [])
    if let credits {
      out["selector.credits"] = try Tensor(credits.flat + [credits.heldOutLoss, credits.heldOutGradientNorm], shape: [26])
    }
    if let baseline = policy.baseline { out["selector.baseline"] = try Tensor([baseline], shape: []) }
    if let lastHeldOut { out["selector.heldout"] = try Tensor([Double(lastHeldOut.step), lastHeldOut.loss], shape: [2]) }
    return out
  }

  public func loadState(_ tensors: [String: Tensor]) throws {
    var optimizerState: [String: Tensor] = [:]
    for (key, t) in tensors where key.hasPrefix("selector.optimizer.") {
      optimizerState[String(key.dropFirst("selector.optimizer.".count))] = t
    }
    try optimizer.loadStateDict(optimizerState)
    updates = try tensors["selector.updates"]?.itemInt() ?? 0
    if let c = try tensors["selector.credits"]?.doubles() {
      guard c.count == 26 else { throw MethodError("cmapkd: selector.credits has \(c.count) values, expected 26") }
      credits = LevelCredits(
        vision: Array(c[0..<4]), language: Array(c[4..<8]), coupling: Array(c[8..<24]), heldOutLoss: c[24],
        heldOutGradientNorm: c[25])
    } else {
      credits = nil
    }
    let config = cmapkd.config
    policy = LogitNormalPolicy(
      sigma: config.policySigma, baselineMomentum: config.policyBaselineMomentum,
      baseline: try tensors["selector.baseline"]?.item())
    if let h = try tensors["selector.heldout"]?.doubles(), h.count == 2 {
      lastHeldOut = (Int(h[0]), h[1])
    } else {
      lastHeldOut = nil
    }
    pending = nil
  }
}

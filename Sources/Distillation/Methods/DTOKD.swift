import Foundation
import Models
import Torch
import TorchNN

/// Settings of `dtokd`.
public struct DTOKDConfig: Codable, Equatable, Sendable {
  public enum Mode: String, Codable, Sendable, CaseIterable {
    /// The two-objective MGDA min-norm weights, every step, from the log-losses' gradients at
    /// the student's embeddings.
    case mgda
    /// FAMO-style: trade-off logits learned from how much each log-loss fell (amortised: from
    /// one step's loss to the next, no extra forward pass).
    case famo
  }

  /// The method whose loss is balanced: its `task/…` parts are the task objective, every
  /// other part the distillation objective.
  public var base = "cmapkd"
  public var mode = Mode.mgda
  /// FAMO's logits: Adam at this learning rate and L2 weight decay.
  public var famoLearningRate = 0.025
  public var famoWeightDecay = 0.01

  enum CodingKeys: String, CodingKey {
    case base, mode
    case famoLearningRate = "famo_lr", famoWeightDecay = "famo_weight_decay"
  }

  public init() {}

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = DTOKDConfig()
    base = try c.decode(.base, default: d.base)
    mode = try c.decode(.mode, default: d.mode)
    famoLearningRate = try c.decode(.famoLearningRate, default: d.famoLearningRate)
    famoWeightDecay = try c.decode(.famoWeightDecay, default: d.famoWeightDecay)
  }
}

/// `dtokd`: DTO-KD's balancing of the task and the distillation objective (SPEC §7), on top of
/// any other method's loss. With L_t the sum of the base method's `task/…` parts and L_d the
/// sum of the others, the step minimises
///
///   π_d · log L_d + (1 − π_d) · log L_t          (weights constant in the step)
///
/// - `mgda`: the min-norm point of the two log-loss gradients, taken at the student's
///   embeddings E (a backward to E only, not through the towers): with g_d = ∇_E log L_d,
///   g_t = ∇_E log L_t and G their Gram matrix (1 = distillation, 2 = task),
///   π_d = clip((G₂₂ − G₁₂) / (G₁₁ + G₂₂ − 2G₁₂), 0, 1), the α minimising ‖α g_d + (1 − α) g_t‖.
/// - `famo`: z = softmax(ξ), the step minimises Σᵢ zᵢ / c · log Lᵢ with c = Σᵢ zᵢ / Lᵢ (FAMO's
///   normalisation); before each step ξ takes an Adam step along J_softmax(ξ)ᵀ δ, where
///   δᵢ = log Lᵢ(previous step) − log Lᵢ(this step): the objective that fell more loses weight.
public final class DTOKDMethod: DistillationMethod {
  public let name = "dtokd"
  public let config: DTOKDConfig
  public let base: any DistillationMethod
  public var teacherInputs: Set<TeacherInput> { base.teacherInputs }
  public var head: Module? { base.head }
  /// FAMO: logits (distillation, task), Adam's moments and step, the previous log-losses.
  public private(set) var logits = [0.0, 0.0]
  private var moments = (m: [0.0, 0.0], v: [0.0, 0.0], step: 0)
  public private(set) var previous: [Double]?

  public init(config: DTOKDConfig, methods: MethodConfig, context: MethodContext) throws {
    guard config.base != "dtokd", Methods.names.contains(config.base), config.base != "none" else {
      throw MethodError("dtokd: base '\(config.base)' must be a distillation method (one of \(Methods.names.filter { $0 != "none" && $0 != "dtokd" }.joined(separator: ", ")))")
    }
    guard config.famoLearningRate > 0, config.famoWeightDecay >= 0 else {
      throw MethodError("dtokd: famo_lr must be positive and famo_weight_decay ≥ 0")
    }
    self.config = config
    var baseConfig = methods
    baseConfig.name = config.base
    base = try Methods.make(baseConfig, context: context)
  }

  public func prepare(student: CLIPModel) throws { try base.prepare(student: student) }

  public func loss(student: CLIPModel, batch: DistillBatch) throws -> MethodStep {
    let inner = try base.loss(student: student, batch: batch)
    let task = inner.loss.parts.filter { $0.name.hasPrefix("task/") }.map(\.value)
    let distill = inner.loss.parts.filter { !$0.name.hasPrefix("task/") }.map(\.value)
    guard let t0 = task.first, let d0 = distill.first else {
      throw MethodError("dtokd: the base method '\(config.base)' needs both a task term and a distillation term (task_weight > 0)")
    }
    let taskLoss = try task.dropFirst().reduce(t0) { try $0 + $1 }
    let distillLoss = try distill.dropFirst().reduce(d0) { try $0 + $1 }
    // Logs of losses that can reach 0 (a KL): floored so the log stays finite.
    let logs = (distill: try distillLoss.clamp(min: 1e-12).log(), task: try taskLoss.clamp(min: 1e-12).log())
    let values = [try distillLoss.item(), try taskLoss.item()]
    var metrics = inner.metrics
    let weights: (distill: Double, task: Double)
    switch config.mode {
    case .mgda:
      guard let e = inner.embeddings else {
        throw MethodError("dtokd: the base method '\(config.base)' does not report the embeddings its loss was computed from")
      }
      let gd = try Torch.gradients(of: [logs.distill], withRespectTo: [e.image, e.text], retainGraph: true)
      let gt = try Torch.gradients(of: [logs.task], withRespectTo: [e.image, e.text], retainGraph: true)
      func dot(_ a: [Tensor?], _ b: [Tensor?]) throws -> Double {
        try zip(a, b).reduce(0) { sum, pair in
          guard let x = pair.0, let y = pair.1 else { return sum }
          return sum + (try (x.to(.float64) * y.to(.float64)).sum().item())
        }
      }
      let pi = DTOKDMethod.minNormWeight(g11: try dot(gd, gd), g22: try dot(gt, gt), g12: try dot(gd, gt))
      weights = (pi, 1 - pi)
    case .famo:
      if let previous { famoUpdate(delta: zip(previous, values).map { log(max($0, 1e-12)) - log(max($1, 1e-12)) }) }
      let z = DTOKDMethod.softmax(logits)
      let c = z[0] / max(values[0], 1e-12) + z[1] / max(values[1], 1e-12)
      weights = (z[0] / c, z[1] / c)
      metrics["dtokd/logit_distill"] = logits[0]
      metrics["dtokd/logit_task"] = logits[1]
    }
    var parts = LossParts()
    parts.add("dtokd/distill", try logs.distill * weights.distill)
    parts.add("dtokd/task", try logs.task * weights.task)
    metrics["dtokd/pi_distill"] = config.mode == .mgda ? weights.distill : weights.distill / (weights.distill + weights.task)
    metrics["dtokd/loss_distill"] = values[0]
    metrics["dtokd/loss_task"] = values[1]
    for (name, value) in inner.loss.parts { metrics["dtokd/base/\(name)"] = try value.detach().item() }
    var step = try MethodStep(loss: parts, method: name, levelWeights: inner.levelWeights, metrics: metrics)
    step.embeddings = inner.embeddings
    return step
  }

  public func afterStep(student: CLIPModel, batch: DistillBatch, result: MethodStep, context: StepContext) throws {
    // The base method sees its own step (queues, balancers, selectors read their own metrics).
    var inner = result
    for (key, value) in result.metrics where key.hasPrefix("dtokd/base/") { inner.metrics[String(key.dropFirst(11))] = value }
    try base.afterStep(student: student, batch: batch, result: inner, context: context)
    if config.mode == .famo, let d = result.metrics["dtokd/loss_distill"], let t = result.metrics["dtokd/loss_task"] {
      previous = [d, t]
    }
  }

  /// π_d = clip((G₂₂ − G₁₂) / (G₁₁ + G₂₂ − 2G₁₂), 0, 1): the weight on objective 1 of the
  /// shortest convex combination of two gradients (½ when they coincide).
  public static func minNormWeight(g11: Double, g22: Double, g12: Double) -> Double {
    let denominator = g11 + g22 - 2 * g12
    guard denominator > 1e-20 else { return 0.5 }
    return min(max((g22 - g12) / denominator, 0), 1)
  }

  static func softmax(_ x: [Double]) -> [Double] {
    let top = x.max() ?? 0
    let e = x.map { exp($0 - top) }
    let total = e.reduce(0, +)
    return e.map { $0 / total }
  }

  /// One Adam step (torch.optim.Adam: L2 weight decay added to the gradient, bias-corrected
  /// moments, β = (0.9, 0.999), ε = 1e-8) on the logits along J_softmax(ξ)ᵀ δ.
  public func famoUpdate(delta: [Double]) {
    let z = DTOKDMethod.softmax(logits)
    // J_softmax = diag(z) − z zᵀ (symmetric): (Jᵀδ)ᵢ = zᵢ (δᵢ − Σⱼ zⱼ δⱼ).
    let mean = zip(z, delta).reduce(0) { $0 + $1.0 * $1.1 }
    let (b1, b2, eps, lr) = (0.9, 0.999, 1e-8, config.famoLearningRate)
    moments.step += 1
    let t = Double(moments.step)
    for i in 0..<2 {
      let g = z[i] * (delta[i] - mean) + config.famoWeightDecay * logits[i]
      moments.m[i] = b1 * moments.m[i] + (1 - b1) * g
      moments.v[i] = b2 * moments.v[i] + (1 - b2) * g * g
      let mHat = moments.m[i] / (1 - pow(b1, t)), vHat = moments.v[i] / (1 - pow(b2, t))
      logits[i] -= lr * mHat / (vHat.squareRoot() + eps)
    }
  }

  public func stateTensors() throws -> [String: Tensor] {
    var out = try base.stateTensors().reduce(into: [String: Tensor]()) { $0["base.\($1.key)"] = $1.value }
    if config.mode == .famo {
      out["famo.state"] = try Tensor(
        logits + moments.m + moments.v + [Double(moments.step)] + (previous ?? [.nan, .nan]), shape: [9])
    }
    return out
  }

  public func loadState(_ tensors: [String: Tensor]) throws {
    var inner: [String: Tensor] = [:]
    for (key, value) in tensors where key.hasPrefix("base.") { inner[String(key.dropFirst(5))] = value }
    try base.loadState(inner)
    if let state = tensors["famo.state"] {
      let s = try state.doubles()
      guard s.count == 9 else { throw MethodError("dtokd: famo.state holds \(s.count) numbers, expected 9") }
      logits = Array(s[0..<2])
      moments = (Array(s[2..<4]), Array(s[4..<6]), Int(s[6]))
      previous = s[7].isNaN ? nil : Array(s[7..<9])
    }
  }
}

import CTorch
import Torch

/// Adam with decoupled weight decay (Loshchilov & Hutter), step for step the same as
/// `torch.optim.AdamW` (default, single-tensor implementation).
///
/// ```swift
/// let opt = try AdamW(ParameterGroup.decayAndNoDecay(model.namedParameters()), learningRate: 1e-3)
/// try loss.backward(); try opt.step(); try opt.zeroGrad()
/// ```
public final class AdamW: Optimizer {
  public var learningRate: Double
  public let beta1: Double
  public let beta2: Double
  public let eps: Double
  public let weightDecay: Double
  public let groups: [ParameterGroup]

  /// Per-parameter state, created at the parameter's first update.
  final class State {
    let expAvg: Tensor
    let expAvgSq: Tensor
    var step: Int
    init(expAvg: Tensor, expAvgSq: Tensor, step: Int) {
      self.expAvg = expAvg
      self.expAvgSq = expAvgSq
      self.step = step
    }
  }
  private var state: [ObjectIdentifier: State] = [:]

  public init(
    _ groups: [ParameterGroup], learningRate: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
    eps: Double = 1e-8, weightDecay: Double = 1e-2
  ) throws {
    guard learningRate >= 0, eps >= 0, (0..<1).contains(betas.0), (0..<1).contains(betas.1), weightDecay >= 0 else {
      throw TorchError(
        "AdamW", "invalid hyper-parameters lr=\(learningRate) betas=\(betas) eps=\(eps) weightDecay=\(weightDecay)")
    }
    self.groups = groups
    self.learningRate = learningRate
    (beta1, beta2) = betas
    self.eps = eps
    self.weightDecay = weightDecay
  }

  public convenience init(
    _ parameters: [Tensor], learningRate: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999),
    eps: Double = 1e-8, weightDecay: Double = 1e-2
  ) throws {
    try self.init([ParameterGroup(parameters)], learningRate: learningRate, betas: betas, eps: eps, weightDecay: weightDecay)
  }

  public func step() throws {
    for group in groups {
      let lr = learningRate * group.learningRateScale
      let decay = group.weightDecay ?? weightDecay
      // Parameters that started later have their own step count; update each count's set in one call.
      var byStep: [Int: [(Tensor, Tensor, State)]] = [:]
      for (_, p, g) in try withGradients(group) {
        let s = try stateFor(p)
        s.step += 1
        byStep[s.step, default: []].append((p, g, s))
      }
      for (step, items) in byStep {
        let params = items.map(\.0), grads = items.map(\.1)
        let m = items.map(\.2.expAvg), v = items.map(\.2.expAvgSq)
        try Tensor.withHandles(params) { ph, n in
          try Tensor.withHandles(grads) { gh, _ in
            try Tensor.withHandles(m) { mh, _ in
              try Tensor.withHandles(v) { vh, _ in
                try checkStatus("AdamW.step", ct_adamw_step(ph, gh, mh, vh, n, Int64(step), lr, beta1, beta2, eps, decay))
              }
            }
          }
        }
      }
    }
  }

  private func stateFor(_ p: Tensor) throws -> State {
    if let s = state[ObjectIdentifier(p)] { return s }
    let s = State(expAvg: try p.detach().zerosLike(), expAvgSq: try p.detach().zerosLike(), step: 0)
    state[ObjectIdentifier(p)] = s
    return s
  }

  /// Keys: `<group>.<index>.exp_avg`, `.exp_avg_sq`, `.step` (a 0-d int64 tensor).
  public func stateDict() throws -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for (gi, group) in groups.enumerated() {
      for (pi, p) in group.parameters.enumerated() {
        guard let s = state[ObjectIdentifier(p)] else { continue }
        out["\(gi).\(pi).exp_avg"] = s.expAvg
        out["\(gi).\(pi).exp_avg_sq"] = s.expAvgSq
        out["\(gi).\(pi).step"] = try Tensor([Int64(s.step)], shape: [])
      }
    }
    return out
  }

  public func loadStateDict(_ saved: [String: Tensor]) throws {
    var restored: [ObjectIdentifier: State] = [:]
    for (gi, group) in groups.enumerated() {
      for (pi, p) in group.parameters.enumerated() {
        let key = "\(gi).\(pi)"
        guard let m = saved["\(key).exp_avg"], let v = saved["\(key).exp_avg_sq"], let step = saved["\(key).step"] else {
          continue
        }
        guard m.shape == p.shape, v.shape == p.shape else {
          throw TorchError("AdamW.loadStateDict", "state '\(key)' has shape \(m.shape), parameter has \(p.shape)")
        }
        let s = State(expAvg: try p.detach().zerosLike(), expAvgSq: try p.detach().zerosLike(), step: try step.itemInt())
        try Torch.noGrad {
          try s.expAvg.copy(from: m)
          try s.expAvgSq.copy(from: v)
        }
        restored[ObjectIdentifier(p)] = s
      }
    }
    let unknown = Set(saved.keys.map { $0.split(separator: ".").prefix(2).joined(separator: ".") })
      .subtracting(groups.enumerated().flatMap { gi, g in g.parameters.indices.map { "\(gi).\($0)" } })
    if !unknown.isEmpty {
      throw TorchError(
        "AdamW.loadStateDict",
        "state for parameters this optimizer does not have: \(unknown.sorted().prefix(5).joined(separator: ", "))")
    }
    state = restored
  }
}

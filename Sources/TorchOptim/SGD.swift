import CTorch
import Torch

/// Stochastic gradient descent with optional momentum, dampening, Nesterov and (coupled)
/// weight decay, step for step the same as `torch.optim.SGD`.
public final class SGD: Optimizer {
  public var learningRate: Double
  public let momentum: Double
  public let dampening: Double
  public let weightDecay: Double
  public let nesterov: Bool
  public let groups: [ParameterGroup]
  private var buffers: [ObjectIdentifier: Tensor] = [:]

  public init(
    _ groups: [ParameterGroup], learningRate: Double, momentum: Double = 0, dampening: Double = 0,
    weightDecay: Double = 0, nesterov: Bool = false
  ) throws {
    if nesterov && (momentum <= 0 || dampening != 0) {
      throw TorchError("SGD", "Nesterov momentum requires a momentum and zero dampening")
    }
    self.groups = groups
    self.learningRate = learningRate
    self.momentum = momentum
    self.dampening = dampening
    self.weightDecay = weightDecay
    self.nesterov = nesterov
  }

  public convenience init(
    _ parameters: [Tensor], learningRate: Double, momentum: Double = 0, weightDecay: Double = 0, nesterov: Bool = false
  ) throws {
    try self.init(
      [ParameterGroup(parameters)], learningRate: learningRate, momentum: momentum, weightDecay: weightDecay, nesterov: nesterov)
  }

  public func step() throws {
    for group in groups {
      let lr = learningRate * group.learningRateScale
      let decay = group.weightDecay ?? weightDecay
      for (_, p, g) in try withGradients(group) {
        // One parameter per call: the first-step flag is per momentum buffer.
        var first = false
        var buffer: Tensor? = nil
        if momentum != 0 {
          if let b = buffers[ObjectIdentifier(p)] {
            buffer = b
          } else {
            let b = try p.detach().zerosLike()
            buffers[ObjectIdentifier(p)] = b
            buffer = b
            first = true
          }
        }
        let momentumBuffers = buffer.map { [$0] } ?? []
        try Tensor.withHandles([p]) { ph, _ in
          try Tensor.withHandles([g]) { gh, _ in
            try Tensor.withHandles(momentumBuffers) { bh, _ in
              try checkStatus(
                "SGD.step", ct_sgd_step(ph, gh, buffer == nil ? nil : bh, 1, lr, momentum, dampening, decay, nesterov, first))
            }
          }
        }
      }
    }
  }

  public func stateDict() throws -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for (gi, group) in groups.enumerated() {
      for (pi, p) in group.parameters.enumerated() {
        if let b = buffers[ObjectIdentifier(p)] { out["\(gi).\(pi).momentum_buffer"] = b }
      }
    }
    return out
  }

  public func loadStateDict(_ saved: [String: Tensor]) throws {
    buffers = [:]
    for (gi, group) in groups.enumerated() {
      for (pi, p) in group.parameters.enumerated() {
        guard let b = saved["\(gi).\(pi).momentum_buffer"] else { continue }
        let copy = try p.detach().zerosLike()
        try Torch.noGrad { try copy.copy(from: b) }
        buffers[ObjectIdentifier(p)] = copy
      }
    }
  }
}

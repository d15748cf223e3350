import CTorch
import Torch

/// Parameters that share hyper-parameters (PyTorch's param groups).
public struct ParameterGroup {
  public var parameters: [Tensor]
  /// Overrides the optimizer's weight decay for this group (0 for biases and norms).
  public var weightDecay: Double?
  /// Multiplies the optimizer's learning rate for this group.
  public var learningRateScale: Double

  public init(_ parameters: [Tensor], weightDecay: Double? = nil, learningRateScale: Double = 1) {
    self.parameters = parameters
    self.weightDecay = weightDecay
    self.learningRateScale = learningRateScale
  }

  /// Splits named parameters into a decayed group and a no-decay group. By default,
  /// tensors of rank < 2 (biases, norm gains, logit scales) are not decayed, as open_clip
  /// and timm do; pass `exclude` to decide per parameter name.
  public static func decayAndNoDecay(
    _ named: [(String, Tensor)], exclude: ((String, Tensor) -> Bool)? = nil
  ) -> [ParameterGroup] {
    let isExcluded = exclude ?? { _, t in t.rank < 2 }
    let trainable = named.filter { $0.1.requiresGrad }
    return [
      ParameterGroup(trainable.filter { !isExcluded($0.0, $0.1) }.map(\.1)),
      ParameterGroup(trainable.filter { isExcluded($0.0, $0.1) }.map(\.1), weightDecay: 0),
    ]
  }
}

/// What every optimizer offers the training loop.
public protocol Optimizer: AnyObject {
  /// The base learning rate; schedules set it before each step.
  var learningRate: Double { get set }
  var groups: [ParameterGroup] { get }
  /// Applies one update from the parameters' accumulated gradients.
  func step() throws
  /// Optimizer state as named tensors (for checkpoints).
  func stateDict() throws -> [String: Tensor]
  func loadStateDict(_ state: [String: Tensor]) throws
}

extension Optimizer {
  /// Drops every parameter's gradient (set to none, as PyTorch's default).
  public func zeroGrad() throws {
    for group in groups { for p in group.parameters { try p.zeroGrad() } }
  }

  public var parameters: [Tensor] { groups.flatMap(\.parameters) }
}

/// Collects (parameter, gradient) pairs of a group, skipping parameters without a gradient.
func withGradients(_ group: ParameterGroup) throws -> [(index: Int, param: Tensor, grad: Tensor)] {
  var result: [(Int, Tensor, Tensor)] = []
  for (i, p) in group.parameters.enumerated() {
    if let g = try p.grad { result.append((i, p, g)) }
  }
  return result
}

/// Scales all gradients so that their global p-norm is at most `maxNorm`
/// (`torch.nn.utils.clip_grad_norm_`). Returns the norm before clipping.
@discardableResult
/// The total norm of the parameters' gradients, changing nothing.
public func gradientNorm(_ parameters: [Tensor], normType: Double = 2) throws -> Double {
  try clipGradNorm(parameters, maxNorm: .infinity, normType: normType)
}

public func clipGradNorm(_ parameters: [Tensor], maxNorm: Double, normType: Double = 2) throws -> Double {
  var total = 0.0
  try Tensor.withHandles(parameters) { handles, n in
    try checkStatus("clipGradNorm", ct_clip_grad_norm(handles, n, maxNorm, normType, &total))
  }
  return total
}

import Foundation
import Torch

/// A stochastic policy over level weights in [0, 1] and its REINFORCE estimator, for the
/// ALSN's `policy` mode: state = the sample's features, action = continuous level weights,
/// reward = held-out progress of the student minus λ · compute cost of the levels used.
///
/// Actions are a = sigmoid(z) with z ~ N(μ, σ²) per weight, μ the ALSN head's pre-sigmoid
/// output. Then ∇_μ log π(a) = (z − μ) / σ² (the change of variables' Jacobian does not
/// depend on μ), and the surrogate loss −(r − b)·log π(a) has the REINFORCE gradient, with
/// b a running-mean baseline that lowers the variance without biasing it.
public struct LogitNormalPolicy {
  /// Exploration scale σ in logit space.
  public var sigma: Double
  /// Baseline: exponential moving average of rewards (nil until the first reward).
  public private(set) var baseline: Double?
  public var baselineMomentum: Double

  /// - Parameters:
  ///   - baseline: a baseline to resume from (a checkpoint's); nil starts without one.
  public init(sigma: Double = 0.5, baselineMomentum: Double = 0.9, baseline: Double? = nil) {
    self.sigma = sigma
    self.baselineMomentum = baselineMomentum
    self.baseline = baseline
  }

  /// Samples actions for means μ [B, K]: returns the actions a ∈ (0, 1) and the logits z (both detached).
  public func sample(mean: Tensor, generator: Generator? = nil) throws -> (actions: Tensor, logits: Tensor) {
    let noise = try Tensor.randn(mean.shape, dtype: mean.dtype, device: mean.device, generator: generator)
    let z = try (mean.detach() + noise * sigma)
    return (try z.sigmoid(), z)
  }

  /// log π(a) up to a constant independent of μ, per row: Σ_k −(z − μ)² / (2σ²) → [B].
  /// - Parameters:
  ///   - mask: [1, K] or [B, K], 1 for the action dimensions that acted (inactive levels
  ///     change nothing, so their noise must not enter the estimate); nil = all.
  public func logProbability(mean: Tensor, logits z: Tensor, mask: Tensor? = nil) throws -> Tensor {
    var squared = try (z - mean).square()
    if let mask { squared = try squared * mask }
    return try squared.sum(dim: 1) * (-0.5 / (sigma * sigma))
  }

  /// The advantage r − b of a reward against the current baseline (0 for the first reward,
  /// which sets the baseline).
  public func advantage(_ reward: Double) -> Double { reward - (baseline ?? reward) }

  /// The surrogate whose gradient w.r.t. μ is the REINFORCE estimate for reward `reward`
  /// (one scalar for the batch), and updates the baseline.
  public mutating func surrogateLoss(mean: Tensor, logits z: Tensor, reward: Double, mask: Tensor? = nil) throws -> Tensor {
    let advantage = advantage(reward)
    baseline = baseline.map { baselineMomentum * $0 + (1 - baselineMomentum) * reward } ?? reward
    return try logProbability(mean: mean, logits: z, mask: mask).mean() * -advantage
  }

  /// The surrogate for one reward per sample, rewards [B]: −mean_b (r_b − b)·log π(a_b),
  /// where b is the running baseline (the batch's mean reward when there is none yet, so the
  /// first batch already learns from which samples did better than the others); then the
  /// baseline moves towards the batch's mean reward.
  public mutating func surrogateLoss(mean: Tensor, logits z: Tensor, rewards: Tensor, mask: Tensor? = nil) throws -> Tensor {
    let batchMean = try rewards.mean().item()
    let advantages = try (rewards.detach() - (baseline ?? batchMean)).to(mean.dtype)  // [B]
    baseline = baseline.map { baselineMomentum * $0 + (1 - baselineMomentum) * batchMean } ?? batchMean
    return try (logProbability(mean: mean, logits: z, mask: mask) * advantages).mean().neg()
  }
}

/// Relative compute of the pyramid levels, normalized to sum to 1; the policy's cost term
/// uses it.
public enum LevelCost {
  /// The vision levels' relative cost: the cells of P2, P3, P4 (their adapters' convolutions
  /// run over every cell) and 1 for the P5 vector.
  public static func vision(levelCells: [Int]) -> [Double] {
    let raw = levelCells.prefix(3).map(Double.init) + [1]
    let total = raw.reduce(0, +)
    return raw.map { $0 / total }
  }

  /// The same for the `seed` ladder on a teacher grid of `gridCells` cells (P2 at 4×, P3 at 2×).
  public static func vision(gridCells: Int) -> [Double] { vision(levelCells: [16 * gridCells, 4 * gridCells, gridCells]) }

  /// The language levels' relative cost: L1 over every token, L2 over every window of
  /// `window` tokens, L3 and L4 one vector each; normalized to sum to 1.
  public static func language(tokens: Int, window: Int) -> [Double] {
    let raw = [Double(tokens), Double(max(tokens - window + 1, 1)), 1, 1]
    let total = raw.reduce(0, +)
    return raw.map { $0 / total }
  }

  /// Expected cost Σᵢ wᵢ cᵢ of weights w [B, 4] (batch mean).
  public static func expected(_ weights: Tensor, costs: [Double]) throws -> Double {
    let c = try Tensor(costs.map(Float.init), shape: [1, costs.count]).to(weights.device, weights.dtype)
    return try (weights.detach() * c).sum(dim: 1).mean().item()
  }
}

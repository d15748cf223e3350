import Foundation
import Torch

/// Settings of DSMD's loss balancer.
public struct DSMDBalancerConfig: Codable, Equatable, Sendable {
  /// false: every term weight stays 1 (the fixed-weight ablation).
  public var enabled = true
  /// β of the running average of each term.
  public var momentum = 0.9
  /// T of the softmax over progress ratios: large T → weights near 1, small T → the slowest
  /// term takes almost all of the weight budget.
  public var temperature = 1.0

  enum CodingKeys: String, CodingKey { case enabled, momentum, temperature }

  public init(enabled: Bool = true, momentum: Double = 0.9, temperature: Double = 1.0) {
    self.enabled = enabled
    self.momentum = momentum
    self.temperature = temperature
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = DSMDBalancerConfig()
    enabled = try c.decode(.enabled, default: d.enabled)
    momentum = try c.decode(.momentum, default: d.momentum)
    temperature = try c.decode(.temperature, default: d.temperature)
  }
}

/// DSMD's dynamic self-adaptive loss balancer: sets the weight of each distillation term from
/// how far that term has come since training began.
///
/// After every optimizer step it observes each term's unweighted value Lₖ(t) — a distance to
/// the teacher's outputs, so it reads nothing but teacher outputs and image-level pairs — and keeps
///   Lₖ⁰ = Lₖ(1)                                   (the term's starting level)
///   mₖ(1) = Lₖ(1),  mₖ(t) = β·mₖ(t−1) + (1−β)·Lₖ(t)   (its running average)
///   rₖ = mₖ / max(Lₖ⁰, ε)                          (progress ratio: 1 = no progress yet)
/// and the next step weighs term k by
///   wₖ = K · exp(rₖ / T) / Σⱼ exp(rⱼ / T),         Σₖ wₖ = K, so the mean weight is 1.
/// Before the first observation every weight is 1. Terms that lag behind (ratio near 1) gain
/// weight; terms that are already well learnt give it up. Why the ratio to the start and not
/// the previous step's ratio (DWA): single batches are noisy, and a ratio to a fixed starting
/// level is scale-free, so terms of different sizes compare. The weights depend only on the
/// sequence of observed values: deterministic and restorable from `stateTensors()`.
public final class DSMDBalancer {
  /// The balanced terms, in the order of `weights()`.
  public let terms: [String]
  public let config: DSMDBalancerConfig
  /// Lₖ⁰; nil before the first observation.
  public private(set) var initial: [Double]?
  /// mₖ.
  public private(set) var average: [Double]
  /// Observations so far.
  public private(set) var steps = 0
  static let epsilon = 1e-12

  public init(terms: [String], config: DSMDBalancerConfig = DSMDBalancerConfig()) throws {
    guard (0..<1).contains(config.momentum), config.temperature > 0, config.temperature.isFinite else {
      throw MethodError(
        "dsmd balancer: momentum must be in [0, 1) and temperature positive (got \(config.momentum), \(config.temperature))")
    }
    self.terms = terms
    self.config = config
    average = Array(repeating: 0, count: terms.count)
  }

  /// wₖ for the next step, in `terms` order.
  public func weights() -> [Double] {
    guard config.enabled, let initial else { return Array(repeating: 1, count: terms.count) }
    let ratios = zip(average, initial).map { $0 / max($1, DSMDBalancer.epsilon) }
    // Subtracting the largest ratio keeps exp finite; the softmax is unchanged.
    let top = ratios.max() ?? 0
    let e = ratios.map { exp(($0 - top) / config.temperature) }
    let total = e.reduce(0, +)
    return e.map { Double(terms.count) * $0 / total }
  }

  /// The weights by term name.
  public func namedWeights() -> [String: Double] { Dictionary(uniqueKeysWithValues: zip(terms, weights())) }

  /// Records one step's unweighted term values (in `terms` order).
  public func observe(_ values: [Double]) throws {
    guard values.count == terms.count else {
      throw MethodError("dsmd balancer: \(values.count) values for \(terms.count) terms \(terms)")
    }
    if let bad = zip(terms, values).first(where: { !$0.1.isFinite }) {
      throw MethodError("dsmd balancer: term '\(bad.0)' is \(bad.1) at step \(steps + 1); the loss diverged")
    }
    if initial == nil {
      initial = values
      average = values
    } else {
      let beta = config.momentum
      average = zip(average, values).map { beta * $0 + (1 - beta) * $1 }
    }
    steps += 1
  }

  /// Lₖ⁰ and mₖ of each term (`<prefix>.<term>.initial` / `.average`, float64 scalars) and
  /// the step count; nothing before the first observation. Keys name the terms, so a checkpoint
  /// never hands one term's history to another.
  public func stateTensors(prefix: String) throws -> [String: Tensor] {
    guard let initial else { return [:] }
    var out = ["\(prefix).steps": try Tensor.scalar(Double(steps), dtype: .int64)]
    for (k, term) in terms.enumerated() {
      out["\(prefix).\(term).initial"] = try Tensor.scalar(initial[k], dtype: .float64)
      out["\(prefix).\(term).average"] = try Tensor.scalar(average[k], dtype: .float64)
    }
    return out
  }

  /// The inverse of `stateTensors`; no saved state resets the balancer.
  public func loadState(_ tensors: [String: Tensor], prefix: String) throws {
    guard let s = tensors["\(prefix).steps"] else {
      (initial, average, steps) = (nil, Array(repeating: 0, count: terms.count), 0)
      return
    }
    var loadedInitial: [Double] = [], loadedAverage: [Double] = []
    for term in terms {
      guard let i = tensors["\(prefix).\(term).initial"], let a = tensors["\(prefix).\(term).average"] else {
        throw MethodError(
          "dsmd balancer: the checkpoint has no history for term '\(term)'; resume with the same non-zero term weights it was saved with"
        )
      }
      loadedInitial.append(try i.item())
      loadedAverage.append(try a.item())
    }
    (initial, average, steps) = (loadedInitial, loadedAverage, try s.itemInt())
  }
}

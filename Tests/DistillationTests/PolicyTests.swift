import Distillation
import Foundation
import TestSupport
import Testing
import Torch
import TorchOptim

@Suite("Policy mode: the REINFORCE estimator")
struct PolicyTests {
  @Test("the estimator is unbiased: its mean matches the analytic gradient of E[r] on a toy reward")
  func unbiased() throws {
    // r(a) = −(a − 0.8)², a = sigmoid(z), z ~ N(μ, σ²). ∂E[r]/∂μ by finite differences of a
    // quadrature of E[r] (independent of the estimator) vs the mean of REINFORCE samples.
    let sigma = 0.5, mu = -0.3
    func expectedReward(_ m: Double) -> Double {
      let n = 4000
      var total = 0.0, weight = 0.0
      for k in 0..<n {
        let z = m + sigma * (-6 + 12 * (Double(k) + 0.5) / Double(n))
        let w = Foundation.exp(-0.5 * ((z - m) / sigma) * ((z - m) / sigma))
        let a = 1 / (1 + Foundation.exp(-z))
        total += w * -((a - 0.8) * (a - 0.8))
        weight += w
      }
      return total / weight
    }
    let analytic = (expectedReward(mu + 1e-4) - expectedReward(mu - 1e-4)) / 2e-4
    let policy = LogitNormalPolicy(sigma: sigma)
    let g = try Generator(seed: 7)
    let mean = try Tensor.full([20000, 1], mu, dtype: .float64).requiresGrad(true)
    let (actions, z) = try policy.sample(mean: mean, generator: g)
    let rewards = try (actions - 0.8).square().neg()  // one reward per sample
    // Σ_b r_b ∇ log π_b / B, with no baseline: the plain estimator.
    try (policy.logProbability(mean: mean, logits: z) * rewards.squeeze(1)).mean().backward()
    let estimate = try mean.grad!.sum().item()
    #expect(Swift.abs(estimate - analytic) < 0.1 * Swift.abs(analytic) + 1e-3, "REINFORCE \(estimate) vs analytic \(analytic)")
  }

  @Test("REINFORCE with a baseline finds the known optimum of a toy problem")
  func findsOptimum() throws {
    // Reward peaks when the 4 weights equal target; the policy's mean starts at 0 (a = 0.5).
    let target: [Double] = [0.9, 0.2, 0.6, 0.1]
    var policy = LogitNormalPolicy(sigma: 0.4, baselineMomentum: 0.8)
    let mean = try Tensor.zeros([1, 4]).requiresGrad(true)
    let optimizer = try SGD([mean], learningRate: 0.5)
    let g = try Generator(seed: 3)
    let t = try Tensor(target.map(Float.init), shape: [1, 4])
    for _ in 0..<3000 {
      let (a, z) = try policy.sample(mean: mean, generator: g)
      let reward = try (a - t).square().sum().neg().item()
      let loss = try policy.surrogateLoss(mean: mean, logits: z, reward: reward)
      try optimizer.zeroGrad()
      try loss.backward()
      try optimizer.step()
    }
    let learned = try mean.sigmoid().doubles()
    for (l, t) in zip(learned, target) { #expect(Swift.abs(l - t) < 0.08, "learned \(learned) vs optimum \(target)") }
  }

  @Test("masked log-probability: inactive action dimensions contribute nothing")
  func maskedLogProbability() throws {
    let policy = LogitNormalPolicy(sigma: 0.5)
    let mean = try Tensor([0, 0, 0, 0] as [Float], shape: [1, 4])
    let z = try Tensor([1, 2, 3, 4] as [Float], shape: [1, 4])
    let mask = try Tensor([1, 0, 1, 0] as [Float], shape: [1, 4])
    // −(1² + 3²) / (2 · 0.25) = −20
    #expect(Swift.abs(try policy.logProbability(mean: mean, logits: z, mask: mask).item() + 20) < 1e-5)
    var withBaseline = LogitNormalPolicy(sigma: 0.5, baselineMomentum: 0.5, baseline: 1)
    #expect(withBaseline.advantage(3) == 2)
    _ = try withBaseline.surrogateLoss(mean: mean, logits: z, reward: 3, mask: mask)
    #expect(withBaseline.baseline == 2)
  }

  @Test("level costs follow the levels' spatial sizes")
  func costs() throws {
    let c = LevelCost.vision(gridCells: 64)
    #expect(Swift.abs(c.reduce(0, +) - 1) < 1e-12 && c[0] > c[1] && c[1] > c[2] && c[2] > c[3])
    let l = LevelCost.language(tokens: 32, window: 3)
    #expect(Swift.abs(l.reduce(0, +) - 1) < 1e-12 && l[0] > l[1] && l[1] > l[2] && l[2] == l[3])
    let w = try Tensor([1, 0, 0, 0, 0, 0, 0, 1] as [Float], shape: [2, 4])
    #expect(Swift.abs(try LevelCost.expected(w, costs: c) - (c[0] + c[3]) / 2) < 1e-6)
  }
}

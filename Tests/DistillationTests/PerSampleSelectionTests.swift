import Distillation
import Foundation
import Pyramid
import TestSupport
import Testing
import Torch
import TorchNN

/// A problem whose credits are known by hand: θ ∈ R², the held-out loss L_h = ½‖θ − θ*‖²
/// and each (sample, level) term ℓ_bk = ½‖θ − t_bk‖², so ⟨∇L_h, ∇ℓ_bk⟩ = ⟨θ − θ*, θ − t_bk⟩.
///
/// Two groups of eight samples. For group 1, level A (P2) pulls θ towards θ* and level B (P3)
/// away from it; for group 2 the other way round. C and D (P4, P5) sit at θ: zero gradient.
/// Summed over the batch, A and B cancel exactly: a batch-level credit sees nothing to choose.
private struct TwoGroups {
  static let batch = 16
  let theta: Tensor
  let target: [Double] = [1, 1]
  /// t_bk for k = A, B (C and D are θ itself).
  func targets(_ b: Int) -> [[Double]] { b < TwoGroups.batch / 2 ? [[2, 0], [-2, 0]] : [[0, -2], [0, 2]] }

  init(at point: [Double]) throws { theta = try Tensor(point, shape: [2]).to(.float32).requiresGrad(true) }

  var heldOutGradient: [Tensor?] {
    get throws { [try (theta.detach() - Tensor(target, shape: [2]).to(.float32))] }
  }

  /// Σ_bk ε_bk ℓ_bk / B, the terms laid out in the vision head (columns 0…3 of [B, 24]).
  func terms(_ epsilon: Tensor) throws -> Tensor {
    var total: Tensor?
    for b in 0..<TwoGroups.batch {
      for (k, t) in targets(b).enumerated() {
        let loss = try (theta - Tensor(t, shape: [2]).to(.float32)).square().sum() * 0.5
        let term = try epsilon.select(dim: 0, index: b).select(dim: 0, index: k) * loss
        total = try total.map { try $0 + term } ?? term
      }
    }
    return try total! / Double(TwoGroups.batch)
  }

  /// The hand-derived credit ⟨θ − θ*, θ − t_bk⟩ / B at a point.
  func expectedCredit(_ point: [Double], sample b: Int, level k: Int) -> Double {
    let t = k < 2 ? targets(b)[k] : point
    let dot = (point[0] - target[0]) * (point[0] - t[0]) + (point[1] - target[1]) * (point[1] - t[1])
    return dot / Double(TwoGroups.batch)
  }

  /// Each group's features: a one-hot group code (plus a little per-sample noise), [B, 8].
  static func features() throws -> Tensor {
    let rows = (0..<batch).map { b -> [Float] in
      var row = [Float](repeating: 0, count: 8)
      row[b < batch / 2 ? 0 : 1] = 1
      row[2 + b % 6] = 0.1
      return row
    }
    return try Tensor(rows.flatMap { $0 }, shape: [batch, 8])
  }
}

@Suite("Per-sample selection: look-ahead credits and a selector that tells two groups apart", .serialized)
struct PerSampleSelectionTests {
  @Test("look-ahead credits by double backward equal the hand-derived ⟨∇L_h, ∇ℓ_bk⟩ / B for every sample and level")
  func creditsMatchHandDerivation() throws {
    let point = [0.3, -0.2]
    let problem = try TwoGroups(at: point)
    let credits = try LookAheadCredit.perSample(
      parameters: [problem.theta], heldOutGradient: problem.heldOutGradient, shape: [TwoGroups.batch, 24],
      terms: problem.terms)
    #expect(credits.shape == [TwoGroups.batch, 24] && credits.dtype == .float64)
    for b in 0..<TwoGroups.batch {
      for k in 0..<24 {
        let expected = k < 4 ? problem.expectedCredit(point, sample: b, level: k) : 0
        let got = try credits.select(dim: 0, index: b).select(dim: 0, index: k).item()
        #expect(Swift.abs(got - expected) < 1e-6, "credit[\(b), \(k)] = \(got), expected \(expected)")
      }
    }
    // Group 1: A helps, B hurts; group 2: the reverse.
    let first = problem.expectedCredit(point, sample: 0, level: 0)
    #expect(first > 0 && problem.expectedCredit(point, sample: 0, level: 1) < 0)
    #expect(problem.expectedCredit(point, sample: 15, level: 0) < 0 && problem.expectedCredit(point, sample: 15, level: 1) > 0)
  }

  @Test("two groups: per-sample credits teach the ALSN A for group 1 and B for group 2; batch-level credits cannot")
  func twoGroups() throws {
    try Torch.manualSeed(7)
    // At θ = 0 the batch sums of A's and B's credits cancel exactly.
    let problem = try TwoGroups(at: [0, 0])
    let perSample = try LookAheadCredit.perSample(
      parameters: [problem.theta], heldOutGradient: problem.heldOutGradient, shape: [TwoGroups.batch, 24],
      terms: problem.terms)
    let credits = try LevelCredits(perSample: perSample, heldOutLoss: 1, heldOutGradientNorm: 1)
    #expect(credits.vision.allSatisfy { Swift.abs($0) < 1e-9 }, "batch credits \(credits.vision)")

    var config = CMAPKDConfig(selection: .gating)
    config.lambdas.intraLanguage = 0
    config.lambdas.pyramid = 0
    config.selectorLearningRate = 1e-2
    let features = try TwoGroups.features()
    let all = (vision: Set(Level.allCases), language: Set(Level.allCases))

    /// Trains a fresh ALSN on the given credits; returns each group's mean vision weights.
    func train(_ credits: LevelCredits) throws -> (group1: [Double], group2: [Double], spread: Double) {
      try Torch.manualSeed(7)
      let alsn = try ALSN(featureWidth: 8)
      let trainer = try SelectorTrainer(cmapkd: CMAPKD(config), alsn: alsn)
      for _ in 0..<300 { try trainer.gatingUpdate(credits: credits, image: features, text: features, active: all) }
      alsn.eval()
      let w = try Torch.noGrad { try alsn(image: features, text: features, activeVision: all.vision, activeLanguage: all.language) }
      let half = TwoGroups.batch / 2
      return (
        try w.vision.narrow(dim: 0, start: 0, length: half).mean(dim: 0).doubles(),
        try w.vision.narrow(dim: 0, start: half, length: half).mean(dim: 0).doubles(),
        try w.vision.std(dims: [0]).mean().item()
      )
    }

    // The optimum for ĉ = (½, −½, 0, 0) at β = 0.5 is w ∝ (e, 1/e, 1, 1): A ≈ 0.53, B ≈ 0.07.
    let learned = try train(credits)
    #expect(learned.group1[0] > 0.45 && learned.group1[1] < 0.12, "group 1 weights \(learned.group1)")
    #expect(learned.group2[1] > 0.45 && learned.group2[0] < 0.12, "group 2 weights \(learned.group2)")

    // The batch-level credit of the same terms: every sample gets the same (zero) signal, so
    // both groups end with the same weights, and neither prefers its helpful level.
    let batch = try train(credits.batchLevel())
    for k in 0..<4 {
      #expect(Swift.abs(batch.group1[k] - batch.group2[k]) < 0.05, "batch-level weights differ by group: \(batch)")
    }
    #expect(batch.group1[0] < 0.35 && batch.group2[1] < 0.35, "batch-level weights \(batch)")
    #expect(learned.spread > 0.08 && batch.spread < 0.02, "spread across samples: \(learned.spread) vs \(batch.spread)")
  }
}

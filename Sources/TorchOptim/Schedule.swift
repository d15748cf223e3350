import Foundation

/// Linear warm-up to the base learning rate, then cosine decay to `minLearningRate`.
///
/// Step s (0-based): during warm-up lr = base · (s + 1) / warmup (open_clip's rule, so the
/// first step is not wasted at lr 0); afterwards, with e = s − warmup and E = total − warmup,
/// lr = min + ½ (1 + cos(π e / E)) (base − min), and lr = min once s ≥ total.
public struct WarmupCosineSchedule: Sendable, Codable, Equatable {
  public var baseLearningRate: Double
  public var warmupSteps: Int
  public var totalSteps: Int
  public var minLearningRate: Double

  public init(baseLearningRate: Double, warmupSteps: Int, totalSteps: Int, minLearningRate: Double = 0) {
    self.baseLearningRate = baseLearningRate
    self.warmupSteps = max(0, warmupSteps)
    self.totalSteps = max(totalSteps, self.warmupSteps)
    self.minLearningRate = minLearningRate
  }

  public func learningRate(at step: Int) -> Double {
    if step < warmupSteps {
      return baseLearningRate * Double(step + 1) / Double(warmupSteps)
    }
    let decaySteps = totalSteps - warmupSteps
    if decaySteps <= 0 || step >= totalSteps { return minLearningRate }
    let progress = Double(step - warmupSteps) / Double(decaySteps)
    return minLearningRate + 0.5 * (1 + cos(Double.pi * progress)) * (baseLearningRate - minLearningRate)
  }
}

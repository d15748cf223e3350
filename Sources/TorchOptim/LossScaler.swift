import Torch

/// fp16 training's dynamic loss scale, with `torch.amp.GradScaler`'s rules: the loss is
/// multiplied by `scale` before backward so small fp16 gradients do not flush to zero; before
/// the optimizer step the gradients are divided back. A step whose gradients hold an inf or
/// NaN is skipped and the scale halves; after `growthInterval` good steps in a row it doubles.
public final class DynamicLossScaler {
  public private(set) var scale: Double
  /// Good (finite) steps since the scale last changed.
  public private(set) var goodSteps = 0
  public let growthFactor: Double
  public let backoffFactor: Double
  public let growthInterval: Int

  public init(initialScale: Double = 65536, growthFactor: Double = 2, backoffFactor: Double = 0.5, growthInterval: Int = 2000)
    throws
  {
    guard initialScale > 0, growthFactor > 1, backoffFactor > 0, backoffFactor < 1, growthInterval > 0 else {
      throw TorchError(
        "DynamicLossScaler", "invalid settings: scale \(initialScale), growth \(growthFactor), backoff \(backoffFactor), interval \(growthInterval)")
    }
    (scale, self.growthFactor, self.backoffFactor, self.growthInterval) = (initialScale, growthFactor, backoffFactor, growthInterval)
  }

  /// The loss to call `backward()` on.
  public func scaled(_ loss: Tensor) throws -> Tensor { try loss * scale }

  /// Divides every gradient by the scale, in place, and says whether all of them are finite.
  /// On false the caller skips the optimizer step (and zeroes the gradients).
  public func unscale(_ parameters: [Tensor]) throws -> Bool {
    // One flag per gradient and one read at the end: a read per parameter would wait for the
    // device each time. (A mean of the flags would round 1 − 1/n up to 1 for n > 2^25.)
    var flags: [Tensor] = []
    for p in parameters {
      guard let g = try p.grad else { continue }
      try g.mulInPlace(1 / scale)
      flags.append(try g.isFinite().all())
    }
    guard !flags.isEmpty else { return true }
    return try Tensor.stack(flags).all().to(.float32).item() == 1
  }

  /// The scale's rule after a step whose gradients were (not) finite.
  public func update(finite: Bool) {
    if finite {
      goodSteps += 1
      if goodSteps >= growthInterval { (scale, goodSteps) = (scale * growthFactor, 0) }
    } else {
      (scale, goodSteps) = (scale * backoffFactor, 0)
    }
  }

  /// For checkpoints: exact resume continues with the same scale and count.
  public func stateDict() throws -> [String: Tensor] {
    ["scale": try Tensor.scalar(scale, dtype: .float64), "good_steps": try Tensor.scalar(Double(goodSteps), dtype: .float64)]
  }

  public func loadStateDict(_ state: [String: Tensor]) throws {
    guard let s = state["scale"], let g = state["good_steps"] else {
      throw TorchError("DynamicLossScaler", "checkpoint state lacks 'scale' or 'good_steps'")
    }
    scale = try s.to(.float64).item()
    goodSteps = Int(try g.to(.float64).item())
  }
}

import Testing
import Torch
import TorchOptim

@Suite("fp16's dynamic loss scale (GradScaler's rules)")
struct LossScalerTests {
  @Test("halves on an overflow, doubles after the growth interval of good steps, survives a checkpoint")
  func rules() throws {
    let scaler = try DynamicLossScaler(initialScale: 1024, growthInterval: 3)
    scaler.update(finite: true)
    scaler.update(finite: true)
    #expect(scaler.scale == 1024 && scaler.goodSteps == 2)
    scaler.update(finite: false)  // an overflow resets the count
    #expect(scaler.scale == 512 && scaler.goodSteps == 0)
    for _ in 0..<3 { scaler.update(finite: true) }
    #expect(scaler.scale == 1024 && scaler.goodSteps == 0)
    scaler.update(finite: true)

    let restored = try DynamicLossScaler()
    try restored.loadStateDict(try scaler.stateDict())
    #expect(restored.scale == 1024 && restored.goodSteps == 1)
    #expect(throws: TorchError.self) { try DynamicLossScaler(initialScale: 0) }
  }

  @Test("scaled backward then unscale gives the plain gradients; a non-finite gradient is reported")
  func unscale() throws {
    let scaler = try DynamicLossScaler(initialScale: 256)
    let w = try Tensor([1, 2, 3] as [Float]).requiresGrad(true)
    try scaler.scaled((w * w).sum()).backward()
    #expect(try scaler.unscale([w]))
    #expect(try w.grad!.toArray(Float.self) == [2, 4, 6])

    let v = try Tensor([1, 2] as [Float]).requiresGrad(true)
    try scaler.scaled((v * Double.infinity).sum()).backward()
    #expect(try scaler.unscale([w, v]) == false)

    // One non-finite entry among 2^25 + 1: a mean of the finite flags would round to 1.
    let big = try Tensor.zeros([(1 << 25) + 1]).requiresGrad(true)
    let spike = try Tensor.zeros([(1 << 25) + 1])
    try spike.narrow(dim: 0, start: 7, length: 1).fill(.nan)  // a view: fills spike
    try scaler.scaled((big * spike).sum()).backward()
    #expect(try scaler.unscale([w, big]) == false)
  }
}

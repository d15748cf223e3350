import TestSupport
import Testing
import Torch
import TorchNN
import TorchOptim

/// The fixture's model: Linear(8, 16) → GELU → Linear(16, 4), keyed "0.*" and "2.*" as
/// torch.nn.Sequential names them.
final class TinyNet: Module {
  @Key("0") var first = try! Linear(8, 16)
  @Key("2") var second = try! Linear(16, 4)
  func callAsFunction(_ x: Tensor) throws -> Tensor { try second(first(x).gelu()) }
}

@Suite("Optimizers match torch.optim step for step")
struct OptimizerParityTests {
  let fixture: [String: Tensor]
  init() throws { fixture = try loadFixture("TorchOptimTests", "optim") }

  func net() throws -> TinyNet {
    let n = TinyNet()
    var state: [String: Tensor] = [:]
    for (k, t) in fixture where k.hasPrefix("init/") { state[String(k.dropFirst(5))] = t }
    try n.loadStateDict(state)
    return n
  }

  /// Trains the fixture model for `steps`, comparing each loss and the final weights.
  func run(
    _ name: String, steps: Int = 6, clip: Double? = nil, schedule: WarmupCosineSchedule? = nil,
    _ makeOptimizer: (TinyNet) throws -> Optimizer
  ) throws {
    let n = try net()
    let opt = try makeOptimizer(n)
    let x = fixture["data/x"]!, y = fixture["data/y"]!
    for s in 0..<steps {
      if let schedule { opt.learningRate = schedule.learningRate(at: s) }
      let loss = try Functional.crossEntropy(n(x), y)
      try opt.zeroGrad()
      try loss.backward()
      if let clip {
        let norm = try clipGradNorm(n.parameters(), maxNorm: clip)
        let expected = try fixture["\(name)/grad_norm\(s)"]!.item()
        #expect(Swift.abs(norm - expected) <= 1e-5 * expected, "\(name) step \(s) grad norm \(norm) vs \(expected)")
      }
      try opt.step()
      let expected = fixture["\(name)/loss\(s)"]!
      let problem = try mismatch(loss.reshape([1]), expected)
      #expect(problem == nil, "\(name) loss at step \(s): \(problem ?? "")")
    }
    for (key, p) in n.namedParameters() {
      let problem = try mismatch(p, fixture["\(name)/final/\(key)"]!)
      #expect(problem == nil, "\(name) final \(key): \(problem ?? "")")
    }
  }

  @Test func adamWWithNoDecayGroup() throws {
    try run("adamw") { n in
      try AdamW(
        ParameterGroup.decayAndNoDecay(n.namedParameters()), learningRate: 1e-2, betas: (0.9, 0.98), eps: 1e-6, weightDecay: 0.2)
    }
  }
  @Test func adamWWithClipping() throws {
    try run("adamw_clip", clip: 0.5) { n in try AdamW(n.parameters(), learningRate: 5e-2, weightDecay: 0.1) }
  }
  @Test func adamWWithWarmupCosine() throws {
    let schedule = WarmupCosineSchedule(baseLearningRate: 2e-2, warmupSteps: 2, totalSteps: 6)
    try run("adamw_schedule", schedule: schedule) { n in try AdamW(n.parameters(), learningRate: 0, weightDecay: 0.05) }
  }
  @Test func sgd() throws { try run("sgd") { n in try SGD(n.parameters(), learningRate: 0.1) } }
  @Test func sgdMomentum() throws {
    try run("sgd_momentum") { n in
      try SGD([ParameterGroup(n.parameters())], learningRate: 0.05, momentum: 0.9, dampening: 0.1, weightDecay: 1e-3)
    }
  }
  @Test func sgdNesterov() throws {
    try run("sgd_nesterov") { n in try SGD(n.parameters(), learningRate: 0.05, momentum: 0.9, weightDecay: 1e-2, nesterov: true) }
  }

  @Test("AdamW's fused kernel and its single-tensor form (non-contiguous parameters) take the same steps")
  func adamWFusedAndSingleTensorAgree() throws {
    // The same values twice: one contiguous parameter (the fused kernel) and one transposed,
    // non-contiguous leaf (the single-tensor form), with the same gradients at every step.
    let values = try Tensor.randn([4, 3])
    let fused = try values.clone().requiresGrad(true)
    let single = try values.t.contiguous().t.requiresGrad(true)
    #expect(!single.isContiguous && fused.isContiguous)
    let optimizer = try AdamW([fused, single], learningRate: 1e-2, betas: (0.9, 0.98), eps: 1e-6, weightDecay: 0.2)
    for step in 0..<5 {
      let target = try Tensor.randn([4, 3])
      try optimizer.zeroGrad()
      for p in [fused, single] { try ((p - target).square() * Double(step + 1)).sum().backward() }
      try optimizer.step()
      #expect(try maxAbsDiff(fused, single) < 1e-6, "step \(step)")
    }
    #expect(try maxAbsDiff(fused, values) > 1e-3, "the parameters moved")
  }

  @Test("AdamW state round-trips: resuming from a saved state continues identically")
  func adamWStateRoundTrip() throws {
    let x = fixture["data/x"]!, y = fixture["data/y"]!
    let a = try net(), b = try net()
    let optA = try AdamW(a.parameters(), learningRate: 1e-2)
    func train(_ n: TinyNet, _ opt: Optimizer, _ steps: Int) throws {
      for _ in 0..<steps {
        try opt.zeroGrad()
        try Functional.crossEntropy(n(x), y).backward()
        try opt.step()
      }
    }
    try train(a, optA, 3)
    try b.loadStateDict(Dictionary(uniqueKeysWithValues: try a.stateDict().map { ($0.0, try $0.1.detach().clone()) }))
    let optB = try AdamW(b.parameters(), learningRate: 1e-2)
    try optB.loadStateDict(optA.stateDict())
    try train(a, optA, 2)
    try train(b, optB, 2)
    for ((key, pa), (_, pb)) in zip(a.namedParameters(), b.namedParameters()) {
      #expect(try pa.doubles() == pb.doubles(), "\(key) diverged after resuming")
    }
  }
}

@Suite("Warm-up + cosine schedule")
struct ScheduleTests {
  @Test("hand-derived values")
  func values() {
    let s = WarmupCosineSchedule(baseLearningRate: 1.0, warmupSteps: 4, totalSteps: 12, minLearningRate: 0.1)
    #expect(s.learningRate(at: 0) == 0.25)
    #expect(s.learningRate(at: 3) == 1.0)
    #expect(Swift.abs(s.learningRate(at: 4) - 1.0) < 1e-12)  // cos(0): start of decay
    #expect(Swift.abs(s.learningRate(at: 8) - 0.55) < 1e-12)  // halfway: min + (base - min)/2
    #expect(Swift.abs(s.learningRate(at: 10) - (0.1 + 0.45 * (1 + 0.5.squareRoot() * -1))) < 1e-12)  // cos(3π/4)
    #expect(s.learningRate(at: 12) == 0.1)
    #expect(s.learningRate(at: 100) == 0.1)
  }

  @Test("no warm-up starts at the base rate")
  func noWarmup() {
    let s = WarmupCosineSchedule(baseLearningRate: 0.5, warmupSteps: 0, totalSteps: 10)
    #expect(s.learningRate(at: 0) == 0.5)
  }
}

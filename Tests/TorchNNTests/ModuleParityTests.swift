import TestSupport
import Testing
import Torch
import TorchNN

/// A pre-norm transformer block keyed like the reference in scripts/make_fixtures.py.
final class Block: Module {
  let layerNorm1: LayerNorm
  let selfAttn: MultiHeadAttention
  let layerNorm2: LayerNorm
  let mlp: MLP

  init(_ d: Int, heads: Int) throws {
    layerNorm1 = try LayerNorm(d)
    selfAttn = try MultiHeadAttention(embedDim: d, numHeads: heads)
    layerNorm2 = try LayerNorm(d)
    mlp = try MLP(d, hidden: 4 * d, activation: .quickGelu)
    super.init()
  }

  func callAsFunction(_ x: Tensor) throws -> Tensor {
    let h = try x + selfAttn(layerNorm1(x), isCausal: true)
    return try h + mlp(layerNorm2(h))
  }
}

@Suite("Modules match PyTorch (weights, outputs, input and parameter gradients)")
struct ModuleParityTests {
  let fixture: [String: Tensor]
  init() throws { fixture = try loadFixture("TorchNNTests", "modules") }

  /// Loads the case's state into `module`, runs `forward`, back-propagates the stored
  /// cotangent and compares output, input gradient and every parameter gradient.
  func check(_ name: String, _ module: Module, floatInput: Bool = true, _ forward: ([Tensor]) throws -> Tensor) throws {
    var state: [String: Tensor] = [:]
    for (key, t) in fixture where key.hasPrefix("\(name)/state/") { state[String(key.dropFirst(name.count + 7))] = t }
    try module.loadStateDict(state)
    var inputs: [Tensor] = []
    while let t = fixture["\(name)/in\(inputs.count)"] {
      inputs.append(fixture["\(name)/in\(inputs.count)_grad"] != nil ? try t.clone().requiresGrad(true) : t)
    }
    let out = try forward(inputs)
    let outputProblem = try mismatch(out, fixture["\(name)/out"]!)
    #expect(outputProblem == nil, "\(name) output: \(outputProblem ?? "")")
    try (out * fixture["\(name)/cot"]!).sum().backward()
    for (i, input) in inputs.enumerated() {
      guard let expected = fixture["\(name)/in\(i)_grad"] else { continue }
      let problem = try input.grad.map { try mismatch($0, expected) } ?? "no gradient"
      #expect(problem == nil, "\(name) input \(i) gradient: \(problem ?? "")")
    }
    let params = module.namedParameters()
    #expect(!params.isEmpty || name == "none")
    for (key, p) in params {
      guard let expected = fixture["\(name)/param_grad/\(key)"] else {
        Issue.record("\(name): parameter \(key) has no reference gradient (key naming differs from PyTorch?)")
        continue
      }
      let problem = try p.grad.map { try mismatch($0, expected) } ?? "no gradient"
      #expect(problem == nil, "\(name) parameter \(key) gradient: \(problem ?? "")")
    }
  }

  @Test func linear() throws { let m = try Linear(6, 3); try check("linear", m) { try m($0[0]) } }
  @Test func layerNorm() throws { let m = try LayerNorm(6, eps: 1e-6); try check("layer_norm", m) { try m($0[0]) } }
  @Test func layerNormAffine() throws { let m = try LayerNorm(6); try check("layer_norm_affine", m) { try m($0[0]) } }
  @Test func embedding() throws { let m = try Embedding(11, 5); try check("embedding", m) { try m($0[0]) } }
  @Test func conv2d() throws {
    let m = try Conv2d(3, 8, kernel: (4, 4), stride: (4, 4))
    try check("conv2d", m) { try m($0[0]) }
  }
  @Test func groupNorm() throws { let m = try GroupNorm(groups: 2, channels: 6); try check("group_norm", m) { try m($0[0]) } }
  @Test func mlp() throws { let m = try MLP(8, hidden: 32, activation: .gelu); try check("mlp_gelu", m) { try m($0[0]) } }
  @Test func attention() throws {
    let m = try MultiHeadAttention(embedDim: 16, numHeads: 4)
    try check("attention", m) { try m($0[0]) }
  }
  @Test func attentionCausal() throws {
    let m = try MultiHeadAttention(embedDim: 16, numHeads: 2)
    try check("attention_causal", m) { try m($0[0], isCausal: true) }
  }
  @Test func attentionMasked() throws {
    let m = try MultiHeadAttention(embedDim: 16, numHeads: 2)
    try check("attention_masked", m) { try m($0[0], mask: $0[1]) }
  }
  @Test("composite transformer block: gradients of every parameter")
  func block() throws {
    let m = try Block(16, heads: 4)
    try check("block", m) { try m($0[0]) }
  }
}

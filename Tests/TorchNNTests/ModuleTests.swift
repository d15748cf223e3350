import Testing
import Torch
import TorchNN

final class Tower: Module {
  let patchEmbedding: Conv2d
  @Key("LayerNorm") var layerNorm = try! LayerNorm(4)
  let layers: [Linear]
  let proj: Tensor
  let optionalHead: Linear?
  @Buffer var positionIds = try! Tensor.arange(5)
  @Buffer(persistent: false) var scratch = try! Tensor.zeros([2])

  init(withHead: Bool) throws {
    patchEmbedding = try Conv2d(3, 4, kernel: (2, 2))
    layers = [try Linear(4, 4), try Linear(4, 4, bias: false)]
    proj = try parameter(Tensor.randn([4, 2]))
    optionalHead = withHead ? try Linear(2, 1) : nil
    super.init()
  }
}

@Suite("Module discovery, state dicts and modes")
struct ModuleTests {
  @Test("keys are snake_case in declaration order; @Key overrides; arrays index; nil optionals vanish")
  func keys() throws {
    let m = try Tower(withHead: false)
    #expect(
      m.namedParameters().map(\.0) == [
        "patch_embedding.weight", "patch_embedding.bias", "LayerNorm.weight", "LayerNorm.bias",
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "proj",
      ])
    #expect(m.namedBuffers().map(\.0) == ["position_ids", "scratch"])
    #expect(m.stateDict().map(\.0).last == "position_ids")
    #expect(!m.stateDict().map(\.0).contains("scratch"))
    let withHead = try Tower(withHead: true)
    #expect(withHead.namedParameters().map(\.0).suffix(2) == ["optional_head.weight", "optional_head.bias"])
    #expect(Module.snakeCase("layerNorm1") == "layer_norm1")
    #expect(Module.snakeCase("qProj") == "q_proj")
    #expect(Module.snakeCase("preLayrnorm") == "pre_layrnorm")
    #expect(m.parameterCount() == 3 * 4 * 4 + 4 + 8 + 20 + 16 + 8)
  }

  @Test("strict loading names missing, unexpected and mis-shaped keys; non-strict reports them")
  func strictLoading() throws {
    let m = try Tower(withHead: false)
    var state = Dictionary(uniqueKeysWithValues: try m.stateDict().map { ($0.0, try $0.1.detach().clone()) })
    state["proj"] = nil
    state["extra.weight"] = try Tensor.zeros([1])
    do {
      try m.loadStateDict(state)
      Issue.record("strict load with missing and unexpected keys succeeded")
    } catch let error as TorchError {
      #expect(error.message.contains("missing keys: proj"))
      #expect(error.message.contains("unexpected keys: extra.weight"))
    }
    let report = try m.loadStateDict(state, strict: false)
    #expect(report.missing == ["proj"])
    #expect(report.unexpected == ["extra.weight"])
    state["proj"] = try Tensor.zeros([2, 4])
    state["extra.weight"] = nil
    #expect(throws: TorchError.self) { try m.loadStateDict(state) }
    do { try m.loadStateDict(state) } catch let error as TorchError {
      #expect(error.message.contains("shape mismatch for 'proj'"))
    }
  }

  @Test("loading copies values in place: the parameter objects stay the same")
  func loadInPlace() throws {
    let a = try Linear(3, 2), b = try Linear(3, 2)
    let weightBefore = a.weight
    try a.loadStateDict(Dictionary(uniqueKeysWithValues: b.stateDict()))
    #expect(a.weight === weightBefore)
    #expect(try a.weight.doubles() == b.weight.doubles())
    #expect(a.weight.requiresGrad)
  }

  @Test("train/eval reach every descendant; dropout is the identity in eval")
  func modes() throws {
    let mlp = try MLP(4, hidden: 8, dropout: 0.5)
    mlp.eval()
    #expect(!mlp.dropout.isTraining && !mlp.fc1.isTraining)
    let x = try Tensor.randn([2, 4])
    #expect(try mlp(x).doubles() == mlp(x).doubles())
    mlp.train()
    #expect(mlp.dropout.isTraining)
  }

  @Test("freeze stops gradients; unfreeze restores them")
  func freeze() throws {
    let m = try Linear(3, 2)
    try m.freeze()
    #expect(m.parameters().allSatisfy { !$0.requiresGrad })
    #expect(m.parameterCount(trainableOnly: true) == 0)
    let y = try m(Tensor.randn([1, 3])).sum()
    #expect(!y.requiresGrad)
    try m.unfreeze()
    #expect(m.parameterCount(trainableOnly: true) == 8)
  }

  @Test("to(dtype) converts parameters in place, keeping them leaves that require grad")
  func convert() throws {
    let m = try Linear(3, 2)
    let w = m.weight
    try m.to(.cpu, dtype: .float64)
    #expect(m.weight === w && w.dtype == .float64 && w.requiresGrad)
    let y = try m(Tensor.randn([4, 3], dtype: .float64)).sum()
    try y.backward()
    #expect(try w.grad?.dtype == .float64)
  }

  @Test("constructor argument errors are Swift errors")
  func badArguments() {
    #expect(throws: TorchError.self) { try MultiHeadAttention(embedDim: 10, numHeads: 3) }
    #expect(throws: TorchError.self) { try Dropout(1.5) }
    #expect(throws: TorchError.self) { try GroupNorm(groups: 3, channels: 4) }
  }

  @Test("smoke: a transformer block trains forward and backward, every parameter gets a finite gradient")
  func smoke() throws {
    let block = try Block(32, heads: 4)
    let x = try Tensor.randn([3, 10, 32])
    let y = try block(x)
    #expect(y.shape == [3, 10, 32])
    try y.square().mean().backward()
    for (key, p) in block.namedParameters() {
      let g = try p.grad
      #expect(g != nil, "\(key) got no gradient")
      if let g { #expect(try g.isFinite().all().item() == 1, "\(key) has a non-finite gradient") }
    }
  }
}

import TestSupport
import Testing
import Torch

/// Swift versions of the tensor-op cases in Fixtures/ops.safetensors (scripts/make_fixtures.py).
func opCases() -> [String: CaseBody] {
  var c: [String: CaseBody] = [:]
  func unary(_ name: String, _ f: @escaping (Tensor) throws -> Tensor) { c[name] = { [try f($0[0])] } }
  func binary(_ name: String, _ f: @escaping (Tensor, Tensor) throws -> Tensor) { c[name] = { [try f($0[0], $0[1])] } }
  unary("neg") { try -$0 }
  unary("exp") { try $0.exp() }
  unary("log") { try $0.log() }
  unary("sqrt") { try $0.sqrt() }
  unary("rsqrt") { try $0.rsqrt() }
  unary("abs") { try $0.abs() }
  unary("sigmoid") { try $0.sigmoid() }
  unary("tanh") { try $0.tanh() }
  unary("relu") { try $0.relu() }
  unary("gelu") { try $0.gelu() }
  unary("gelu_tanh") { try $0.gelu(approximate: .tanh) }
  unary("quick_gelu") { try $0.quickGelu() }
  unary("silu") { try $0.silu() }
  unary("sin") { try $0.sin() }
  unary("cos") { try $0.cos() }
  unary("square") { try $0.square() }
  unary("reciprocal") { try $0.reciprocal() }
  unary("log_sigmoid") { try $0.logSigmoid() }
  unary("erf") { try $0.erf() }
  unary("log1p") { try $0.log1p() }
  unary("expm1") { try $0.expm1() }
  unary("sign") { try $0.sign() }
  unary("floor") { try $0.floor() }
  unary("ceil") { try $0.ceil() }
  unary("round") { try $0.round() }
  binary("add") { try $0 + $1 }
  binary("sub") { try $0 - $1 }
  binary("mul") { try $0 * $1 }
  binary("div") { try $0 / $1 }
  binary("pow") { try $0.pow($1) }
  binary("maximum") { try $0.maximum($1) }
  binary("minimum") { try $0.minimum($1) }
  binary("atan2") { try $0.atan2($1) }
  binary("add_broadcast") { try $0 + $1 }
  unary("add_scalar") { try $0 + 2.5 }
  unary("sub_scalar") { try $0 - 2.5 }
  unary("mul_scalar") { try $0 * -1.5 }
  unary("div_scalar") { try $0 / 4.0 }
  unary("rsub_scalar") { try 2.0 - $0 }
  unary("rdiv_scalar") { try 3.0 / $0 }
  unary("pow_scalar") { try $0.pow(3) }
  unary("clamp") { try $0.clamp(min: -0.5, max: 0.7) }
  unary("clamp_min") { try $0.clamp(min: 0.1) }
  binary("lerp") { try $0.lerp($1, weight: 0.3) }
  c["where"] = { [try Tensor.where($0[0], $0[1], $0[2])] }
  binary("masked_fill") { try $0.maskedFill($1, -1e4) }
  c["compare_lt"] = { i in
    let (a, b) = (i[0], i[1])
    return [try a.lt(b), try a.le(0), try a.eq(b), try a.ne(0), try a.gt(b), try a.ge(0)]
  }
  c["logical"] = { [try $0[0].logicalAnd($0[1]), try $0[0].logicalOr($0[1]), try $0[0].logicalNot()] }
  unary("sum_all") { try $0.sum() }
  unary("sum_dims") { try $0.sum(dims: [0, 2], keepDim: true) }
  unary("mean_dim") { try $0.mean(dim: 1) }
  unary("amax") { try $0.amax(dims: [-1]) }
  unary("amin") { try $0.amin(dims: [0, 1]) }
  unary("prod") { try $0.prod(dims: [2]) }
  unary("logsumexp") { try $0.logSumExp(dims: [1]) }
  unary("norm2") { try $0.norm(p: 2, dims: [-1], keepDim: true) }
  unary("norm1_all") { try $0.norm(p: 1) }
  unary("var") { try $0.variance(dims: [1]) }
  unary("std_all") { try $0.std() }
  unary("var_biased") { try $0.variance(dims: [0, 2], correction: 0) }
  c["argmax"] = { [try $0[0].argmax(dim: 2), try $0[0].argmin(dim: 0)] }
  unary("cumsum") { try $0.cumsum(dim: 1) }
  c["max_dim"] = {
    let r = try $0[0].max(dim: 1); return [r.values, r.indices]
  }
  c["min_dim"] = {
    let r = try $0[0].min(dim: 2, keepDim: true); return [r.values, r.indices]
  }
  c["topk"] = {
    let r = try $0[0].topk(2, dim: -1); return [r.values, r.indices]
  }
  c["topk_smallest"] = {
    let r = try $0[0].topk(3, dim: 1, largest: false); return [r.values, r.indices]
  }
  c["sort"] = {
    let r = try $0[0].sort(dim: -1, descending: true); return [r.values, r.indices]
  }
  unary("argsort") { try $0.argsort(dim: 0) }
  unary("reshape") { try $0.reshape([4, -1]) }
  unary("permute") { try $0.permute([2, 0, 1]) }
  unary("transpose") { try $0.transpose(0, 2) }
  unary("expand") { try $0.expand([2, 3, 4]) }
  unary("repeat") { try $0.repeat([2, 1, 3]) }
  unary("squeeze_unsqueeze") { try $0.unsqueeze(1).squeeze(2) }
  unary("flatten") { try $0.flatten(start: 1) }
  unary("narrow") { try $0.narrow(dim: 2, start: 1, length: 2) }
  unary("slice_step") { try $0.slice(dim: 1, step: 2).slice(dim: 2, start: 1) }
  unary("select") { try $0.select(dim: 1, index: 2) }
  binary("index_select") { try $0.indexSelect(dim: 1, index: $1) }
  binary("gather") { try $0.gather(dim: 2, index: $1) }
  c["scatter_add"] = { [try $0[0].scatterAdd(dim: 1, index: $0[1], source: $0[2])] }
  binary("masked_select") { try $0.masked($1) }
  binary("cat") { try Tensor.cat([$0, $1], dim: 1) }
  binary("stack") { try Tensor.stack([$0, $1], dim: 1) }
  c["chunk"] = { try $0[0].chunk(3, dim: 2) }
  c["split"] = { try $0[0].split(size: 2, dim: 1) }
  c["tril_triu"] = { [try $0[0].tril(), try $0[0].triu(1)] }
  unary("flip") { try $0.flip([0, 2]) }
  unary("diagonal") { try $0.diagonal(offset: 1, dim0: 0, dim1: 1) }
  binary("einsum") { try Tensor.einsum("bij,bjk->bik", [$0, $1]) }
  binary("matmul") { try $0.matmul($1) }
  binary("matmul_batched") { try $0.matmul($1) }
  unary("softmax") { try $0.softmax(dim: -1) }
  unary("log_softmax") { try $0.logSoftmax(dim: 1) }
  return c
}

@Suite("Tensor ops match PyTorch")
struct OpsParityTests {
  @Test("every op case in ops.safetensors: forward and gradients within 1e-5 relative")
  func opsMatchPyTorch() throws {
    let fixture = try loadFixture("TorchTests", "ops")
    let failures = runCases(fixture, opCases())
    #expect(failures.isEmpty, "\(failures.count) op cases differ:\n\(failures.joined(separator: "\n"))")
  }

  @Test("seeded generators reproduce PyTorch's random streams")
  func seededStreams() throws {
    let fixture = try loadFixture("TorchTests", "ops")
    let g = try Generator(seed: 1234)
    let randn = try Tensor.randn([3, 5], generator: g)
    let rand = try Tensor.rand([4], generator: g)
    let randint = try Tensor.randint(0, 100, [6], generator: g)
    let perm = try Tensor.randperm(10, generator: g)
    #expect(try mismatch(randn, fixture["random/randn_seed1234"]!, rtol: 0, atol: 0) == nil)
    #expect(try mismatch(rand, fixture["random/rand_after"]!, rtol: 0, atol: 0) == nil)
    #expect(try mismatch(randint, fixture["random/randint_after"]!, rtol: 0, atol: 0) == nil)
    #expect(try mismatch(perm, fixture["random/randperm_after"]!, rtol: 0, atol: 0) == nil)
  }
}

@Suite("Row gathers by index (hand-derived)")
struct IndexOpsTests {
  @Test("nonzero lists indices in row-major order; indexCopy puts indexSelect's rows back, gradients routed")
  func nonzeroAndIndexCopy() throws {
    let mask = try Tensor([0, 1, 1, 0, 1] as [Float], shape: [5])
    let rows = try mask.gt(0.5).nonzero()
    #expect(rows.shape == [3, 1])
    #expect(try rows.squeeze(1).doubles() == [1, 2, 4])
    let x = try Tensor((0..<10).map(Float.init), shape: [5, 2]).requiresGrad(true)
    let picked = try x.indexSelect(dim: 0, index: rows.squeeze(1))
    #expect(try picked.doubles() == [2, 3, 4, 5, 8, 9])
    let back = try Tensor.zeros([5, 2]).indexCopy(dim: 0, index: rows.squeeze(1), source: picked * 2)
    #expect(try back.doubles() == [0, 0, 4, 6, 8, 10, 0, 0, 16, 18])
    let grad = try Torch.gradients(of: [back.sum()], withRespectTo: [x])[0]!
    #expect(try grad.doubles() == [0, 0, 2, 2, 2, 2, 0, 0, 2, 2])
  }
}

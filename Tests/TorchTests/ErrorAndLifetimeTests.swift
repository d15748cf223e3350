import Foundation
import Testing
import Torch

@Suite("LibTorch errors become Swift errors; handles are released")
struct ErrorAndLifetimeTests {
  @Test("a shape mismatch throws TorchError with LibTorch's message, and the library keeps working")
  func shapeMismatch() throws {
    let a = try Tensor.randn([2, 3]), b = try Tensor.randn([4, 5])
    do {
      _ = try a.matmul(b)
      Issue.record("matmul of [2,3] and [4,5] did not throw")
    } catch let error as TorchError {
      #expect(error.operation == "matmul")
      #expect(error.message.contains("cannot be multiplied"), "\(error.message)")
      #expect(!error.message.contains("Exception raised from"), "the C++ backtrace leaked into the message")
    }
    #expect(try (a + 1).sum().item().isFinite)
    #expect(try a.matmul(b.narrow(dim: 0, start: 0, length: 3)).shape == [2, 5])
  }

  @Test("backward through a tensor that does not require grad throws, then autograd still works")
  func backwardWithoutGrad() throws {
    let x = try Tensor.randn([3])
    #expect(throws: TorchError.self) { try x.sum().backward() }
    let w = try Tensor.randn([3]).requiresGrad(true)
    try (w * w).sum().backward()
    #expect(try mismatchValues(w.grad!.doubles(), w.doubles().map { 2 * $0 }))
  }

  @Test("other failures: bad reshape, out-of-range index, wrong dtype readback, item of many elements")
  func moreErrors() throws {
    let x = try Tensor.randn([2, 3])
    #expect(throws: TorchError.self) { try x.reshape([4, 2]) }
    #expect(throws: TorchError.self) { try x.select(dim: 0, index: 5) }
    #expect(throws: TorchError.self) { try x.toArray(Int64.self) }
    #expect(throws: TorchError.self) { try x.item() }
    #expect(throws: TorchError.self) { try Tensor([1, 2, 3] as [Float], shape: [2, 2]) }
    #expect(throws: TorchError.self) { try Tensor.cat([], dim: 0) }
    #expect(throws: TorchError.self) { try Device(parsing: "tpu") }
  }

  @Test("live handle counter returns to its start after a workload, including failures")
  func noLeaks() throws {
    let before = Tensor.liveCountOnThisThread
    try {
      let w = try Tensor.randn([8, 8]).requiresGrad(true)
      for _ in 0..<50 {
        let y = try (w.matmul(w).relu() * 2).softmax(dim: -1).sum()
        try y.backward()
        _ = try w.chunk(3, dim: 0)
        _ = try w.topk(2)
        _ = try? w.matmul(Tensor.ones([3, 3]))
      }
      #expect(try w.grad != nil)
    }()
    #expect(Tensor.liveCountOnThisThread == before, "\(Tensor.liveCountOnThisThread - before) handles leaked")
  }

  @Test("temporaries inside one expression stay alive until the C call that uses them has run")
  func temporariesStayAlive() throws {
    // In release builds Swift may release a temporary right after its last use; the
    // wrappers keep operands alive for the call. A premature release would read freed
    // memory here (and crash or give garbage).
    var total = 0.0
    for i in 0..<200 {
      total += try (Tensor.full([64], Double(i)) + Tensor.ones([64])).sum().item()
    }
    #expect(total == 64 * (199 * 200 / 2 + 200))
  }
}

func mismatchValues(_ a: [Double], _ b: [Double], tolerance: Double = 1e-6) -> Bool {
  a.count == b.count && zip(a, b).allSatisfy { Swift.abs($0 - $1) <= tolerance * max(1, Swift.abs($1)) }
}

@Suite("Tensor basics")
struct TensorBasicsTests {
  @Test("creation, shapes, dtypes and round trips through Swift arrays")
  func creation() throws {
    let t = try Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
    #expect(t.shape == [2, 3] && t.dtype == .float32 && t.count == 6 && t.rank == 2)
    #expect(try t.toArray(Float.self) == [1, 2, 3, 4, 5, 6])
    #expect(try Tensor([true, false]).toArray(Bool.self) == [true, false])
    #expect(try Tensor([Int64(7)], shape: []).itemInt() == 7)
    #expect(try Tensor.arange(5).toArray(Int64.self) == [0, 1, 2, 3, 4])
    #expect(try Tensor.zeros([2, 2], dtype: .float64).doubles() == [0, 0, 0, 0])
    #expect(try Tensor.full([3], 2.5).doubles() == [2.5, 2.5, 2.5])
    #expect(try Tensor.eye(2).doubles() == [1, 0, 0, 1])
    #expect(try Tensor.linspace(0, 1, steps: 3).doubles() == [0, 0.5, 1])
    #expect(try t.to(.bfloat16).to(.float32).toArray(Float.self) == [1, 2, 3, 4, 5, 6])
    #expect(try t.transpose(0, 1).isContiguous == false)
    #expect(try t.transpose(0, 1).contiguous().isContiguous)
    #expect(try (t * 2).toArray(Float.self) == [2, 4, 6, 8, 10, 12])
    #expect(try (Tensor.arange(3) * 2).dtype == .int64)
  }

  @Test("in-place ops and no-grad scope")
  func inPlace() throws {
    let w = try Tensor.ones([3]).requiresGrad(true)
    try Torch.noGrad {
      #expect(!Torch.isGradEnabled)
      try w.mulInPlace(3)
      try w.addInPlace(Tensor.ones([3]), alpha: 0.5)
      #expect(!(try (w * 2).requiresGrad))
    }
    #expect(Torch.isGradEnabled)
    #expect(try w.doubles() == [3.5, 3.5, 3.5])
    #expect(try (w * 2).requiresGrad)
    let z = try Tensor.zeros([2])
    try z.fill(4)
    try z.copy(from: Tensor.ones([2]))
    #expect(try z.doubles() == [1, 1])
  }

  @Test("autograd: accumulation, zeroGrad, detach, functional gradients")
  func autograd() throws {
    let x = try Tensor([1, 2, 3] as [Float]).requiresGrad(true)
    try (x * x).sum().backward()
    try (x * 3).sum().backward()
    #expect(try x.grad!.doubles() == [5, 7, 9])  // 2x + 3, accumulated
    try x.zeroGrad()
    #expect(try x.grad == nil)
    #expect(try !x.detach().requiresGrad)
    let y = try (x.pow(3)).sum()
    let grads = try Torch.gradients(of: [y], withRespectTo: [x, Tensor.ones([1]).requiresGrad(true)])
    #expect(try grads[0]!.doubles() == [3, 12, 27])
    #expect(grads[1] == nil)  // unused input
  }

  @Test("generator state round-trips and replays the same stream")
  func generatorState() throws {
    let g = try Generator(seed: 3)
    let state = try g.state()
    let a = try Tensor.randn([4], generator: g).doubles()
    try g.setState(state)
    #expect(try Tensor.randn([4], generator: g).doubles() == a)
    try Torch.manualSeed(11)
    let b = try Tensor.rand([3]).doubles()
    try Torch.manualSeed(11)
    #expect(try Tensor.rand([3]).doubles() == b)
  }

  @Test("runtime facts")
  func runtime() {
    #expect(Torch.version.hasPrefix("2.11.0"))
    #expect(Torch.numThreads >= 1)
    if !Torch.cudaAvailable { #expect(Torch.cudaDeviceCount == 0) }
  }

  @Test("the deterministic-algorithms switch reaches LibTorch and sets cuBLAS's workspace")
  func deterministicSwitch() throws {
    defer { try? Torch.setDeterministic(false) }
    #expect(!Torch.deterministic)
    try Torch.setDeterministic(true)
    #expect(Torch.deterministic)
    #expect(getenv("CUBLAS_WORKSPACE_CONFIG") != nil)
    let x = try Tensor.arange(0, 6, dtype: .float32).reshape([2, 3])
    #expect(try x.matmul(x.transpose(0, 1)).contiguous().toArray(Float.self) == [5, 14, 14, 50])
    try Torch.setDeterministic(false)
    #expect(!Torch.deterministic)
  }
}

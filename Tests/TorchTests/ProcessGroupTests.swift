import Foundation
import Testing
import Torch

/// c10d collectives (Gloo) between two ranks of one process, each on its own thread: real
/// sockets and a real rendezvous, hand-computed expectations.
@Suite("Data-parallel collectives", .serialized)
struct ProcessGroupTests {
  /// Runs `body(rank, group)` for ranks 0 and 1 on two threads; rethrows the first error.
  func twoRanks(_ body: @escaping @Sendable (Int, ProcessGroup) throws -> Void) throws {
    let port = try ProcessGroup.freePort()
    let errors = ErrorBox()
    let done = DispatchGroup()
    for rank in 0..<2 {
      done.enter()
      Thread.detachNewThread {
        defer { done.leave() }
        do {
          let group = try ProcessGroup(host: "127.0.0.1", port: port, rank: rank, worldSize: 2, timeout: 60)
          try body(rank, group)
        } catch { errors.record("rank \(rank): \(error)") }
      }
    }
    #expect(done.wait(timeout: .now() + 120) == .success, "the two ranks did not finish")
    for error in errors.messages { Issue.record(Comment(rawValue: error)) }
  }

  final class ErrorBox: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func record(_ message: String) { lock.withLock { list.append(message) } }
    var messages: [String] { lock.withLock { list } }
  }

  @Test("all-reduce sums in place, in buckets; broadcast copies rank 0")
  func allReduceAndBroadcast() throws {
    try twoRanks { rank, group in
      let r = Double(rank)
      // Two dtypes and a bucket limit smaller than the tensors: several buckets.
      let a = try Tensor.full([3, 2], r + 1), b = try Tensor.full([5], 10 * (r + 1), dtype: .float64)
      let c = try Tensor.full([4], r)
      try group.allReduceSum([a, b, c], bucketBytes: 16)
      #expect(try a.toArray(Float.self) == [Float](repeating: 3, count: 6))
      #expect(try b.doubles() == [Double](repeating: 30, count: 5))
      #expect(try c.toArray(Float.self) == [Float](repeating: 1, count: 4))
      let w = try Tensor.full([2], r + 7)
      try group.broadcast([w], root: 0)
      #expect(try w.toArray(Float.self) == [7, 7])
      try group.barrier()
    }
    // c10d's flight recorder is off unless the user asked for it: with two groups in one process
    // (these tests) its record path races and crashed or hung about one run in ten.
    let environment = ProcessInfo.processInfo.environment
    if environment["TORCH_NCCL_TRACE_BUFFER_SIZE"] == nil {
      #expect(environment["TORCH_FR_BUFFER_SIZE"] != nil, "the first group leaves TORCH_FR_BUFFER_SIZE unset")
    }
  }

  @Test("all-gather concatenates in rank order; its gradient is the summed gradient of this rank's rows")
  func allGatherGradient() throws {
    try twoRanks { rank, group in
      let r = Float(rank)
      let x = try Tensor([1 + r, 2 + r], shape: [2, 1]).requiresGrad(true)
      let all = try group.allGather(x)
      #expect(try all.toArray(Float.self) == [1, 2, 2, 3])
      // Rank r's loss: Σ_i c_r,i · all_i with c_0 = (1,2,3,4), c_1 = (10,20,30,40). The sum of
      // both losses has gradient (11, 22) on rank 0's rows and (33, 44) on rank 1's.
      let weights = try Tensor(rank == 0 ? [1, 2, 3, 4] : [10, 20, 30, 40], shape: [4, 1])
      try (all * weights).sum().backward()
      #expect(try #require(try x.grad).toArray(Float.self) == (rank == 0 ? [11, 22] : [33, 44]))
      #expect(try group.share(ofRows: 6) == (rank == 0 ? 0..<3 : 3..<6))
    }
  }

  @Test("the differentiable all-reduce differentiates twice (the selector's double backward)")
  func allReduceDoubleBackward() throws {
    try twoRanks { rank, group in
      // y = Σ_r x_r², z = y² on both ranks: Σ_r z_r = 2y², so g_r = ∂/∂x_r = 8 y x_r. The second
      // backward differentiates Σ_s g_s = 8 y (x_0 + x_1) (every rank's output, summed, as in
      // the first): ∂/∂x_r = 8 y + 16 x_r (x_0 + x_1), 88 on rank 0 and 136 on rank 1.
      let x = try Tensor([Float(rank + 1)], shape: [1]).requiresGrad(true)
      let y = try group.allReduceSum(x * x)  // 1 + 4 = 5
      let z = try (y * y).sum()
      let g = try #require(try Torch.gradients(of: [z], withRespectTo: [x], retainGraph: true, createGraph: true)[0])
      let xr = Float(rank + 1)
      #expect(abs(try g.toArray(Float.self)[0] - 8 * 5 * xr) < 1e-4)
      let h = try #require(try Torch.gradients(of: [g.sum()], withRespectTo: [x])[0])
      let second = try h.toArray(Float.self)[0]
      #expect(abs(second - (8 * 5 + 16 * xr * 3)) < 1e-3, "\(second)")
    }
  }

  @Test("the environment gives the group torchrun describes, or none, or a clear error")
  func environment() throws {
    #expect(try ProcessGroup.fromEnvironment([:]) == nil)
    #expect(try ProcessGroup.fromEnvironment(["WORLD_SIZE": "1", "RANK": "0"]) == nil)
    #expect(throws: TorchError.self) { try ProcessGroup.fromEnvironment(["WORLD_SIZE": "2"]) }
    do {
      _ = try ProcessGroup.fromEnvironment(["WORLD_SIZE": "two", "RANK": "0"])
      Issue.record("WORLD_SIZE=two was accepted")
    } catch {
      #expect("\(error)".contains("WORLD_SIZE='two' is not an integer"), "\(error)")
    }
    #expect(throws: TorchError.self) { try ProcessGroup(host: "127.0.0.1", port: 29500, rank: 2, worldSize: 2) }
  }
}

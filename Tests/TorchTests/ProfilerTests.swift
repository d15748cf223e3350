import Testing

@testable import Torch

@Suite("Operator profiler: counts and self times", .serialized)
struct ProfilerTests {
  @Test("self time is an event's duration less its children's, per thread (hand-derived)")
  func aggregateNestsEvents() throws {
    // Thread 1: a [0, 100) holds b [10, 40) and c [50, 60); b holds d [20, 30). Thread 2: b [0, 5).
    let lines = [
      "a\t1\t0\t100", "b\t1\t10\t30", "d\t1\t20\t10", "c\t1\t50\t10", "b\t2\t0\t5",
    ]
    let ops = Dictionary(uniqueKeysWithValues: try Torch.aggregate(lines.joined(separator: "\n")).map { ($0.name, $0) })
    #expect(ops["a"] == OperatorProfile(name: "a", calls: 1, selfNanoseconds: 60, totalNanoseconds: 100))
    #expect(ops["b"] == OperatorProfile(name: "b", calls: 2, selfNanoseconds: 25, totalNanoseconds: 35))
    #expect(ops["c"]?.selfNanoseconds == 10 && ops["d"]?.selfNanoseconds == 10)
    #expect(throws: TorchError.self) { try Torch.aggregate("not a profiler line") }
  }

  @Test("the profiler sees the operators a body runs, and an error in the body stops it")
  func profilesOperators() throws {
    let a = try Tensor.randn([8, 8]), b = try Tensor.randn([8, 8])
    let ops = try Torch.profileOperators {
      for _ in 0..<3 { _ = try a.matmul(b) }
      _ = try a + b
    }
    let byName = Dictionary(uniqueKeysWithValues: ops.map { ($0.name, $0) })
    #expect(byName["aten::mm"]?.calls == 3)
    #expect(byName["aten::add"]?.calls == 1)
    #expect(ops.allSatisfy { $0.selfNanoseconds <= $0.totalNanoseconds })
    struct Stop: Error {}
    #expect(throws: Stop.self) { _ = try Torch.profileOperators { throw Stop() } }
    let shaped = try Torch.profileOperators(shapes: true) { _ = try a.matmul(b) }
    #expect(shaped.contains { $0.name == "aten::mm [8, 8] [8, 8]" }, "\(shaped.map(\.name))")
  }
}

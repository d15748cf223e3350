import Distillation
import Foundation
import Models
import TestSupport
import Testing
import Torch

@Suite("DSMD's teacher-vector queue")
struct BaselineDSMDTests {
  func close(_ a: [Double], _ b: [Double], _ tolerance: Double = 1e-12) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { Swift.abs($0 - $1) <= tolerance }
  }

  func rows(_ values: [Float]) throws -> Tensor { try Tensor(values.flatMap { [$0, -$0] }, shape: [values.count, 2]) }
  func firstColumn(_ queue: FeatureQueue) throws -> [Float] {
    guard let ordered = try queue.ordered() else { return [] }
    return try ordered.select(dim: 1, index: 0).contiguous().toArray(Float.self)
  }

  @Test("the queue is first-in-first-out, wraps around and keeps only the newest rows")
  func queueOrder() throws {
    let queue = FeatureQueue(capacity: 5, width: 2)
    #expect(try queue.entries() == nil)
    try queue.enqueue(rows([1, 2]))
    #expect(try firstColumn(queue) == [1, 2] && queue.count == 2 && queue.pointer == 2)
    try queue.enqueue(rows([3, 4]))
    try queue.enqueue(rows([5, 6]))  // 6 wraps to slot 0 and evicts 1, the oldest
    #expect(try firstColumn(queue) == [2, 3, 4, 5, 6] && queue.count == 5 && queue.pointer == 1)
    #expect(try queue.entries()!.select(dim: 1, index: 0).contiguous().toArray(Float.self) == [6, 2, 3, 4, 5])
    #expect(try queue.ordered()!.select(dim: 1, index: 1).contiguous().toArray(Float.self) == [-2, -3, -4, -5, -6])
    try queue.enqueue(rows([7, 8, 9, 10, 11, 12, 13]))  // more than the capacity: only the newest 5 stay
    #expect(try firstColumn(queue) == [9, 10, 11, 12, 13] && queue.pointer == 1)
    #expect(throws: MethodError.self) { try queue.enqueue(Tensor.zeros([2, 3])) }
  }

  @Test("the queue's state round-trips, pointer and fill included")
  func queueState() throws {
    let queue = FeatureQueue(capacity: 4, width: 2)
    try queue.enqueue(rows([1, 2, 3]))
    try queue.enqueue(rows([4, 5]))
    let state = try queue.stateTensors(prefix: "queue.P5.image")
    let restored = FeatureQueue(capacity: 4, width: 2)
    try restored.loadState(state, prefix: "queue.P5.image")
    #expect(restored.pointer == queue.pointer && restored.count == queue.count)
    #expect(try firstColumn(restored) == [2, 3, 4, 5])
    try queue.enqueue(rows([6]))
    try restored.enqueue(rows([6]))
    #expect(try firstColumn(restored) == firstColumn(queue))
    #expect(throws: MethodError.self) { try FeatureQueue(capacity: 8, width: 2).loadState(state, prefix: "queue.P5.image") }
  }

  @Test("a queue given a device keeps its rows there, enqueued from the CPU or restored from a checkpoint",
        .enabled(if: Torch.cudaAvailable))
  func queueDevice() throws {
    let cuda = Device.cuda(0)
    let queue = FeatureQueue(capacity: 4, width: 2, device: cuda)
    try queue.enqueue(rows([1, 2, 3]))
    #expect(try queue.entries()!.device == cuda)
    let restored = FeatureQueue(capacity: 4, width: 2, device: cuda)
    try restored.loadState(queue.stateTensors(prefix: "q").mapValues { try $0.to(.cpu) }, prefix: "q")
    #expect(try restored.entries()!.device == cuda)
    #expect(try firstColumn(restored) == [1, 2, 3])
  }
}

import Distillation
import Foundation
import Models
import TestSupport
import Testing
import Torch

@Suite("DSMD's balancer and queue")
struct BaselineDSMDTests {
  func close(_ a: [Double], _ b: [Double], _ tolerance: Double = 1e-12) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { Swift.abs($0 - $1) <= tolerance }
  }

  @Test("the balancer's weights follow its rule on a scripted sequence of losses")
  func balancerRule() throws {
    let balancer = try DSMDBalancer(terms: ["a", "b", "c"], config: DSMDBalancerConfig(momentum: 0.5, temperature: 1))
    #expect(balancer.weights() == [1, 1, 1])  // nothing observed yet
    // Step 1 sets L⁰ = m = (2, 4, 1): every ratio is 1, so the weights stay 1.
    try balancer.observe([2, 4, 1])
    #expect(close(balancer.weights(), [1, 1, 1]))
    // Step 2: m = ½(2, 4, 1) + ½(1, 4, 1) = (1.5, 4, 1); r = (0.75, 1, 1);
    // w = 3·e^r / Σe^r = 3·(2.117000, 2.718282, 2.718282) / 7.553564.
    try balancer.observe([1, 4, 1])
    #expect(close(balancer.average, [1.5, 4, 1]))
    #expect(close(balancer.weights(), [0.8407951960600042, 1.0796024019699981, 1.0796024019699981]))
    // Step 3: m = ½(1.5, 4, 1) + ½(0.5, 2, 1) = (1, 3, 1); r = (0.5, 0.75, 1): the term that
    // has not moved (c) gains the most weight, the one that halved (a) loses the most.
    try balancer.observe([0.5, 2, 1])
    #expect(close(balancer.weights(), [0.7628256377713969, 0.97948750739951, 1.257686854829093]))
    #expect(Swift.abs(balancer.weights().reduce(0, +) - 3) < 1e-12)
    #expect(balancer.steps == 3)

    // T = 2 flattens the same ratios: w = 3·softmax(r / 2).
    let flat = try DSMDBalancer(terms: ["a", "b", "c"], config: DSMDBalancerConfig(momentum: 0.5, temperature: 2))
    for values in [[2.0, 4, 1], [1, 4, 1], [0.5, 2, 1]] { try flat.observe(values) }
    #expect(close(flat.weights(), [0.8779184537705332, 0.9948119378089, 1.127269608420567]))
    // Disabled: always 1, whatever was observed.
    let off = try DSMDBalancer(terms: ["a", "b"], config: DSMDBalancerConfig(enabled: false))
    try off.observe([1, 2])
    try off.observe([0.1, 2])
    #expect(off.weights() == [1, 1])
  }

  @Test("the balancer's state round-trips by term name; a diverged term is an error")
  func balancerState() throws {
    let balancer = try DSMDBalancer(terms: ["contrastive", "feature"], config: DSMDBalancerConfig(momentum: 0.8))
    #expect(try balancer.stateTensors(prefix: "balancer").isEmpty)
    for values in [[3.0, 1], [2.5, 0.9], [2.0, 0.2]] { try balancer.observe(values) }
    let state = try balancer.stateTensors(prefix: "balancer")
    let restored = try DSMDBalancer(terms: ["contrastive", "feature"], config: DSMDBalancerConfig(momentum: 0.8))
    try restored.loadState(state, prefix: "balancer")
    #expect(restored.weights() == balancer.weights() && restored.steps == 3)
    try balancer.observe([1, 0.1])
    try restored.observe([1, 0.1])
    #expect(restored.weights() == balancer.weights())
    let other = try DSMDBalancer(terms: ["contrastive", "similarity"])
    #expect(throws: MethodError.self) { try other.loadState(state, prefix: "balancer") }
    #expect(throws: MethodError.self) { try balancer.observe([.nan, 1]) }
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

  @Test("dsmd-pyramid carries its queues and balancer through stateTensors / loadState, and logs the balancer weights")
  func methodState() throws {
    try Torch.manualSeed(5)
    let teacher = try CLIPModel(baselineTeacherConfig())
    try teacher.freeze()
    let student = try CLIPModel(baselineStudentConfig())
    var config = MethodConfig(name: "dsmd-pyramid")
    config.dsmdPyramid.queueSize = 6
    config.dsmdPyramid.scales = ["P4", "embedding"]
    let context = MethodContext(student: student.config, teacher: teacher)
    let method = try #require(try Methods.make(config, context: context) as? DSMDPyramidMethod)
    let batch = try baselineDistillBatch(teacher: teacher, pyramid: context.pyramid)
    for _ in 0..<3 {
      let result = try method.loss(student: student, batch: batch)
      for (term, weight) in zip(method.activeTerms, method.balancer.weights()) {
        #expect(result.metrics["dsmd/weight/\(term)"] == weight)
      }
      try method.afterStep(student: student, batch: batch, result: result, context: StepContext())
    }
    // 3 batches of 4 rows into 6 slots: full, and the pointer wrapped back to the start.
    #expect(method.queues["P4"]!.image.count == 6 && method.queues["embedding"]!.text.pointer == 0)
    let state = try method.stateTensors()
    #expect(
      state.keys.contains("queue.P4.image") && state.keys.contains("queue.embedding.text.pointer")
        && state.keys.contains("balancer.steps"))
    let restored = try #require(try Methods.make(config, context: context) as? DSMDPyramidMethod)
    try restored.loadState(state)
    #expect(restored.balancer.weights() == method.balancer.weights())
    for scale in ["P4", "embedding"] {
      for (a, b) in [
        (method.queues[scale]!.image, restored.queues[scale]!.image), (method.queues[scale]!.text, restored.queues[scale]!.text),
      ] {
        #expect(try maxAbsDiff(try #require(try a.ordered()), try #require(try b.ordered())) == 0 && a.pointer == b.pointer)
      }
    }
  }
}

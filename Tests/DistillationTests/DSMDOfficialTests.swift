import Distillation
import Foundation
import Models
import TestSupport
import Testing
import Torch

@Suite("dsmd as its authors coded it: losses against the official formulas, both balancer forms")
struct DSMDOfficialTests {
  let fx: [String: Tensor]
  init() throws { fx = try loadFixture("DistillationTests", "dsmd_official") }

  func input(_ test: String, _ name: String) throws -> Tensor {
    try #require(fx["\(test)/in/\(name)"], "\(test)/in/\(name) missing")
  }

  @Test(
    "queue contrastive, L1, cosine and VSE++ hinge match the official PyTorch code (values and gradients)",
    arguments: [("dsmd_sum", 0.05, 0.2, false), ("dsmd_hardest", 0.1, 0.5, true)])
  func losses(_ test: String, _ temperature: Double, _ margin: Double, _ hardest: Bool) throws {
    let image = try input(test, "s_img").clone().requiresGrad(true), text = try input(test, "s_txt").clone().requiresGrad(true)
    let losses = try DSMDMethod.losses(
      studentImage: image, studentText: text, teacherImage: input(test, "t_img"), teacherText: input(test, "t_txt"),
      queue: (try input(test, "q_img"), try input(test, "q_txt")), temperature: temperature, margin: margin,
      hardestNegative: hardest)
    #expect(Set(losses.keys) == Set(DSMDMethod.terms))
    var total: Tensor?
    for (name, value) in losses {
      let expected = try #require(fx["\(test)/\(name)"])
      let problem = try mismatch(value.reshape([]), expected.reshape([]))
      #expect(problem == nil, "\(test)/\(name): \(problem ?? "")")
      total = try total.map { try $0 + value } ?? value
    }
    try #require(total).backward()
    for (name, leaf) in [("s_img", image), ("s_txt", text)] {
      let problem = try mismatch(try #require(try leaf.grad), try #require(fx["\(test)/grad/\(name)"]))
      #expect(problem == nil, "\(test) gradient of \(name): \(problem ?? "")")
    }
  }

  @Test("the coded balancer equalises the weighted terms to (k/4)·L_max after the first step (hand-derived)")
  func codedBalancer() throws {
    let b = try DSMDLossWeighting(form: .coded)
    // Step 1: weights 1; L̃ = L·(L_max/L) = (8, 8, 8, 8) is remembered.
    var (w, next) = b.weights(for: [2, 1, 4, 8])
    #expect(w == [1, 1, 1, 1])
    b.commit(next)
    // Step 2: L = (1, 1, 2, 8): a = (8, 8, 4, 1), L̃ = (8, 8, 8, 8), r = (1, 1, 1, 1), softmax ¼ each,
    // w = 10 · ¼ · a = (20, 20, 10, 2.5); every weighted term is 20 = (k/4)·L_max.
    (w, next) = b.weights(for: [1, 1, 2, 8])
    for (x, y) in zip(w, [20, 20, 10, 2.5]) { #expect(abs(x - y) < 1e-6, "\(w)") }
    b.commit(next)
    // Step 3: L = (0.5, 1, 1, 4): a = (8, 4, 4, 1), w = 2.5·a = (20, 10, 10, 2.5).
    (w, _) = b.weights(for: [0.5, 1, 1, 4])
    for (x, y) in zip(w, [20, 10, 10, 2.5]) { #expect(abs(x - y) < 1e-6, "\(w)") }
  }

  @Test("the DWA form weighs the slower-falling terms up (hand-derived)")
  func dwaBalancer() throws {
    let b = try DSMDLossWeighting(form: .dwa)
    var (w, next) = b.weights(for: [2, 1, 4, 8])
    #expect(w == [1, 1, 1, 1])
    b.commit(next)
    // Step 2: r = (1/2, 1/1, 2/4, 8/8) = (0.5, 1, 0.5, 1); softmax: e^0.5/(2e^0.5 + 2e) = 0.188770,
    // e/(2e^0.5 + 2e) = 0.311230; a = (8, 8, 4, 1); w = 10·softmax·a.
    (w, next) = b.weights(for: [1, 1, 2, 8])
    for (x, y) in zip(w, [15.101627, 24.898373, 7.550813, 3.112297]) { #expect(abs(x - y) < 1e-5, "\(w)") }
    b.commit(next)
    // Step 3: L = (0.5, 1, 1, 4): r = (0.5, 1, 0.5, 0.5); softmax: e^0.5/(3e^0.5 + e) = 0.215113,
    // e/(3e^0.5 + e) = 0.354661; a = (8, 4, 4, 1).
    (w, _) = b.weights(for: [0.5, 1, 1, 4])
    for (x, y) in zip(w, [17.209033, 14.186450, 8.604517, 2.151129]) { #expect(abs(x - y) < 1e-5, "\(w)") }
    // `off`: every weight 1, always.
    let off = try DSMDLossWeighting(form: .off)
    off.commit(off.weights(for: [1, 2, 3, 4]).next)
    #expect(off.weights(for: [4, 3, 2, 1]).weights == [1, 1, 1, 1])
  }

  @Test("dsmd trains with no task loss, random-unit queues and a resumable balancer")
  func methodState() throws {
    try Torch.manualSeed(5)
    let teacher = try CLIPModel(baselineTeacherConfig())
    try teacher.freeze()
    let student = try CLIPModel(baselineStudentConfig())
    var config = MethodConfig(name: "dsmd")
    config.dsmd.queueSize = 8
    let context = MethodContext(student: student.config, teacher: teacher)
    let method = try #require(try Methods.make(config, context: context) as? DSMDMethod)
    // The official queues start full of random unit vectors.
    let start = try #require(try method.imageQueue.entries())
    #expect(start.shape == [8, teacher.config.projectionDim])
    #expect(try (start.norm(dims: [1]) - 1).abs().amax().item() < 1e-5)
    let batch = try baselineDistillBatch(teacher: teacher, pyramid: context.pyramid)
    var weights: [[Double]] = []
    for _ in 0..<3 {
      let result = try method.loss(student: student, batch: batch)
      #expect(!result.loss.parts.contains { $0.name.hasPrefix("task") }, "the official code has no task loss")
      #expect(Set(result.loss.parts.map(\.name)) == Set(DSMDMethod.terms.map { "dsmd/\($0)" }))
      weights.append(DSMDMethod.terms.map { result.metrics["dsmd/weight/\($0)"]! })
      try method.afterStep(student: student, batch: batch, result: result, context: StepContext())
    }
    #expect(weights[0] == [1, 1, 1, 1] && weights[1] != weights[0])
    let again = try method.loss(student: student, batch: batch)
    let once = try method.loss(student: student, batch: batch)
    #expect(again.metrics == once.metrics, "loss() is not deterministic")
    let restored = try #require(try Methods.make(config, context: context) as? DSMDMethod)
    try restored.loadState(method.stateTensors())
    // The projection head (this student's joint width differs from the teacher's) is restored
    // with the model's weights, as the trainer's checkpoint does.
    let head = try #require(method.head)
    _ = try #require(restored.head).loadStateDict(Dictionary(uniqueKeysWithValues: head.stateDict()))
    let (a, b) = (try method.loss(student: student, batch: batch), try restored.loss(student: student, batch: batch))
    for term in DSMDMethod.terms {
      #expect(a.metrics["dsmd/weight/\(term)"] == b.metrics["dsmd/weight/\(term)"])
      #expect(a.metrics["dsmd/term/\(term)"] == b.metrics["dsmd/term/\(term)"], "the restored queue gives other negatives")
    }
  }
}

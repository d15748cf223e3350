import Distillation
import Foundation
import Models
import Testing
import Torch

@Suite("dtokd: MGDA min-norm and FAMO balancing of task and distillation")
struct DTOKDTests {
  @Test("the closed form matches a brute-force search for the shortest convex combination")
  func minNorm() throws {
    let generator = try Generator(seed: 9)
    for case_ in 0..<12 {
      // Some pairs nearly aligned, some opposed, some of very different lengths.
      let a = try Tensor.randn([6], generator: generator).toArray(Float.self).map(Double.init)
      var b = try Tensor.randn([6], generator: generator).toArray(Float.self).map(Double.init)
      if case_ % 3 == 1 { b = zip(a, b).map { 3 * $0 + 0.1 * $1 } }
      if case_ % 3 == 2 { b = b.map { $0 * 0.05 } }
      func dot(_ x: [Double], _ y: [Double]) -> Double { zip(x, y).reduce(0) { $0 + $1.0 * $1.1 } }
      let pi = DTOKDMethod.minNormWeight(g11: dot(a, a), g22: dot(b, b), g12: dot(a, b))
      var best = (alpha: 0.0, norm: Double.infinity)
      for step in 0...100_000 {
        let alpha = Double(step) / 100_000
        let v = zip(a, b).map { alpha * $0 + (1 - alpha) * $1 }
        let n = dot(v, v)
        if n < best.norm { best = (alpha, n) }
      }
      #expect(abs(pi - best.alpha) < 2e-5, "case \(case_): closed form \(pi), search \(best.alpha)")
    }
    #expect(DTOKDMethod.minNormWeight(g11: 1, g22: 1, g12: 1) == 0.5)  // identical gradients
  }

  @Test("the weight in a step is the min-norm weight of the log-losses' gradients at the embeddings")
  func mgdaStep() throws {
    try Torch.manualSeed(4)
    let teacher = try CLIPModel(baselineTeacherConfig())
    try teacher.freeze()
    let student = try CLIPModel(baselineStudentConfig())
    let context = MethodContext(student: student.config, teacher: teacher)
    let batch = try baselineDistillBatch(teacher: teacher, pyramid: context.pyramid)
    var weights: [Double] = []
    for base in ["kd", "clipkd", "fitnet", "dsmd"] {
      var config = MethodConfig(name: "dtokd")
      config.dtokd.base = base
      config.dsmd.taskWeight = 1  // dsmd has no task loss of its own
      config.dsmd.queueSize = 8
      let method = try #require(try Methods.make(config, context: context) as? DTOKDMethod)
      let step = try method.loss(student: student, batch: batch)
      #expect(step.loss.parts.map(\.name) == ["dtokd/distill", "dtokd/task"])
      // Recomputed here: the base method's own loss (the same instance, so the same head
      // weights), its task and distillation sums, their log-gradients at its embeddings.
      let inner = try method.base.loss(student: student, batch: batch)
      let e = try #require(inner.embeddings)
      func logGradient(_ task: Bool) throws -> [Double] {
        let parts = inner.loss.parts.filter { $0.name.hasPrefix("task/") == task }.map(\.value)
        let sum = try parts.dropFirst().reduce(parts[0]) { try $0 + $1 }
        let g = try Torch.gradients(of: [sum.log()], withRespectTo: [e.image, e.text], retainGraph: true)
        return try g.flatMap { try ($0 ?? Tensor.zeros([0])).reshape([-1]).toArray(Float.self).map(Double.init) }
      }
      let (gd, gt) = (try logGradient(false), try logGradient(true))
      func dot(_ x: [Double], _ y: [Double]) -> Double { zip(x, y).reduce(0) { $0 + $1.0 * $1.1 } }
      let expected = DTOKDMethod.minNormWeight(g11: dot(gd, gd), g22: dot(gt, gt), g12: dot(gd, gt))
      let pi = try #require(step.metrics["dtokd/pi_distill"])
      #expect(abs(pi - expected) < 1e-5, "\(base): \(pi) vs \(expected)")
      weights.append(pi)
    }
    #expect(weights.contains { $0 > 0 && $0 < 1 }, "no base exercises an interior weight: \(weights)")
  }

  @Test("FAMO: the logits take an Adam step against the objective that fell more (hand-derived)")
  func famo() throws {
    let teacher = try CLIPModel(baselineTeacherConfig())
    var config = MethodConfig(name: "dtokd")
    config.dtokd.base = "kd"
    config.dtokd.mode = .famo
    let method = try #require(
      try Methods.make(config, context: MethodContext(student: baselineStudentConfig(), teacher: teacher)) as? DTOKDMethod)
    // Distillation fell from 2 to 1, the task stayed at 4: δ = (ln 2, 0); z = (½, ½);
    // gradient zᵢ(δᵢ − z·δ) = (¼ ln 2, −¼ ln 2); Adam's first step is lr · sign: ξ = (−0.025, 0.025).
    method.famoUpdate(delta: [log(2), 0])
    #expect(abs(method.logits[0] + 0.025) < 1e-7 && abs(method.logits[1] - 0.025) < 1e-7, "\(method.logits)")
    let restored = try #require(
      try Methods.make(config, context: MethodContext(student: baselineStudentConfig(), teacher: teacher)) as? DTOKDMethod)
    try restored.loadState(method.stateTensors())
    #expect(restored.logits == method.logits)
  }
}

import Distillation
import Foundation
import Models
import Testing
import Torch
import TorchNN
import TorchOptim

@Suite("multiteacher and router: unified space, per-teacher loss, teacher dropping, routing")
struct MultiTeacherTests {
  /// ℓ = 0.5·(1 − cos(p, y)) + 0.5·mean_d smoothL1(p − y) (β = 1), written out in Double.
  func reference(_ p: [Double], _ y: [Double]) -> Double {
    let dot = zip(p, y).map(*).reduce(0, +)
    let norms = (p.map { $0 * $0 }.reduce(0, +)).squareRoot() * (y.map { $0 * $0 }.reduce(0, +)).squareRoot()
    let smooth = zip(p, y).map { a, b -> Double in
      let d = abs(a - b)
      return d < 1 ? 0.5 * d * d : d - 0.5
    }.reduce(0, +) / Double(p.count)
    return 0.5 * (1 - dot / norms) + 0.5 * smooth
  }

  @Test("the per-teacher loss and its gradient match the formula written out by hand")
  func perSampleLoss() throws {
    // Row 0: (1, 2, 0) vs (1, 0, 2): cos = 1/5, differences 0, 2, 2 → smooth-L1 mean (0 + 1.5 + 1.5)/3 = 1
    //   → ℓ = 0.5·0.8 + 0.5·1 = 0.9. Row 1: (0.5, −0.5, 0.25) vs (0.25, −0.25, 0.25): every |d| < 1.
    let p: [[Double]] = [[1, 2, 0], [0.5, -0.5, 0.25]]
    let y: [[Double]] = [[1, 0, 2], [0.25, -0.25, 0.25]]
    let prediction = try Tensor(p.flatMap { $0 }, shape: [2, 3]).requiresGrad(true)
    let target = try Tensor(y.flatMap { $0 }, shape: [2, 3])
    let loss = try MultiTeacherMethod.perSampleLoss(prediction, target)
    let values = try loss.toArray(Double.self)
    #expect(abs(values[0] - 0.9) < 1e-12)
    for row in 0..<2 { #expect(abs(values[row] - reference(p[row], y[row])) < 1e-12, "\(values)") }
    // Gradient of ℓ₀ + ℓ₁ against central differences of the written-out formula.
    try loss.sum().backward()
    let gradient = try #require(try prediction.grad).toArray(Double.self)
    for row in 0..<2 {
      for d in 0..<3 {
        var up = p[row]
        var down = p[row]
        up[d] += 1e-6
        down[d] -= 1e-6
        let numeric = (reference(up, y[row]) - reference(down, y[row])) / 2e-6
        #expect(abs(gradient[row * 3 + d] - numeric) < 1e-6, "row \(row) dim \(d): \(gradient[row * 3 + d]) vs \(numeric)")
      }
    }
  }

  @Test("teacher dropping keeps each sample's largest-loss teacher and drops the others where u < p")
  func dropping() throws {
    let losses = try Tensor([0.3, 0.9, 0.2, 0.5, 0.1, 0.4, 0.7, 0.6, 0.8], shape: [3, 3])
    let uniform = try Tensor([0.1, 0.2, 0.9, 0.4, 0.7, 0.2, 0.5, 0.49, 0.51], shape: [3, 3])
    let mask = try MultiTeacherMethod.keepMask(losses: losses, uniform: uniform, dropProbability: 0.5)
    // Row 0: largest is teacher 1 (kept though u = 0.2); teacher 0 dropped (0.1), teacher 2 kept (0.9).
    // Row 1: largest teacher 0 (kept, u 0.4); teacher 1 kept (0.7); teacher 2 dropped (0.2).
    // Row 2: largest teacher 2 (kept); teacher 0 kept (u 0.5 ≥ 0.5); teacher 1 dropped (0.49).
    #expect(try mask.toArray(Double.self) == [0, 1, 1, 1, 1, 0, 1, 0, 1])
    let none = try MultiTeacherMethod.keepMask(losses: losses, uniform: uniform, dropProbability: 0)
    #expect(try none.toArray(Double.self).allSatisfy { $0 == 1 })
  }

  @Test("EMA standardisation: the first batch sets μ and σ², later ones move them by the momentum")
  func ema() throws {
    let standardizer = EMAStandardizer(momentum: 0.9)
    try standardizer.update(try Tensor([1.0, 10, 3.0, 14], shape: [2, 2]))  // μ (2, 12), σ² (1, 4)
    let y = try standardizer(try Tensor([3.0, 16], shape: [1, 2])).toArray(Double.self)
    #expect(abs(y[0] - 1 / (1 + 1e-8).squareRoot()) < 1e-9 && abs(y[1] - 4 / (4 + 1e-8).squareRoot()) < 1e-9, "\(y)")
    try standardizer.update(try Tensor([0.0, 0, 0.0, 0], shape: [2, 2]))  // batch μ 0, σ² 0
    #expect(try standardizer.mean!.toArray(Double.self) == [2 * 0.9, 12 * 0.9])
    let variance = try standardizer.variance!.toArray(Double.self)
    #expect(abs(variance[0] - 0.9) < 1e-12 && abs(variance[1] - 3.6) < 1e-12)
  }

  @Test("a teacher's pair quality is the mean log-probability of the true partner both ways")
  func pairQualities() throws {
    // Two pairs in 2-D at scale 10: image 0 = text 0 = e₁, image 1 = e₂, text 1 = (0.6, 0.8).
    let images = try Tensor([1.0, 0, 0, 1], shape: [2, 2])
    let texts = try Tensor([1.0, 0, 0.6, 0.8], shape: [2, 2])
    let quality = try TeacherSample(images: [images], texts: [texts], logitScales: [10]).pairQualities().toArray(Double.self)
    // logits = 10·[[1, 0.6], [0, 0.8]]. i→t row 0: log(e¹⁰/(e¹⁰+e⁶)); row 1: log(e⁸/(e⁰+e⁸)).
    // t→i column 0: log(e¹⁰/(e¹⁰+e⁰)); column 1: log(e⁸/(e⁶+e⁸)).
    func lse(_ a: Double, _ b: Double) -> Double { max(a, b) + log(1 + exp(-abs(a - b))) }
    let q0 = 0.5 * ((10 - lse(10, 6)) + (10 - lse(10, 0)))
    let q1 = 0.5 * ((8 - lse(0, 8)) + (8 - lse(6, 8)))
    #expect(abs(quality[0] - q0) < 1e-6 && abs(quality[1] - q1) < 1e-6, "\(quality) vs \(q0), \(q1)")
  }

  /// Two tiny teachers of different joint widths (48 and 32), a student, and one batch with both
  /// teachers' features.
  func setUp(_ method: MethodConfig) throws -> (MultiTeacherMethod, CLIPModel, [CLIPModel], DistillBatch) {
    try Torch.manualSeed(11)
    let teachers = [try CLIPModel(baselineTeacherConfig()), try CLIPModel(Presets.tiny)]
    for teacher in teachers {
      try teacher.freeze()
      teacher.eval()
    }
    let student = try CLIPModel(baselineStudentConfig())
    let context = MethodContext(
      student: student.config, teacher: teachers[0], otherTeachers: [teachers[1]], teacherSample: try multiTeacherSample(teachers))
    let made = try #require(try Methods.make(method, context: context) as? MultiTeacherMethod)
    let (pixels, ids, mask) = try baselineBatch()
    let features = try teachers.map {
      try TeacherFeatures.compute(teacher: $0, pixels: pixels, ids: ids, attentionMask: mask, pyramid: context.pyramid)
    }
    var batch = DistillBatch(pixels: pixels, ids: ids, attentionMask: mask, teacher: features[0])
    batch.otherTeachers = [features[1]]
    return (made, student, teachers, batch)
  }

  @Test("gradients reach the student and every projector, and no teacher", arguments: ["mlp", "block"])
  func gradients(projector: String) throws {
    var config = MethodConfig(name: "multiteacher")
    config.multiteacher.projector = ProjectorKind(rawValue: projector)!
    config.multiteacher.dropProbability = 0
    let (method, student, teachers, batch) = try setUp(config)
    #expect(method.multiHead.projectors.count == 2)
    let result = try method.loss(student: student, batch: batch)
    try result.total.backward()
    for (key, p) in student.namedParameters() + method.multiHead.namedParameters() {
      #expect(try p.grad != nil, "\(key) got no gradient")
    }
    for teacher in teachers { for (key, p) in teacher.namedParameters() { #expect(try p.grad == nil, "teacher \(key)") } }
    #expect(result.metrics["multiteacher/teacher0_kept"] == 1 && result.metrics["multiteacher/teacher1_kept"] == 1)
  }

  @Test("on CMAPKD: its terms plus each teacher's terms on the embeddings and on every computed level")
  func onCMAPKD() throws {
    var config = MethodConfig(name: "multiteacher")
    config.multiteacher.base = "cmapkd"
    config.multiteacher.dropProbability = 0
    config.cmapkd.selection = .uniform
    let (method, student, teachers, batch) = try setUp(config)
    let base = try #require(method.base)
    let result = try method.loss(student: student, batch: batch)
    let names = result.loss.parts.map(\.0)
    #expect(names.contains { $0.hasPrefix("cmapkd/intra_v") } && names.contains("distill/teachers"), "\(names)")
    // The level term by hand: uniform weights (¼ per level, all four computed at the fine stage),
    // each level's shared-space vectors through teacher t's projector and standardisation.
    let (_, step) = try base.lossAndStep(student: student, batch: batch)
    let side = try #require(step.side)
    for t in 0..<2 {
      let features = t == 0 ? batch.teacher! : batch.otherTeachers[0]
      var modalities: [Tensor] = []
      for (s, y) in [(side.shared.vision, features.sharedVision), (side.shared.language, features.sharedLanguage)] {
        var sum = try Tensor.zeros([4])
        for level in 0..<4 {
          let prediction = try method.multiHead.levelProjectors[t](Functional.normalize(s[level]))
          let target = try method.standardized(Functional.normalize(y[level]), teacher: t)
          sum = try sum + MultiTeacherMethod.perSampleLoss(prediction, target) * 0.25
        }
        modalities.append(sum)
      }
      let expected = try ((modalities[0] + modalities[1]) * 0.5).toArray(Float.self)
      let got = try method.levelLoss(step, teacher: features, index: t).toArray(Float.self)
      for (a, b) in zip(got, expected) { #expect(abs(a - b) < 1e-5, "teacher \(t): \(got) vs \(expected)") }
    }
    try result.total.backward()
    for (key, p) in student.namedParameters() + method.multiHead.namedParameters() where !key.hasPrefix("cmapkd.alsn.") {
      #expect(try p.grad != nil, "\(key) got no gradient")
    }
    for teacher in teachers { for (key, p) in teacher.namedParameters() { #expect(try p.grad == nil, "teacher \(key)") } }
  }

  @Test("router: the similarity router keeps exactly the teacher it routes each sample to")
  func similarityRouting() throws {
    var config = MethodConfig(name: "router")
    config.router.neighbours = 3
    let (method, student, _, batch) = try setUp(config)
    let router = try #require(method.similarity)
    let query = try Functional.normalize(batch.teacher!.imageEmbedding)
    let expected = try router.route(query).choice.toArray(Int64.self)
    let result = try method.loss(student: student, batch: batch)
    let kept0 = try #require(result.metrics["router/teacher0_kept"])
    let share = Double(expected.filter { $0 == 0 }.count) / Double(expected.count)
    #expect(abs(kept0 - share) < 1e-9 && abs(result.metrics["router/teacher1_kept"]! - (1 - share)) < 1e-9)
  }

  @Test("router rl: the policy learns from the held-out progress, and its state survives a checkpoint")
  func reinforcement() throws {
    var config = MethodConfig(name: "router")
    config.router.kind = .rl
    config.router.policyLearningRate = 0.1
    let (method, student, _, batch0) = try setUp(config)
    let policy = try #require(method.policy)
    // Held-out pairs: the batch itself. Step 0 sets the reference loss; later steps are rewarded.
    let heldOut = batch0
    var batch = batch0
    let optimizer = try AdamW(student.parameters() + method.multiHead.parameters(), learningRate: 1e-3)
    for step in 0..<3 {
      batch.step = step
      try Torch.manualSeed(UInt64(step))
      let result = try method.loss(student: student, batch: batch)
      try optimizer.zeroGrad()
      try result.total.backward()
      try optimizer.step()
      try method.afterStep(
        student: student, batch: batch, result: result, context: StepContext(heldOut: { heldOut }, learningRate: 1e-3))
    }
    let moved = try policy.parameters().map { try $0.abs().sum().item() }.reduce(0, +)
    #expect(moved > 0, "the policy never learned")
    let state = try method.stateTensors()
    #expect(state["router.baseline"] != nil && state["router.heldout_loss"] != nil && state["router.policy.weight"] != nil)
    // A fresh method loaded from the state has the same policy.
    let (restored, _, _, _) = try setUp(config)
    try restored.loadState(state)
    let a = try policy.weight.toArray(Float.self)
    let b = try restored.policy!.weight.toArray(Float.self)
    #expect(a == b)
    // Without held-out pairs the RL router says what it needs.
    #expect {
      try method.afterStep(student: student, batch: batch, result: try method.loss(student: student, batch: batch), context: StepContext())
    } throws: { "\($0)".contains("held-out") }
  }

  @Test("one teacher: multiteacher is its own single-teacher control; a router is a clear error naming extra_teachers")
  func oneTeacher() throws {
    try Torch.manualSeed(11)
    let teacher = try CLIPModel(baselineTeacherConfig())
    try teacher.freeze()
    teacher.eval()
    let student = try CLIPModel(baselineStudentConfig())
    let context = MethodContext(student: student.config, teacher: teacher, teacherSample: try multiTeacherSample([teacher]))
    #expect { try Methods.make(MethodConfig(name: "router"), context: context) } throws: {
      "\($0)".contains("extra_teachers")
    }
    // Dropping at 0.5: the only teacher is every sample's largest-loss one, so it is never dropped.
    let method = try #require(try Methods.make(MethodConfig(name: "multiteacher"), context: context) as? MultiTeacherMethod)
    #expect(method.multiHead.projectors.count == 1)
    let (pixels, ids, mask) = try baselineBatch()
    let features = try TeacherFeatures.compute(teacher: teacher, pixels: pixels, ids: ids, attentionMask: mask, pyramid: context.pyramid)
    let result = try method.loss(student: student, batch: DistillBatch(pixels: pixels, ids: ids, attentionMask: mask, teacher: features))
    #expect(result.metrics["multiteacher/teacher0_kept"] == 1, "\(result.metrics)")
    try result.total.backward()
    for (key, p) in student.namedParameters() + method.multiHead.namedParameters() {
      #expect(try p.grad != nil, "\(key) got no gradient")
    }
  }
}

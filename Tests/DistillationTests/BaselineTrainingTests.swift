import Distillation
import Foundation
import Models
import Pyramid
import TestSupport
import Testing
import Torch
import TorchOptim

/// The student of the baseline tests: `Presets.tiny`.
func baselineStudentConfig() -> CLIPConfig { Presets.tiny }

/// A slightly wider and deeper tiny teacher with its own embedding width (so every projection
/// between student and teacher widths is exercised) and a trained-looking logit scale.
func baselineTeacherConfig() -> CLIPConfig {
  var config = Presets.tiny
  let width = 96
  config.visionConfig.hiddenSize = width
  config.visionConfig.intermediateSize = 4 * width
  config.visionConfig.numHiddenLayers = 4
  config.textConfig.hiddenSize = width
  config.textConfig.intermediateSize = 4 * width
  config.textConfig.numHiddenLayers = 4
  // 6 heads of 16, the student's head width: TinyCLIP's weight inheritance keeps whole heads.
  config.visionConfig.numAttentionHeads = 6
  config.textConfig.numAttentionHeads = 6
  return CLIPConfig(text: config.textConfig, vision: config.visionConfig, projectionDim: 48, logitScaleInitValue: 3.5)
}

/// 4 random 32×32 images and captions of random tokens between start and end of text, padded.
func baselineBatch() throws -> (pixels: Tensor, ids: Tensor, mask: Tensor) {
  let lengths = [8, 5, 3, 6]  // real tokens, start and end included
  var ids: [Int64] = []
  for (row, length) in lengths.enumerated() {
    let words = (0..<(length - 2)).map { Int64(400 + 37 * row + 11 * $0) }
    ids += [49406] + words + [49407] + Array(repeating: 0, count: 8 - length)
  }
  let tensor = try Tensor(ids, shape: [4, 8])
  let mask = try Tensor(lengths.flatMap { length in (0..<8).map { Int64($0 < length ? 1 : 0) } }, shape: [4, 8])
  return (try Tensor.randn([4, 3, 32, 32]), tensor, mask)
}

/// `baselineBatch` with the teacher's features.
func baselineDistillBatch(teacher: CLIPModel, pyramid: PyramidConfig) throws -> DistillBatch {
  let (pixels, ids, mask) = try baselineBatch()
  let features = try TeacherFeatures.compute(teacher: teacher, pixels: pixels, ids: ids, attentionMask: mask, pyramid: pyramid)
  return DistillBatch(pixels: pixels, ids: ids, attentionMask: mask, teacher: features)
}

@Suite("Every method trains a tiny student")
struct BaselineTrainingTests {
  @Test("AdamW on one batch: the loss falls, nothing is NaN, every head parameter learns", arguments: Methods.names)
  func trains(_ name: String) throws {
    try Torch.manualSeed(7)
    let teacher = try CLIPModel(baselineTeacherConfig())
    try teacher.freeze()
    teacher.eval()
    let student = try CLIPModel(baselineStudentConfig())
    var config = MethodConfig(name: name)
    config.dsmd.queueSize = 8
    // One batch and no held-out pairs: fixed uniform level weights (the selector has its own tests).
    config.cmapkd.selection = .uniform
    var context = MethodContext(student: student.config, teacher: teacher)
    // The multi-teacher methods get a second, narrower teacher and its features.
    let second = Methods.multiTeacherNames.contains(name) ? try CLIPModel(Presets.tiny) : nil
    if let second {
      try second.freeze()
      second.eval()
      context.otherTeachers = [second]
      context.teacherSample = try multiTeacherSample([teacher, second])
    } else if Methods.needsTeacherSample(config) {
      context.teacherSample = try multiTeacherSample([teacher])  // CMAPKD's unified embedding term
    }
    let method = try Methods.make(config, context: context)
    var batch = try baselineDistillBatch(teacher: teacher, pyramid: context.pyramid)
    if let second {
      let (pixels, ids, mask) = try baselineBatch()
      batch.otherTeachers = [
        try TeacherFeatures.compute(teacher: second, pixels: pixels, ids: ids, attentionMask: mask, pyramid: context.pyramid)
      ]
    }
    if !method.needsTeacher { batch.teacher = nil }  // `none` must not touch the teacher
    // 1e-3: at 2e-3 the first AdamW step overshoots on some random teachers (kd rose 3.1 → 8.7 before recovering).
    let optimizer = try AdamW(student.parameters() + (method.head?.parameters() ?? []), learningRate: 1e-3)
    var losses: [Double] = []
    for step in 0..<10 {
      batch.step = step
      let result = try method.loss(student: student, batch: batch)
      try optimizer.zeroGrad()
      try result.total.backward()
      if step == 0, let head = method.head {
        for (key, p) in head.namedParameters() where !key.hasPrefix("alsn.") {  // CMAPKD's ALSN learns from held-out progress
          #expect(try p.grad != nil, "\(name): head parameter \(key) got no gradient")
        }
      }
      try optimizer.step()
      try method.afterStep(student: student, batch: batch, result: result, context: StepContext(learningRate: 1e-3))
      // dsmd's balancer rescales its terms every step (the coded form makes each weighted term
      // (k/4)·L_max), so its weighted total is not comparable across steps: its raw terms are.
      losses.append(
        name == "dsmd"
          ? DSMDMethod.terms.reduce(0) { $0 + result.metrics["dsmd/term/\($1)"]! }
          // dtokd's total is a weighted sum of log-losses (negative once a loss is below 1).
          : name == "dtokd" ? result.metrics["dtokd/loss_distill"]! + result.metrics["dtokd/loss_task"]! : try result.total.item())
      #expect(try result.loss.values().values.allSatisfy { $0.isFinite }, "\(name): a part is not finite at step \(step)")
    }
    #expect(losses.allSatisfy { $0.isFinite }, "\(name): \(losses)")
    #expect(losses.last! < 0.8 * losses.first!, "\(name): loss went \(losses.first!) → \(losses.last!) (\(losses))")
    for (key, p) in teacher.namedParameters() + (second?.namedParameters() ?? []) {
      #expect(try p.grad == nil, "\(name): teacher \(key) got a gradient")
    }
  }
}

/// Every teacher's normalised embeddings of 16 random pairs (the multi-teacher methods fit
/// PHI-S and the router's bank on them).
func multiTeacherSample(_ teachers: [CLIPModel]) throws -> TeacherSample {
  let pixels = try Tensor.randn([16, 3, 32, 32])
  let ids = try Tensor.randint(400, 2000, [16, 8])
  let mask = try Tensor.ones([16, 8], dtype: .int64)
  return try Torch.noGrad {
    TeacherSample(
      images: try teachers.map { try $0.encodeImage(pixels, normalize: true) },
      texts: try teachers.map { try $0.encodeText(ids, attentionMask: mask, normalize: true) },
      logitScales: try teachers.map { try $0.logitScale.exp().item() })
  }
}

import Distillation
import Foundation
import Models
import Pyramid
import TestSupport
import Testing
import Torch
import TorchNN
import TorchOptim

/// A small CLIP with a 100-token vocabulary, 16×16 images and patch 4.
func smallCLIP(width: Int, layers: Int, projection: Int = 16) -> CLIPConfig {
  CLIPConfig(
    text: CLIPTextConfig(
      vocabSize: 100, hiddenSize: width, intermediateSize: 2 * width, numHiddenLayers: layers, numAttentionHeads: 2,
      maxPositionEmbeddings: 8, projectionDim: projection, eosTokenId: 99),
    vision: CLIPVisionConfig(
      hiddenSize: width, intermediateSize: 2 * width, numHiddenLayers: layers, numAttentionHeads: 2, imageSize: 16, patchSize: 4,
      projectionDim: projection),
    projectionDim: projection)
}

/// A frozen small teacher, a smaller student and the student's CMAPKD head, seeded.
func smallTeacherStudent(seed: UInt64) throws -> (teacher: CLIPModel, student: CLIPModel, head: CMAPKDHead) {
  try Torch.manualSeed(seed)
  let teacher = try CLIPModel(smallCLIP(width: 32, layers: 4))
  try teacher.freeze()
  teacher.eval()
  let student = try CLIPModel(smallCLIP(width: 16, layers: 2))
  return (teacher, student, try CMAPKDHead(student: student.config, teacher: teacher))
}

/// A batch of 4 images and captions with padding.
func smallBatch() throws -> (pixels: Tensor, ids: Tensor, mask: Tensor) {
  let ids = try Tensor(
    [98, 5, 7, 99, 0, 0, 98, 9, 99, 0, 0, 0, 98, 11, 12, 13, 99, 0, 98, 20, 99, 0, 0, 0] as [Int64], shape: [4, 6])
  return (try Tensor.randn([4, 3, 16, 16]), ids, try ids.ne(0).to(.int64))
}

@Suite("CMAPKD composed: gradients, stages, a decreasing loss")
struct CMAPKDTests {
  @Test(
    "every student-side parameter gets a gradient; the teacher gets none", arguments: [SelectionMode.uniform, .gating, .policy])
  func gradients(_ mode: SelectionMode) throws {
    try Torch.manualSeed(0)
    let teacher = try CLIPModel(smallCLIP(width: 32, layers: 4))
    try teacher.freeze()
    teacher.eval()
    let student = try CLIPModel(smallCLIP(width: 16, layers: 2))
    let head = try CMAPKDHead(student: student.config, teacher: teacher)
    let method = try fittedCMAPKD(everyTerm(mode), teacher: teacher)
    let batch = try smallBatch()
    let features = try TeacherFeatures.compute(
      teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask, pyramid: method.config.pyramid)
    let step = try method.step(
      student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask,
      stage: .fine)
    #expect(
      Set(step.loss.parts.map { $0.name.split(separator: "/").first.map(String.init)! }) == [
        "intra_v", "intra_l", "align", "affinity", "embedding", "pyramid", "relation", "layer_relation", "task",
      ])
    try step.total.backward()
    for (key, p) in student.namedParameters() { #expect(try p.grad != nil, "student \(key) got no gradient") }
    for (key, p) in head.namedParameters() where !key.hasPrefix("alsn.") {
      #expect(try p.grad != nil, "head \(key) got no gradient")
    }
    // The ALSN is trained by its own held-out signal, never by the loss it weights.
    for (key, p) in head.alsn.namedParameters() {
      #expect(try p.grad == nil, "alsn \(key) got a gradient from the loss it weights")
    }
    for (key, p) in teacher.namedParameters() { #expect(try p.grad == nil, "teacher \(key) got a gradient") }
  }

  @Test("each stage trains only its levels")
  func stages() throws {
    let teacher = try CLIPModel(smallCLIP(width: 32, layers: 4))
    try teacher.freeze()
    let student = try CLIPModel(smallCLIP(width: 16, layers: 2))
    let head = try CMAPKDHead(student: student.config, teacher: teacher)
    let method = try fittedCMAPKD(everyTerm(), teacher: teacher)
    let batch = try smallBatch()
    let features = try TeacherFeatures.compute(
      teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask, pyramid: method.config.pyramid)
    let coarse = try method.step(
      student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask,
      stage: .coarse)
    let names = coarse.loss.parts.map(\.name)
    #expect(
      names.contains("intra_v/P5") && !names.contains("intra_v/P4") && names.contains("pyramid/P5-L4")
        && names.count(where: { $0.hasPrefix("pyramid/") }) == 1)
    #expect(!names.contains { $0.hasPrefix("layer_relation") })  // a single level has no relation to another
    let medium = try method.step(
      student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask,
      stage: .medium)
    #expect(medium.loss.parts.map(\.name).count(where: { $0.hasPrefix("pyramid/") }) == 4)
    let fine = try method.step(
      student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask,
      stage: .fine)
    #expect(fine.loss.parts.map(\.name).count(where: { $0.hasPrefix("pyramid/") }) == 16)
  }

  @Test("the total loss falls when AdamW trains student and head on one batch")
  func decreases() throws {
    let (teacher, student, head) = try smallTeacherStudent(seed: 1)
    let method = try fittedCMAPKD(everyTerm(), teacher: teacher)
    let batch = try smallBatch()
    let features = try TeacherFeatures.compute(
      teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask, pyramid: method.config.pyramid)
    let optimizer = try AdamW(student.parameters() + head.pyramid.parameters() + head.bridge!.parameters(), learningRate: 3e-3)
    var losses: [Double] = []
    for _ in 0..<15 {
      let step = try method.step(
        student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask,
        stage: .fine)
      try optimizer.zeroGrad()
      try step.total.backward()
      try optimizer.step()
      losses.append(try step.total.item())
    }
    #expect(losses.allSatisfy { $0.isFinite })
    #expect(losses.last! < 0.7 * losses.first!, "loss went \(losses.first!) → \(losses.last!)")
  }

  @Test("all λ = 0 is a clear error")
  func everythingOff() throws {
    let teacher = try CLIPModel(smallCLIP(width: 32, layers: 4))
    let student = try CLIPModel(smallCLIP(width: 16, layers: 2))
    let head = try CMAPKDHead(student: student.config, teacher: teacher)
    var config = CMAPKDConfig()
    config.lambdas = try JSONDecoder().decode(
      LossWeights.self,
      from: Data(#"{"intra_vision":0,"intra_language":0,"align":0,"pyramid":0,"relation":0,"layer_relation":0,"task":0,"embedding":0,"affinity":0}"#.utf8))
    let batch = try smallBatch()
    let features = try TeacherFeatures.compute(
      teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask, pyramid: config.pyramid)
    #expect(throws: PyramidError.self) {
      try CMAPKD(config).step(
        student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask,
        stage: .fine)
    }
  }
}

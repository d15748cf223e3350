import Distillation
import Foundation
import Models
import Testing
import Torch

@Suite("TinyCLIP's manual weight inheritance")
struct WeightInheritanceTests {
  /// `Presets.tiny` with other depths, widths and heads (16-wide heads throughout).
  func config(layers: Int, width: Int) -> CLIPConfig {
    var c = Presets.tiny
    for tower in [\CLIPConfig.visionConfig.numHiddenLayers, \CLIPConfig.textConfig.numHiddenLayers] { c[keyPath: tower] = layers }
    c.visionConfig.hiddenSize = width
    c.visionConfig.intermediateSize = 4 * width
    c.visionConfig.numAttentionHeads = width / 16
    c.textConfig.hiddenSize = width
    c.textConfig.intermediateSize = 4 * width
    c.textConfig.numAttentionHeads = width / 16
    return CLIPConfig(text: c.textConfig, vision: c.visionConfig, projectionDim: c.projectionDim, logitScaleInitValue: 3)
  }

  @Test("interval_front depth: step ⌊T/S⌋ from layer 0")
  func layerIndices() {
    #expect(WeightInheritance.layerIndices(teacherDepth: 4, studentDepth: 3) == [0, 1, 2])
    #expect(WeightInheritance.layerIndices(teacherDepth: 12, studentDepth: 4) == [0, 3, 6, 9])
    #expect(WeightInheritance.layerIndices(teacherDepth: 4, studentDepth: 2) == [0, 2])
  }

  @Test("a shallower student of the same width reproduces the teacher's selected layers' outputs")
  func depthOnly() throws {
    try Torch.manualSeed(3)
    let teacher = try CLIPModel(config(layers: 4, width: 32))
    try teacher.initializeForTraining()
    let student = try CLIPModel(config(layers: 2, width: 32))
    let map = try WeightInheritance.inherit(student: student, from: teacher)
    #expect(map["vision_model.encoder.layers.1.mlp.fc1.weight"] == "vision_model.encoder.layers.2.mlp.fc1.weight")
    teacher.eval()
    student.eval()
    let x = try Tensor.randn([3, 5, 32])
    for (s, t) in [(0, 0), (1, 2)] {
      for tower in [\CLIPModel.visionModel.encoder, \CLIPModel.textModel.encoder] {
        let a = try student[keyPath: tower].layers[s](x), b = try teacher[keyPath: tower].layers[t](x)
        #expect(try (a - b).abs().amax().item() == 0, "student layer \(s) ≠ teacher layer \(t)")
      }
    }
    // Embeddings, final norms and projections are the teacher's own.
    let pixels = try Tensor.randn([2, 3, 32, 32])
    let (se, _) = try student.visionModel.embeddings(pixels), (te, _) = try teacher.visionModel.embeddings(pixels)
    #expect(try (se - te).abs().amax().item() == 0)
    #expect(try (student.logitScale - teacher.logitScale).abs().item() == 0)
  }

  @Test("a narrower student takes the teacher's leading heads, channels and MLP units")
  func widthSlices() throws {
    try Torch.manualSeed(4)
    let teacher = try CLIPModel(config(layers: 2, width: 48))  // 3 heads
    let student = try CLIPModel(config(layers: 2, width: 32))  // 2 heads
    try WeightInheritance.inherit(student: student, from: teacher)
    let t = Dictionary(uniqueKeysWithValues: teacher.namedParameters())
    let s = Dictionary(uniqueKeysWithValues: student.namedParameters())
    func expectSlice(_ key: String, _ rows: Int, _ columns: Int?) throws {
      var expected = try #require(t[key]).narrow(dim: 0, start: 0, length: rows)
      if let columns { expected = try expected.narrow(dim: 1, start: 0, length: columns) }
      #expect(try (try #require(s[key]) - expected).abs().amax().item() == 0, "\(key)")
    }
    // q/k/v rows are head-major: the first 32 rows are heads 0 and 1 of the teacher's 3.
    try expectSlice("text_model.encoder.layers.1.self_attn.q_proj.weight", 32, 32)
    try expectSlice("vision_model.encoder.layers.0.self_attn.v_proj.bias", 32, nil)
    try expectSlice("vision_model.encoder.layers.0.mlp.fc1.weight", 128, 32)
    try expectSlice("vision_model.encoder.layers.0.mlp.fc2.weight", 32, 128)
    try expectSlice("text_model.embeddings.token_embedding.weight", Presets.tiny.textConfig.vocabSize, 32)
    try expectSlice("visual_projection.weight", Presets.tiny.projectionDim, 32)
  }

  @Test("tinyclip inherits by default, before training starts; other methods only with method.inherit (the trainer's)")
  func methodsInherit() throws {
    try Torch.manualSeed(6)
    let teacher = try CLIPModel(config(layers: 4, width: 32))
    try teacher.initializeForTraining()
    let student = try CLIPModel(config(layers: 2, width: 32))
    let method = try Methods.make(MethodConfig(name: "tinyclip"), context: MethodContext(student: student.config, teacher: teacher))
    try method.prepare(student: student)
    let (s, t) = (student.visionModel.encoder.layers[1].mlp.fc1.weight, teacher.visionModel.encoder.layers[2].mlp.fc1.weight)
    #expect(try (s - t).abs().amax().item() == 0, "tinyclip: student layer 1 is not teacher layer 2")
    // Every other method's prepare leaves the student alone (`method.inherit` is the trainer's).
    let scratch = try CLIPModel(config(layers: 2, width: 32))
    let before = try scratch.visionModel.encoder.layers[1].mlp.fc1.weight.clone()
    try Methods.make(MethodConfig(name: "cmapkd"), context: cmapkdContext(student: scratch.config, teacher: teacher))
      .prepare(student: scratch)
    #expect(try (scratch.visionModel.encoder.layers[1].mlp.fc1.weight - before).abs().amax().item() == 0)
  }

  @Test("a student that cannot inherit is a clear error naming the obstacle")
  func errors() throws {
    let teacher = try CLIPModel(config(layers: 2, width: 32))
    var other = config(layers: 2, width: 32)
    other.visionConfig.numAttentionHeads = 4  // heads of 8
    #expect {
      try WeightInheritance.inherit(student: CLIPModel(other), from: teacher)
    } throws: { "\($0)".contains("the same vision attention head width (student 8, teacher 16)") }
    #expect {
      try WeightInheritance.inherit(student: CLIPModel(config(layers: 3, width: 32)), from: teacher)
    } throws: { "\($0)".contains("no more layers than the teacher") }
  }
}

import Distillation
import Foundation
import Models
import Pyramid
import Testing
import Torch
import TorchNN

/// A teacher's normalised embeddings of 24 random images and captions of its own sizes, drawn
/// from a generator of their own (the global stream is left as it was): what the runner's
/// `MethodContext.teacherSample` holds, for CMAPKD's `unified` embedding term.
func teacherSample(of teacher: CLIPModel) throws -> TeacherSample {
  let generator = try Generator(seed: 99)
  let (v, t) = (teacher.config.visionConfig, teacher.config.textConfig)
  let pixels = try Tensor.randn([24, 3, v.imageSize, v.imageSize], generator: generator).to(teacher.logitScale.dtype)
  let ids = try Tensor.randint(1, t.vocabSize - 1, [24, t.maxPositionEmbeddings], generator: generator)
  let mask = try Tensor.ones([24, t.maxPositionEmbeddings], dtype: .int64)
  return try Torch.noGrad {
    TeacherSample(
      images: [try teacher.encodeImage(pixels, normalize: true).to(.float32)],
      texts: [try teacher.encodeText(ids, attentionMask: mask, normalize: true).to(.float32)],
      logitScales: [try teacher.logitScale.exp().item()])
  }
}

/// CMAPKD for `config` with the PHI-S standardisation of `teacher`'s sample fitted, as
/// `CMAPKDMethod` fits it.
func fittedCMAPKD(_ config: CMAPKDConfig, teacher: CLIPModel) throws -> CMAPKD {
  let sample = try teacherSample(of: teacher)
  return try CMAPKD(
    config, teacher: teacher, standardizer: try PHISStandardizer(fitting: Tensor.cat([sample.images[0], sample.texts[0]], dim: 0)))
}

/// A method context for `student` and `teacher` with the teacher sample the runner would give.
func cmapkdContext(student: CLIPConfig, teacher: CLIPModel) throws -> MethodContext {
  MethodContext(student: student, teacher: teacher, teacherSample: try teacherSample(of: teacher))
}

/// The default CMAPKD settings with the shared-space terms on (pyramid alignment 0.5, layer
/// relation 0.3): every term of the method at once.
func everyTerm(_ selection: SelectionMode = .gating) -> CMAPKDConfig {
  var config = CMAPKDConfig(selection: selection)
  config.lambdas.pyramid = 0.5
  config.lambdas.layerRelation = 0.3
  return config
}

/// Only the named λ on, every other term off.
func onlyLambdas(_ values: [String: Double]) throws -> LossWeights {
  var all: [String: Double] = [
    "intra_vision": 0, "intra_language": 0, "align": 0, "pyramid": 0, "relation": 0, "layer_relation": 0, "task": 0, "embedding": 0,
    "affinity": 0,
  ]
  all.merge(values) { _, new in new }
  return try JSONDecoder().decode(LossWeights.self, from: JSONSerialization.data(withJSONObject: all))
}

@Suite("CMAPKD's embedding term and the bridges it can skip")
struct CMAPKDEmbeddingTests {
  /// ℓ = 0.5·(1 − cos(p, y)) + 0.5·mean_d smoothL1(p − y), β = 1, written out per element.
  static func referenceLoss(_ p: [Double], _ y: [Double], rows: Int) -> [Double] {
    let d = p.count / rows
    return (0..<rows).map { b in
      let pr = p[(b * d)..<((b + 1) * d)], yr = y[(b * d)..<((b + 1) * d)]
      let dot = zip(pr, yr).reduce(0) { $0 + $1.0 * $1.1 }
      let cosine = dot / (max(sqrt(pr.reduce(0) { $0 + $1 * $1 }), 1e-8) * max(sqrt(yr.reduce(0) { $0 + $1 * $1 }), 1e-8))
      let smooth = zip(pr, yr).reduce(0.0) { sum, pair in
        let a = abs(pair.0 - pair.1)
        return sum + (a < 1 ? 0.5 * a * a : a - 0.5)
      } / Double(d)
      return 0.5 * (1 - cosine) + 0.5 * smooth
    }
  }

  /// y = ((x − μ) Rᵀ) / φ from the fitted arrays, row by row.
  static func standardize(_ x: [Double], _ s: PHISStandardizer, rows: Int) -> [Double] {
    let d = s.dimension
    var out = [Double](repeating: 0, count: rows * d)
    for b in 0..<rows {
      for i in 0..<d {
        var sum = 0.0
        for j in 0..<d { sum += (x[b * d + j] - s.mean[j]) * s.rotation[i * d + j] }
        out[b * d + i] = sum / s.scale
      }
    }
    return out
  }

  static func normalizedRows(_ t: Tensor) throws -> [Double] {
    try Functional.normalize(t.detach().to(.float64)).toArray(Double.self)
  }

  @Test("the unified embedding term equals the loss written out from PHI-S's arrays and the projector's output")
  func unifiedMatchesReference() throws {
    let (teacher, student, _) = try smallTeacherStudent(seed: 3)
    let head = try CMAPKDHead(student: student.config, teacher: teacher, embeddingLoss: .unified)
    #expect(head.embeddingProjector != nil && head.imageProjection == nil && head.textProjection == nil)
    var config = CMAPKDConfig(selection: .uniform)
    config.embeddingLoss = .unified
    config.lambdas = try onlyLambdas(["embedding": 3])
    let standardizer = try PHISStandardizer(fitting: Functional.normalize(Tensor.randn([40, 16]) + 0.3))
    let method = CMAPKD(config, standardizer: standardizer)
    let batch = try smallBatch()
    let features = try TeacherFeatures.compute(
      teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask, pyramid: config.pyramid)
    let step = try method.step(
      student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask,
      stage: .fine)
    #expect(step.loss.parts.map(\.name) == ["embedding/unified"])
    let got = try step.total.item() as Double

    let rows = 4
    let image = try student.encodeImage(batch.pixels)
    let text = try student.encodeText(batch.ids, attentionMask: batch.mask)
    let projector = try #require(head.embeddingProjector)
    let pi = try projector(Functional.normalize(image)).detach().to(.float64).toArray(Double.self)
    let pt = try projector(Functional.normalize(text)).detach().to(.float64).toArray(Double.self)
    let yi = Self.standardize(try Self.normalizedRows(features.imageEmbedding), standardizer, rows: rows)
    let yt = Self.standardize(try Self.normalizedRows(features.textEmbedding), standardizer, rows: rows)
    let li = Self.referenceLoss(pi, yi, rows: rows), lt = Self.referenceLoss(pt, yt, rows: rows)
    let expected = 3 * zip(li, lt).reduce(0) { $0 + 0.5 * ($1.0 + $1.1) } / Double(rows)
    #expect(abs(got - expected) < 1e-5 * max(1, abs(expected)), "unified term \(got), reference \(expected)")

    try step.total.backward()
    for (key, p) in projector.namedParameters() { #expect(try p.grad != nil, "projector \(key) got no gradient") }
  }

  @Test("the unified term without a fitted standardisation is a clear error")
  func unifiedNeedsStandardizer() throws {
    let (teacher, student, _) = try smallTeacherStudent(seed: 4)
    let head = try CMAPKDHead(student: student.config, teacher: teacher, embeddingLoss: .unified)
    var config = CMAPKDConfig(selection: .uniform)
    config.embeddingLoss = .unified
    let batch = try smallBatch()
    let features = try TeacherFeatures.compute(
      teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask, pyramid: config.pyramid)
    let error = #expect(throws: PyramidError.self) {
      try CMAPKD(config, teacher: teacher).step(
        student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask,
        stage: .fine)
    }
    #expect(error?.description.contains("PHI-S") == true)
    // Through the method interface, the missing sample is named when the method is made.
    #expect(throws: MethodError.self) {
      var methodConfig = MethodConfig(name: "cmapkd")
      methodConfig.cmapkd = config
      _ = try Methods.make(methodConfig, context: MethodContext(student: student.config, teacher: teacher))
    }
    var methodConfig = MethodConfig(name: "cmapkd")
    methodConfig.cmapkd = config
    #expect(Methods.needsTeacherSample(methodConfig))
    methodConfig.cmapkd.embeddingLoss = .fd
    #expect(!Methods.needsTeacherSample(methodConfig))
  }

  @Test("the method fits PHI-S on the runner's sample of the teacher's embeddings")
  func methodFitsStandardizer() throws {
    let (teacher, student, _) = try smallTeacherStudent(seed: 5)
    var methodConfig = MethodConfig(name: "cmapkd")
    methodConfig.cmapkd.embeddingLoss = .unified
    let pixels = try Tensor.randn([12, 3, 16, 16])
    let ids = try Tensor.randint(1, 98, [12, 6])
    let mask = try Tensor.ones([12, 6], dtype: .int64)
    let sample = try Torch.noGrad {
      TeacherSample(
        images: [try teacher.encodeImage(pixels, normalize: true)],
        texts: [try teacher.encodeText(ids, attentionMask: mask, normalize: true)], logitScales: [1])
    }
    let method = try #require(
      try Methods.make(methodConfig, context: MethodContext(student: student.config, teacher: teacher, teacherSample: sample))
        as? CMAPKDMethod)
    let fitted = try #require(method.method.standardizer)
    let expected = try PHISStandardizer(fitting: Tensor.cat([sample.images[0], sample.texts[0]], dim: 0))
    #expect(fitted == expected)
  }

  @Test("without pyramid alignment and layer relation the bridges do not run, and the other terms are unchanged")
  func bridgesSkipped() throws {
    let (teacher, student, head) = try smallTeacherStudent(seed: 6)
    let batch = try smallBatch()
    let full = try fittedCMAPKD(everyTerm(.uniform), teacher: teacher)
    var lean = full
    lean.config.lambdas.pyramid = 0
    lean.config.lambdas.layerRelation = 0
    #expect(lean.config.lambdas == CMAPKDConfig().lambdas)  // the default has them off
    #expect(full.needsShared && !lean.needsShared)
    let features = try TeacherFeatures.compute(
      teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask, pyramid: full.config.pyramid)
    func run(_ method: CMAPKD) throws -> CMAPKDStep {
      try method.step(
        student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask,
        stage: .fine)
    }
    let a = try run(full), b = try run(lean)
    let fullSide = try #require(a.side), leanSide = try #require(b.side)
    #expect(fullSide.shared.vision.allSatisfy { $0.count > 0 } && fullSide.shared.language.allSatisfy { $0.count > 0 })
    #expect(leanSide.shared.vision.allSatisfy { $0.count == 0 } && leanSide.shared.language.allSatisfy { $0.count == 0 })
    let fullParts = Dictionary(uniqueKeysWithValues: try a.loss.parts.map { ($0.name, try $0.value.item() as Double) })
    let leanParts = Dictionary(uniqueKeysWithValues: try b.loss.parts.map { ($0.name, try $0.value.item() as Double) })
    #expect(leanParts.keys.allSatisfy { !$0.hasPrefix("pyramid") && !$0.hasPrefix("layer_relation") })
    for (name, value) in leanParts { #expect(fullParts[name] == value, "\(name): \(value) lean, \(fullParts[name] ?? .nan) full") }
    try b.total.backward()
    for (key, p) in try #require(head.bridge).namedParameters() { #expect(try p.grad == nil, "bridge \(key) got a gradient") }
    for (key, p) in head.pyramid.namedParameters() { #expect(try p.grad != nil, "adapter \(key) got no gradient") }
    // The method builds no bridges when no term reads the shared space, and a step that needs
    // them from such a head says so.
    var methodConfig = MethodConfig(name: "cmapkd")
    methodConfig.cmapkd.selection = .uniform
    let method = try #require(
      try Methods.make(methodConfig, context: cmapkdContext(student: student.config, teacher: teacher)) as? CMAPKDMethod)
    #expect(method.cmapkdHead.bridge == nil)
    #expect(!method.cmapkdHead.stateDict().contains { $0.0.hasPrefix("bridge.") })
    let needsBridges = try fittedCMAPKD(everyTerm(.uniform), teacher: teacher)
    #expect(throws: PyramidError.self) {
      try needsBridges.step(
        student: student, head: method.cmapkdHead, teacher: features, pixels: batch.pixels, ids: batch.ids,
        attentionMask: batch.mask, stage: .fine)
    }
  }
}

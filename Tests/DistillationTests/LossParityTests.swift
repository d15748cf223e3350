import Foundation
import Distillation
import Models
import Pyramid
import TestSupport
import Testing
import Torch

/// Checks each part against the reference and each student input's gradient.
func expectParts(_ parts: LossParts, _ fx: [String: Tensor], prefix: String, inputs: [String: Tensor]) throws {
  let names = fx.keys.filter {
    $0.hasPrefix("\(prefix)/") && !$0.contains("/grad/") && fx["\(prefix)/grad/\($0.dropFirst(prefix.count + 1))"] == nil
  }
  var checked = 0
  for (name, value) in parts.parts {
    guard let expected = fx["\(prefix)/\(name)"] else {
      Issue.record("\(prefix)/\(name): part has no reference")
      continue
    }
    let problem = try mismatch(value.reshape([]), expected.reshape([]))
    #expect(problem == nil, "\(prefix)/\(name): \(problem ?? "")")
    checked += 1
  }
  #expect(checked > 0 && checked == parts.parts.count, "\(prefix): checked \(checked) of \(names.count) reference parts")
  try #require(try parts.sum()).backward()
  for (key, input) in inputs {
    let expected = fx["\(prefix)/grad/\(key)"]!
    let grad = try input.grad ?? expected.zerosLike()
    let problem = try mismatch(grad, expected)
    #expect(problem == nil, "\(prefix) gradient of \(key): \(problem ?? "")")
  }
}

@Suite("CMAPKD losses match independent PyTorch references (parts and gradients, 1e-5)")
struct LossParityTests {
  let fx: [String: Tensor]
  init() throws { fx = try loadFixture("DistillationTests", "losses") }

  func leaf(_ key: String) throws -> Tensor { try fx[key]!.clone().requiresGrad(true) }

  @Test func intraVision() throws {
    let s = try ["P2", "P3", "P4", "P5"].map { try leaf("sv/\($0)") }
    let t = ["P2", "P3", "P4", "P5"].map { fx["tv/\($0)"]! }
    let parts = try Losses.intraVision(
      student: VisionLevels(maps: Array(s[0..<3]), global: s[3]), teacher: VisionLevels(maps: Array(t[0..<3]), global: t[3]),
      weights: fx["wv"]!, active: [.middle, .deep, .global])
    try expectParts(parts, fx, prefix: "intra_v", inputs: ["P2": s[0], "P3": s[1], "P4": s[2], "P5": s[3]])
  }

  @Test func intraLanguage() throws {
    let s = try ["L1", "L2", "L3", "L4"].map { try leaf("sl/\($0)") }
    let t = ["L1", "L2", "L3", "L4"].map { fx["tl/\($0)"]! }
    let mask = fx["mask"]!, phraseMask = fx["phrase_mask"]!
    func levels(_ x: [Tensor]) -> LanguageLevels {
      LanguageLevels(tokens: x[0], tokenMask: mask, phrases: x[1], phraseMask: phraseMask, sentence: x[2], global: x[3])
    }
    let parts = try Losses.intraLanguage(student: levels(s), teacher: levels(t), weights: fx["wl"]!, active: Set(Level.allCases))
    try expectParts(parts, fx, prefix: "intra_l", inputs: ["L1": s[0], "L2": s[1], "L3": s[2], "L4": s[3]])
  }

  @Test func alignment() throws {
    let (si, st) = (try leaf("align/s_img"), try leaf("align/s_txt"))
    let parts = try Losses.alignment(
      studentImage: si, studentText: st, teacherImage: fx["align/t_img"]!, teacherText: fx["align/t_txt"]!)
    try expectParts(parts, fx, prefix: "align", inputs: ["s_img": si, "s_txt": st])
  }

  @Test func pyramidAlignment() throws {
    let sv = try (0..<4).map { try leaf("pyr/sv\($0)") }, sl = try (0..<4).map { try leaf("pyr/sl\($0)") }
    let tv = (0..<4).map { fx["pyr/tv\($0)"]! }, tl = (0..<4).map { fx["pyr/tl\($0)"]! }
    let parts = try Losses.pyramidAlignment(
      student: (sv, sl), teacher: (tv, tl), coupling: fx["pyr/alpha"]!, activeVision: [.deep, .global],
      activeLanguage: [.middle, .deep, .global])
    var inputs: [String: Tensor] = [:]
    for i in 0..<4 { inputs["sv\(i)"] = sv[i]; inputs["sl\(i)"] = sl[i] }
    try expectParts(parts, fx, prefix: "pyr", inputs: inputs)
  }

  @Test func sampleRelation() throws {
    let (si, st) = (try leaf("rel/s_img"), try leaf("rel/s_txt"))
    let parts = try Losses.sampleRelation(student: [si, st], teacher: [fx["rel/t_img"]!, fx["rel/t_txt"]!])
    try expectParts(parts, fx, prefix: "rel", inputs: ["s_img": si, "s_txt": st])
  }

  @Test func layerRelation() throws {
    let sv = try (0..<4).map { try leaf("lrel/sv\($0)") }, sl = try (0..<4).map { try leaf("lrel/sl\($0)") }
    let parts = try Losses.layerRelation(
      student: [sv, sl], teacher: [(0..<4).map { fx["lrel/tv\($0)"]! }, (0..<4).map { fx["lrel/tl\($0)"]! }])
    var inputs: [String: Tensor] = [:]
    for i in 0..<4 { inputs["sv\(i)"] = sv[i]; inputs["sl\(i)"] = sl[i] }
    try expectParts(parts, fx, prefix: "lrel", inputs: inputs)
  }

  @Test func clipTask() throws {
    let (img, txt, scale) = (try leaf("clip/img"), try leaf("clip/txt"), try leaf("clip/scale"))
    var parts = LossParts()
    parts.add("loss", try Losses.clip(images: img, texts: txt, logitScale: scale))
    try expectParts(parts, fx, prefix: "clip", inputs: ["img": img, "txt": txt, "scale": scale])
  }
}

@Suite("NegCLIP's loss: hard-negative captions as extra image→text candidates")
struct NegCLIPLossTests {
  /// Cross-entropy of row `row` of `logits` with target `target`, in Double.
  static func crossEntropy(_ logits: [Double], _ target: Int) -> Double {
    let m = logits.max()!
    return m + log(logits.map { exp($0 - m) }.reduce(0, +)) - logits[target]
  }

  @Test("value by hand (plain Swift arithmetic) and a gradient that reaches the negatives")
  func byHand() throws {
    try Torch.manualSeed(11)
    let (b, m, p) = (4, 3, 5)
    let images = try Tensor.randn([b, p]).requiresGrad(true)
    let texts = try Tensor.randn([b, p]).requiresGrad(true)
    let negatives = try Tensor.randn([m, p]).requiresGrad(true)
    let scale = try Tensor([Float(1.3)]).reshape([]).requiresGrad(true)
    let loss = try Losses.clip(images: images, texts: texts, negatives: negatives, logitScale: scale)

    func rows(_ t: Tensor) throws -> [[Double]] {
      let v = try t.detach().toArray(Float.self).map(Double.init)
      return (0..<t.size(0)).map { i in
        let r = Array(v[i * p..<(i + 1) * p])
        let n = r.map { $0 * $0 }.reduce(0, +).squareRoot()
        return r.map { $0 / n }
      }
    }
    let (i, t, n) = (try rows(images), try rows(texts), try rows(negatives))
    func dot(_ a: [Double], _ c: [Double]) -> Double { zip(a, c).map(*).reduce(0, +) }
    let s = exp(1.3)
    var imageToText = 0.0, textToImage = 0.0
    for k in 0..<b {
      imageToText += Self.crossEntropy((t + n).map { s * dot(i[k], $0) }, k)
      textToImage += Self.crossEntropy(i.map { s * dot(t[k], $0) }, k)
    }
    let expected = (imageToText + textToImage) / Double(2 * b)
    let value = Double(try loss.item())
    #expect(abs(value - expected) < 1e-5, "\(value) vs \(expected)")

    // Negatives only push: without them the loss is lower, and they get a gradient.
    let plain = try Losses.clip(images: images, texts: texts, logitScale: scale)
    #expect(try plain.item() < loss.item())
    try loss.backward()
    #expect(try negatives.grad!.abs().sum().item() > 0)
  }
}

@Suite("CMAPKD's affinity term: the global pyramid-alignment pair on the deployed embeddings")
struct DeployedAffinityTests {
  /// KL(softmax(t) ‖ softmax(s)) of one row, in Double.
  static func rowKL(teacher t: [Double], student s: [Double]) -> Double {
    func logSoftmax(_ x: [Double]) -> [Double] {
      let m = x.max()!
      let z = m + log(x.map { exp($0 - m) }.reduce(0, +))
      return x.map { $0 - z }
    }
    let (lp, lq) = (logSoftmax(t), logSoftmax(s))
    return zip(lp, lq).map { exp($0) * ($0 - $1) }.reduce(0, +)
  }

  @Test("value by hand (plain Swift arithmetic), zero when the student is the teacher, gradient only to the student")
  func byHand() throws {
    try Torch.manualSeed(12)
    let (b, p, q) = (5, 4, 6)  // the student's joint width differs from the teacher's
    let studentImage = try Tensor.randn([b, p]).requiresGrad(true)
    let studentText = try Tensor.randn([b, p]).requiresGrad(true)
    let teacherImage = try Tensor.randn([b, q]).requiresGrad(true)
    let teacherText = try Tensor.randn([b, q])
    let scale = try Tensor([Float(2.5)]).reshape([]).requiresGrad(true)
    let parts = try Losses.deployedAffinity(
      studentImage: studentImage, studentText: studentText, studentScale: scale, teacherImage: teacherImage,
      teacherText: teacherText, teacherScale: 14.0)
    #expect(parts.parts.map(\.name) == ["i2t", "t2i"])

    func unitRows(_ t: Tensor) throws -> [[Double]] {
      let w = t.size(1)
      let v = try t.detach().toArray(Float.self).map(Double.init)
      return (0..<t.size(0)).map { i in
        let r = Array(v[i * w..<(i + 1) * w])
        let n = r.map { $0 * $0 }.reduce(0, +).squareRoot()
        return r.map { $0 / n }
      }
    }
    func dot(_ a: [Double], _ c: [Double]) -> Double { zip(a, c).map(*).reduce(0, +) }
    let (si, st, ti, tt) = (try unitRows(studentImage), try unitRows(studentText), try unitRows(teacherImage), try unitRows(teacherText))
    var i2t = 0.0, t2i = 0.0
    for k in 0..<b {
      i2t += Self.rowKL(teacher: tt.map { 14 * dot(ti[k], $0) }, student: st.map { 2.5 * dot(si[k], $0) })
      t2i += Self.rowKL(teacher: ti.map { 14 * dot(tt[k], $0) }, student: si.map { 2.5 * dot(st[k], $0) })
    }
    let expected = [0.5 * i2t / Double(b), 0.5 * t2i / Double(b)]
    for (part, e) in zip(parts.parts, expected) {
      let (name, v): (String, Double) = (part.name, try part.value.item())
      #expect(abs(v - e) < 1e-5, "\(name): \(v) vs \(e)")
    }

    let total = try parts.sum()!
    try total.backward()
    #expect(try studentImage.grad!.abs().sum().item() as Double > 0)
    #expect(try scale.grad!.abs().item() as Double > 0)
    #expect(try teacherImage.grad == nil, "the teacher's side is a constant")

    // The student that is the teacher (same vectors, same scale) has nothing left to learn.
    let same = try Losses.deployedAffinity(
      studentImage: teacherImage.detach(), studentText: teacherText, studentScale: Tensor([Float(14)]).reshape([]),
      teacherImage: teacherImage, teacherText: teacherText, teacherScale: 14.0)
    let sameValue: Double = try same.sum()!.item()
    #expect(abs(sameValue) < 1e-6)
  }

  @Test("λ_affinity adds the term to CMAPKD's loss at the teacher's own logit scale; the method reads the scale from the teacher")
  func inCMAPKD() throws {
    let (teacher, student, head) = try smallTeacherStudent(seed: 13)
    let batch = try smallBatch()
    var methodConfig = MethodConfig(name: "cmapkd")
    methodConfig.cmapkd.selection = .uniform
    methodConfig.cmapkd.lambdas = try onlyLambdas(["affinity": 2])
    let method = try #require(
      try Methods.make(methodConfig, context: cmapkdContext(student: student.config, teacher: teacher)) as? CMAPKDMethod)
    let teacherScale: Double = try teacher.logitScale.exp().item()
    let read = try #require(method.method.teacherLogitScale)
    #expect(abs(read - teacherScale) < 1e-6)

    let features = try TeacherFeatures.compute(
      teacher: teacher, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask, pyramid: methodConfig.cmapkd.pyramid)
    let step = try method.method.step(
      student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask,
      stage: .fine)
    #expect(step.loss.parts.map(\.name) == ["affinity/i2t", "affinity/t2i"])
    let image = try student.encodeImage(batch.pixels, normalize: true)
    let text = try student.encodeText(batch.ids, attentionMask: batch.mask, normalize: true)
    let expected: Double = try Losses.deployedAffinity(
      studentImage: image, studentText: text, studentScale: student.logitScale.exp(), teacherImage: features.imageEmbedding,
      teacherText: features.textEmbedding, teacherScale: teacherScale
    ).sum()!.item()
    let total: Double = try step.total.item()
    #expect(abs(total - 2 * expected) < 1e-5, "\(total) vs 2 × \(expected)")

    // Built by hand without the teacher's scale, the term says what it needs.
    #expect(throws: PyramidError.self) {
      try CMAPKD(methodConfig.cmapkd).step(
        student: student, head: head, teacher: features, pixels: batch.pixels, ids: batch.ids, attentionMask: batch.mask,
        stage: .fine)
    }
  }
}

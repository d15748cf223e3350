import Distillation
import Foundation
import Models
import TestSupport
import Testing
import Torch
import TorchNN

@Suite("iva: caption-conditioned patch relevance, weighted regression, relevance KL, layer choice")
struct IVATests {
  let fx: [String: Tensor]
  init() throws { fx = try loadFixture("DistillationTests", "iva") }

  func input(_ name: String) throws -> Tensor { try #require(fx["iva/in/\(name)"], "iva/in/\(name) missing") }

  /// A tower's post-norm and projection holding the fixture's weights.
  func tower(_ prefix: String, width: Int) throws -> (LayerNorm, Linear) {
    let norm = try LayerNorm(width)
    _ = try norm.loadStateDict(["weight": input("\(prefix)_ln_w"), "bias": input("\(prefix)_ln_b")])
    let projection = try Linear(width, try input("\(prefix)_proj").size(0), bias: false)
    _ = try projection.loadStateDict(["weight": input("\(prefix)_proj")])
    return (norm, projection)
  }

  @Test("relevance, regression and KL match a PyTorch functional reference (values and gradients)")
  func parts() throws {
    let (tNorm, tProjection) = try tower("t", width: try input("t_maps").size(1))
    let teacherLog = try IVAMethod.logRelevance(
      maps: input("t_maps"), text: input("t_text"), norm: tNorm, projection: tProjection, temperature: 0.05)
    #expect(try mismatch(teacherLog, #require(fx["iva/teacher_log_relevance"])) == nil)

    let (sNorm, sProjection) = try tower("s", width: try input("s_maps").size(1))
    let regressor = try Conv2d(try input("s_maps").size(1), try input("t_maps").size(1), kernel: (1, 1))
    _ = try regressor.loadStateDict(["weight": input("r_w"), "bias": input("r_b")])
    let maps = try input("s_maps").clone().requiresGrad(true)
    let text = try input("s_text").clone().requiresGrad(true)
    let (regression, relevance) = try IVAMethod.parts(
      student: maps, studentText: text, studentNorm: sNorm, studentProjection: sProjection, teacher: input("t_maps"),
      teacherLogRelevance: teacherLog, regressor: regressor, temperature: 0.05)
    var parts = LossParts()
    parts.add("regression", regression)
    parts.add("relevance", relevance)
    try expectParts(
      parts, fx, prefix: "iva",
      inputs: ["s_maps": maps, "s_text": text, "s_proj": sProjection.weight, "r_w": regressor.weight, "r_b": regressor.bias!])
  }

  @Test("the layer score is the mean total variation between two captions' relevance maps")
  func layerScore() throws {
    let (norm, projection) = try tower("t", width: try input("t_maps").size(1))
    let r = try ["t_text", "t_text2"].map {
      try IVAMethod.logRelevance(maps: input("t_maps"), text: input($0), norm: norm, projection: projection, temperature: 0.05).exp()
    }
    let score = try ((r[0] - r[1]).abs().sum(dim: 1) * 0.5).mean().item()
    #expect(abs(score - (try #require(fx["iva/layer_score"]).item())) < 1e-5)
  }

  @Test("auto layer: the tap whose relevance the caption moves most; a fixed layer is kept; bad settings are named")
  func layerChoice() throws {
    try Torch.manualSeed(3)
    let teacher = try CLIPModel(baselineTeacherConfig())
    try teacher.initializeForTraining()
    let (pixels, ids, mask) = try baselineBatch()
    // The second caption of each image: the batch's captions shifted by one row.
    func shifted(_ t: Tensor) throws -> Tensor {
      try Tensor.cat([t.narrow(dim: 0, start: 1, length: t.size(0) - 1), t.narrow(dim: 0, start: 0, length: 1)])
    }
    let probe = CaptionProbe(pixels: pixels, captions: [(ids, mask), (try shifted(ids), try shifted(mask))])
    let context = MethodContext(student: baselineStudentConfig(), teacher: teacher, captionProbe: probe)
    let method = try IVAMethod(config: IVAConfig(), context: context)
    let scores = try #require(method.layerScores)
    #expect(scores.count == 3 && scores.allSatisfy { $0 > 0 && $0 <= 1 }, "\(scores)")
    #expect(method.layer == scores.indices.max { scores[$0] < scores[$1] }!)
    // The same scores computed here from the layer-score rule.
    let expected = try IVAMethod.layerScores(teacher: teacher, probe: probe, pyramid: context.pyramid, temperature: 0.05)
    #expect(expected == scores)

    var fixed = IVAConfig()
    fixed.layer = 0
    #expect(try IVAMethod(config: fixed, context: context).layer == 0)
    fixed.layer = 3
    #expect { try IVAMethod(config: fixed, context: context) } throws: { "\($0)".contains("iva: layer is 3") }
  }
}

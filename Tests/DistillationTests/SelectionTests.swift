import Distillation
import Foundation
import Pyramid
import TestSupport
import Testing
import Torch

@Suite("ALSN, fixed weights and the progressive schedule")
struct SelectionTests {
  @Test("ALSN weights: rows sum to 1 over active levels, exactly 0 elsewhere; coupling over active pairs")
  func alsnNormalization() throws {
    let alsn = try ALSN(featureWidth: 8)
    let w = try alsn(
      image: Tensor.randn([5, 8]), text: Tensor.randn([5, 8]), activeVision: [.deep, .global], activeLanguage: [.global])
    #expect(w.vision.shape == [5, 4] && w.language.shape == [5, 4] && w.coupling.shape == [5, 4, 4])
    let v = try w.vision.doubles(), l = try w.language.doubles(), c = try w.coupling.doubles()
    for b in 0..<5 {
      #expect(v[4 * b] == 0 && v[4 * b + 1] == 0 && Swift.abs(v[4 * b + 2] + v[4 * b + 3] - 1) < 1e-6)
      #expect(l[4 * b + 3] == 1)
      let row = Array(c[16 * b..<16 * (b + 1)])
      #expect(Swift.abs(row[11] + row[15] - 1) < 1e-6)  // (P4, L4) and (P5, L4)
      #expect(row.enumerated().allSatisfy { [11, 15].contains($0.offset) || $0.element == 0 })
    }
  }

  @Test("the ALSN learns through its weights but never pushes gradients into the features it reads")
  func alsnGradients() throws {
    let alsn = try ALSN(featureWidth: 8)
    let image = try Tensor.randn([4, 8]).requiresGrad(true)
    let text = try Tensor.randn([4, 8]).requiresGrad(true)
    let w = try alsn(image: image, text: text, activeVision: Set(Level.allCases), activeLanguage: Set(Level.allCases))
    let target = try Tensor([0.7, 0.1, 0.1, 0.1] as [Float], shape: [1, 4])
    try ((w.vision - target).square().sum() + w.coupling.square().sum() + w.language.sum()).backward()
    #expect(try image.grad == nil && text.grad == nil)
    for (key, p) in alsn.namedParameters() where key != "language_head.weight" && key != "language_head.bias" {
      #expect(try p.grad != nil, "\(key) got no gradient")
    }
  }

  @Test("policy actions become weights in proportion over active levels; the head layout splits back")
  func proportionalWeights() throws {
    let actions = try Tensor((0..<48).map { Float(1 + $0 % 7) / 8 }, shape: [2, 24])
    let w = try LevelWeights.proportional(actions: actions, activeVision: [.deep, .global], activeLanguage: [.global])
    let a = try actions.doubles(), v = try w.vision.doubles(), l = try w.language.doubles(), c = try w.coupling.doubles()
    for b in 0..<2 {
      let row = Array(a[24 * b..<24 * (b + 1)])
      #expect(v[4 * b] == 0 && v[4 * b + 1] == 0)
      #expect(
        Swift.abs(v[4 * b + 2] - row[2] / (row[2] + row[3])) < 1e-6 && Swift.abs(v[4 * b + 3] - row[3] / (row[2] + row[3])) < 1e-6
      )
      #expect(l[4 * b + 3] == 1 && l[4 * b] == 0)
      // Active pairs (P4, L4) and (P5, L4): coupling actions 8 + 11 and 8 + 15.
      let pairs = Array(c[16 * b..<16 * (b + 1)])
      #expect(Swift.abs(pairs[11] - row[19] / (row[19] + row[23])) < 1e-6 && Swift.abs(pairs[11] + pairs[15] - 1) < 1e-6)
    }
    let mask = try ALSN.activeMask(activeVision: [.deep, .global], activeLanguage: [.global], like: actions).doubles()
    #expect(mask == [0, 0, 1, 1, 0, 0, 0, 1] + (0..<16).map { [11, 15].contains($0) ? 1 : 0 })
    // The differentiable entropy agrees with the logged one.
    #expect(Swift.abs(try LevelWeights.meanEntropy(w.coupling).item() - w.entropies().coupling) < 1e-9)
  }

  @Test("uniform weights have entropy ln(active); manual weights renormalize over active levels")
  func fixedWeights() throws {
    let uniform = try FixedWeights.make(batch: 3, activeVision: Set(Level.allCases), activeLanguage: [.deep, .global])
    let h = try uniform.entropies()
    #expect(Swift.abs(h.vision - log(4)) < 1e-6 && Swift.abs(h.language - log(2)) < 1e-6 && Swift.abs(h.coupling - log(8)) < 1e-5)
    let manual = try FixedWeights.make(
      batch: 2, vision: [4, 3, 2, 1], activeVision: [.middle, .deep, .global], activeLanguage: [.global])
    #expect(try manual.vision.doubles().prefix(4).map { ($0 * 1e6).rounded() / 1e6 } == [0, 0.5, 0.333333, 0.166667])
    #expect(throws: PyramidError.self) {
      try FixedWeights.make(batch: 1, vision: [1, 0, 0, 0], activeVision: [.global], activeLanguage: [.global])
    }
  }

  @Test("progressive stages follow the configured epochs; one-stage trains every level throughout")
  func schedule() {
    let s = ProgressiveSchedule(coarseEpochs: 5, mediumEpochs: 5, fineEpochs: 10, refinementEpochs: 2)
    #expect(
      (0..<22).map { s.stage(atEpoch: $0) } == Array(repeating: .coarse, count: 5) + Array(repeating: .medium, count: 5)
        + Array(repeating: .fine, count: 10) + [.refinement, .refinement])
    #expect(s.stage(atEpoch: 40) == .refinement)
    #expect(s.stage(atProgress: 0.5) == .fine)
    #expect(Stage.coarse.activeLevels == [.global] && Stage.medium.activeLevels == [.deep, .global])
    let oneStage = ProgressiveSchedule(progressive: false)
    #expect(oneStage.stage(atEpoch: 0) == .fine)
  }
}

import Evaluation
import TestSupport
import Testing
import Torch

@Suite("Zero-shot classification and hard-negative accuracy")
struct ZeroShotAndHardNegativeTests {
  @Test("class embedding is the normalized mean of normalized template embeddings")
  func classEmbeddings() throws {
    // Class 0: [3, 0] and [0, 1] → unit [1, 0], [0, 1] → mean [.5, .5] → [1/√2, 1/√2]
    // (averaging before normalizing would give [3, 1]/√10 instead). Class 1: → [0, −1].
    let prompts = try Tensor([3, 0, 0, 1, 0, -2, 0, -5] as [Float], shape: [2, 2, 2])
    let classes = try ZeroShot.classEmbeddings(prompts)
    let r = Float(1 / 2.0.squareRoot())
    #expect(try mismatch(classes, Tensor([r, r, 0, -1] as [Float], shape: [2, 2])) == nil)
    #expect(throws: EvaluationError.self) { try ZeroShot.classEmbeddings(Tensor.zeros([2, 2])) }
  }

  @Test("top-1 and top-5 by hand, a tie counted against the image")
  func topK() throws {
    // 3 images, 6 classes.
    let scores = try SimilarityMatrix([
      [0.9, 0.1, 0.2, 0.3, 0.4, 0.5],  // label 0: first → top-1 and top-5
      [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],  // label 5: five classes above → neither
      [0.2, 0.7, 0.7, 0.1, 0.1, 0.1],  // label 2: tied with class 1 → rank 1: top-5 only
    ])
    let result = try ZeroShot.evaluate(scores, labels: [0, 5, 2])
    #expect(result == ZeroShotResult(top1: 1.0 / 3, top5: 2.0 / 3, images: 3, classes: 6))
    #expect(throws: EvaluationError.self) { try ZeroShot.evaluate(scores, labels: [0, 6, 1]) }
    #expect(throws: EvaluationError.self) { try ZeroShot.evaluate(scores, labels: [0]) }
  }

  @Test("prompt templates fill the class name and its article")
  func prompts() {
    let templates = PromptTemplates(["{a} {}", "a picture of {a} {}", "{}"])
    #expect(templates.prompts(for: "orange circle") == ["an orange circle", "a picture of an orange circle", "orange circle"])
    #expect(templates.prompts(for: "red star") == ["a red star", "a picture of a red star", "red star"])
  }

  @Test("hard negatives: pairwise, per kind and all-negatives accuracy by hand")
  func hardNegatives() {
    let result = HardNegativeAccuracy.evaluate([
      HardNegativeTrial(kind: "binding", caption: 0, positive: 0.8, negative: 0.6),  // pass
      HardNegativeTrial(kind: "relation", caption: 0, positive: 0.8, negative: 0.9),  // fail
      HardNegativeTrial(kind: "attribute", caption: 1, positive: 0.5, negative: 0.5),  // tie: fail
      HardNegativeTrial(kind: "binding", caption: 1, positive: 0.5, negative: 0.1),  // pass
      HardNegativeTrial(kind: "attribute", caption: 2, positive: 0.7, negative: 0.2),  // pass
      HardNegativeTrial(kind: "relation", caption: 3, positive: .nan, negative: 0.2),  // NaN: fail
    ])
    #expect(result.pairwise == Accuracy(passed: 3, of: 6))
    #expect(
      result.byKind == [
        "binding": Accuracy(passed: 2, of: 2), "relation": Accuracy(passed: 0, of: 2), "attribute": Accuracy(passed: 1, of: 2),
      ])
    // Caption 0 lost one, caption 1 tied one, caption 3 is NaN: only caption 2 beat all of its negatives.
    #expect(result.allNegatives == Accuracy(passed: 1, of: 4))
    #expect(HardNegativeAccuracy.evaluate([]).pairwise == Accuracy(passed: 0, of: 0))
  }
}

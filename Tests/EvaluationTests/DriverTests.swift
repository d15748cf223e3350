import Data
import Evaluation
import Foundation
import Models
import TestSupport
import Testing
import Tokenizers
import Torch

/// The open_clip tokenizer from the wheel the engine bootstrap installs.
func clipTokenizer(contextLength: Int = 77) throws -> CLIPTokenizer {
  try CLIPTokenizer(
    openCLIPVocabularyAt: "\(sitePackages())/open_clip/bpe_simple_vocab_16e6.txt.gz", contextLength: contextLength)
}

/// A small scenes benchmark at the tiny preset's 32 px.
func smallScenes(test: Int = 48, zeroShot: Int = 40) -> ScenesConfig {
  var config = ScenesConfig(seed: 3, imageSize: 32)
  config.test = .evaluation(count: test)
  config.zeroShotCount = zeroShot
  return config
}

@Suite("The evaluation driver on a tiny model", .serialized)
struct DriverTests {
  @Test("full evaluation of a small scenes split: in [0, 1], chance level, in seconds")
  func smoke() throws {
    try Torch.manualSeed(0)
    let model = try CLIPModel(Presets.tiny)
    model.train()
    model.textModel.eval()  // a submodule in its own mode must stay so
    let config = smallScenes()
    let evaluator = try Evaluator(model: model, tokenizer: clipTokenizer(), options: EvaluationOptions(batchSize: 32))
    let clock = ContinuousClock()
    let start = clock.now
    let result = try evaluator.evaluate(scenes: ScenesDataset(config, split: .test), zeroShot: ZeroShotScenes(config))
    let elapsed = clock.now - start
    print("tiny-model evaluation of \(config.test.count) images + \(config.zeroShotCount) zero-shot images: \(elapsed)")
    // Typically 1–2 s; the bound leaves room for a machine shared with other builds.
    #expect(elapsed < .seconds(20))
    #expect(model.isTraining && model.visionModel.isTraining && !model.textModel.isTraining)

    let retrieval = try #require(result.retrieval)
    #expect(retrieval.images == 48 && retrieval.captions == 48 * 5)
    let hard = try #require(result.hardNegatives)
    let zeroShot = try #require(result.zeroShot)
    #expect(zeroShot.images == 40 && zeroShot.classes == ZeroShotScenes.classNames.count)
    #expect(Set(hard.byKind.keys).isSubset(of: HardNegative.Kind.allCases.map(\.rawValue)))
    #expect(hard.pairwise.count == hard.byKind.values.reduce(0) { $0 + $1.count } && hard.pairwise.count > 48)
    for (name, value) in result.qualityMetrics { #expect((0...1).contains(value), "\(name) = \(value)") }

    // An untrained model is at chance: caption→image R@10 is 10/48 in expectation, image→
    // caption R@10 about 0.19, zero-shot top-5 5/80, hard negatives 0.5. Wide bands (48
    // queries), but a wiring bug that leaks the answer (say, scoring each image only against
    // its own captions) lands far outside them.
    #expect(retrieval.textToImage.r10 < 0.5 && retrieval.imageToText.r10 < 0.5)
    #expect(retrieval.textToImage.r1 < 0.25 && retrieval.imageToText.r1 < 0.25)
    #expect(zeroShot.top5 < 0.3)
    #expect(hard.pairwise.accuracy > 0.2 && hard.pairwise.accuracy < 0.8)
    #expect(hard.allNegatives.accuracy <= hard.pairwise.accuracy)
  }

  @Test("embeddings equal the model run image by image and at the full context with a padding mask")
  func embeddingsMatchDirectPath() throws {
    let model = try CLIPModel(Presets.tiny)
    let tokenizer = try clipTokenizer()
    let dataset = try ScenesDataset(smallScenes(test: 12), split: .test)
    let embedder = try Embedder(model: model, tokenizer: tokenizer, batchSize: 5)
    let (images, indices) = try embedder.embedImages(dataset)
    #expect(indices == Array(0..<12) && images.shape == [12, 32])

    let captions = (0..<12).flatMap { dataset.captions(at: $0) }
    let texts = try embedder.embedTexts(captions)
    #expect(!texts.requiresGrad)

    model.eval()
    try Torch.noGrad {
      let preprocessor = try ImagePreprocessor(PreprocessConfig(imageSize: 32))
      let pixels = try Tensor.stack((0..<12).map { try preprocessor.tensor(preprocessor.evaluationImage(dataset.image(at: $0))) })
      #expect(try mismatch(images, model.encodeImage(pixels, normalize: true), rtol: 1e-4, atol: 1e-5) == nil)
      // The training path: every caption padded to 77 tokens, padding masked.
      let batch = try tokenizer.encodeBatch(captions)
      let ids = try Tensor(batch.ids, shape: [batch.count, batch.contextLength])
      let mask = try Tensor(batch.attentionMask, shape: [batch.count, batch.contextLength])
      #expect(try mismatch(texts, model.encodeText(ids, attentionMask: mask, normalize: true), rtol: 1e-4, atol: 1e-5) == nil)
    }
  }

  @Test(
    "retrieval and hard negatives through the driver equal the pure functions on independently kept books; maxImages takes a prefix"
  )
  func driverMatchesPureFunction() throws {
    let model = try CLIPModel(Presets.tiny)
    let tokenizer = try clipTokenizer()
    let dataset = try ScenesDataset(smallScenes(test: 24), split: .test)
    let evaluator = try Evaluator(model: model, tokenizer: tokenizer, options: EvaluationOptions(batchSize: 8, maxImages: 16))
    let (retrieval, hard, contrastSets) = try evaluator.scenes(dataset)
    #expect(retrieval.images == 16 && retrieval.captions == 80)
    #expect(try evaluator.retrieval(dataset) == retrieval)

    // The same embeddings (same batches, so the same floats), bookkept independently.
    let embedder = try Embedder(model: model, tokenizer: tokenizer, batchSize: 8)
    let images = try embedder.embedImages(dataset).embeddings.narrow(dim: 0, start: 0, length: 16)  // [16, P]
    let samples = (0..<16).map { dataset.sample(at: $0) }
    let captions = samples.flatMap { $0.captions.map(\.text) }
    let mapping = samples.indices.flatMap { i in Array(repeating: i, count: samples[i].captions.count) }
    let similarities = try SimilarityMatrix(images.matmul(embedder.embedTexts(captions).transpose(0, 1)))
    #expect(try Retrieval.evaluate(similarities, captionToImage: mapping) == retrieval)
    #expect(
      try contrastSets
        == ContrastSetRetrieval.evaluate(similarities, captionToImage: mapping, setOfImage: samples.map(\.contrastSet)))

    let negatives = samples.flatMap(\.hardNegatives)
    let negativeEmbeddings = try embedder.embedTexts(negatives.map(\.text))  // [M, P]
    var trials: [HardNegativeTrial] = []
    var m = 0
    for (i, sample) in samples.enumerated() {
      let column = mapping.firstIndex(of: i)!  // this image's first caption
      for negative in sample.hardNegatives {
        let score = try (images.select(dim: 0, index: i) * negativeEmbeddings.select(dim: 0, index: m)).sum().item()
        trials.append(
          HardNegativeTrial(
            kind: negative.kind.rawValue, caption: column + negative.captionIndex,
            positive: similarities[i, column + negative.captionIndex], negative: Float(score)))
        m += 1
      }
    }
    let expected = HardNegativeAccuracy.evaluate(trials)
    #expect(hard?.pairwise.count == negatives.count && hard?.allNegatives.count == 80)
    #expect(hard?.byKind.mapValues(\.count) == expected.byKind.mapValues(\.count))
    // Scores summed in another order may differ in the last bit; allow one near-tie to flip.
    let flips = abs((hard?.pairwise.accuracy ?? 0) - expected.pairwise.accuracy) * Double(negatives.count)
    #expect(flips < 1.5, "driver \(String(describing: hard?.pairwise)) vs reference \(expected.pairwise)")
  }

  @Test("a tokenizer longer than the text tower is refused with what to do")
  func contextLengthChecked() throws {
    let error = #expect(throws: EvaluationError.self) {
      try Evaluator(model: CLIPModel(Presets.sceneStudent), tokenizer: clipTokenizer(contextLength: 77))
    }
    #expect(error?.description.contains("contextLength: 32") == true)
  }

  @Test("results encode as JSON with snake_case keys and decode back; efficacy is a percentage")
  func jsonAndEfficacy() throws {
    let retrieval = RetrievalResult(
      imageToText: RecallAtK(r1: 0.5, r5: 0.8, r10: 0.9), textToImage: RecallAtK(r1: 0.4, r5: 0.7, r10: 0.8), images: 10,
      captions: 50)
    let hard = HardNegativeAccuracy.evaluate([HardNegativeTrial(kind: "binding", caption: 0, positive: 1, negative: 0)])
    let student = EvaluationResult(
      retrieval: retrieval, hardNegatives: hard, zeroShot: ZeroShotResult(top1: 0.3, top5: 0.6, images: 10, classes: 80))
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    let json = String(decoding: try encoder.encode(student), as: UTF8.self)
    for key in [
      "\"hard_negatives\"", "\"zero_shot\"", "\"image_to_text\"", "\"text_to_image\"", "\"mean_recall\"", "\"by_kind\"",
      "\"all_negatives\"",
    ] {
      #expect(json.contains(key), "\(key) in \(json)")
    }
    #expect(!json.contains("efficiency"), "a part not run is left out")
    #expect(try JSONDecoder().decode(EvaluationResult.self, from: Data(json.utf8)) == student)

    var teacher = student
    teacher.retrieval!.imageToText.r1 = 0.8
    teacher.zeroShot!.top1 = 0
    let efficacy = student.efficacy(relativeTo: teacher)
    #expect(efficacy["retrieval.image_to_text.r1"] == 62.5)
    #expect(efficacy["retrieval.text_to_image.r1"] == 100)
    #expect(efficacy["zero_shot.top1"] == nil, "a teacher at 0 gives no ratio")
    #expect(Efficacy.percent(student: 0.26, teacher: 0.52) == 50)
    #expect(Efficacy.percent(student: 0.3, teacher: 0) == nil)
  }

  @Test(
    "timing: the 1k-image scenes test split with the scene student (set CMAPKD_EVAL_TIMING=1)",
    .enabled(if: ProcessInfo.processInfo.environment["CMAPKD_EVAL_TIMING"] != nil))
  func sceneStudentTiming() throws {
    let model = try CLIPModel(Presets.sceneStudent)
    let config = ScenesConfig()
    let evaluator = try Evaluator(model: model, tokenizer: clipTokenizer(contextLength: 32))
    let clock = ContinuousClock()
    let start = clock.now
    let result = try evaluator.evaluate(scenes: ScenesDataset(config, split: .test), zeroShot: ZeroShotScenes(config))
    let elapsed = clock.now - start
    print("scene-student evaluation, 1000 test images + 1000 zero-shot images: \(elapsed), \(Torch.numThreads) threads")
    #expect(result.retrieval?.captions == 5000)
    #expect(elapsed < .seconds(60))
  }
}

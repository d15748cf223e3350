import Data
import Models
import Tokenizers
import Torch

/// What an evaluation covers and how it batches.
public struct EvaluationOptions: Codable, Equatable, Sendable {
  /// Images or texts per forward pass.
  public var batchSize = 256
  /// Loader threads preparing images while the model runs.
  public var numWorkers = 2
  /// Evaluate on the first N images of each split (and of the zero-shot set) only: cheap
  /// evaluation during training. nil: every image.
  public var maxImages: Int? = nil
  /// Templates for zero-shot class embeddings.
  public var prompts = PromptTemplates.scenes

  enum CodingKeys: String, CodingKey {
    case batchSize = "batch_size", numWorkers = "num_workers", maxImages = "max_images", prompts
  }

  public init(batchSize: Int = 256, numWorkers: Int = 2, maxImages: Int? = nil, prompts: PromptTemplates = .scenes) {
    self.batchSize = batchSize
    self.numWorkers = numWorkers
    self.maxImages = maxImages
    self.prompts = prompts
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = EvaluationOptions()
    batchSize = try c.decode(.batchSize, default: d.batchSize)
    numWorkers = try c.decode(.numWorkers, default: d.numWorkers)
    maxImages = try c.decodeIfPresent(Int.self, forKey: .maxImages)
    prompts = try c.decode(.prompts, default: d.prompts)
  }
}

/// Evaluates a CLIP model: retrieval on any captioned split, hard negatives and zero-shot on
/// the generated scenes.
///
/// ```swift
/// let evaluator = try Evaluator(model: student, tokenizer: tokenizer, options: EvaluationOptions(maxImages: 500))
/// let result = try evaluator.evaluate(scenes: try ScenesDataset(config, split: .test),
///                                     zeroShot: try ZeroShotScenes(config))
/// print(result.retrieval!.meanRecall, result.hardNegatives!.pairwise.accuracy)
/// ```
public final class Evaluator {
  public let embedder: Embedder
  public let options: EvaluationOptions

  public init(
    model: CLIPModel, tokenizer: any TextTokenizer, options: EvaluationOptions = EvaluationOptions(),
    preprocess: PreprocessConfig? = nil
  ) throws {
    if let n = options.maxImages, n < 1 { throw EvaluationError("evaluation: maxImages must be at least 1 (got \(n))") }
    embedder = try Embedder(
      model: model, tokenizer: tokenizer, preprocess: preprocess, batchSize: options.batchSize, numWorkers: options.numWorkers)
    self.options = options
  }

  /// Image↔text retrieval over every caption of every image of `dataset` (its first
  /// `maxImages`).
  public func retrieval(_ dataset: any ImageTextDataset) throws -> RetrievalResult {
    let split = try embed(DatasetPrefix(dataset, count: options.maxImages)) { dataset.captions(at: $0) }
    return try Retrieval.evaluate(split.similarities, captionToImage: split.captionToImage)
  }

  /// Retrieval, its contrast-set decomposition when the split is made of contrast sets, and
  /// hard negatives when the split carries them (nil otherwise), from one embedding of the split.
  public func scenes(_ dataset: ScenesDataset) throws -> (
    retrieval: RetrievalResult, hardNegatives: HardNegativeResult?, contrastSets: ContrastSetResult?
  ) {
    var samples: [Int: SceneSample] = [:]
    let split = try embed(DatasetPrefix(dataset, count: options.maxImages)) { index in
      let sample = dataset.sample(at: index)
      samples[index] = sample
      return sample.captions.map(\.text)
    }
    let retrieval = try Retrieval.evaluate(split.similarities, captionToImage: split.captionToImage)
    let contrastSets =
      dataset.config[dataset.split].contrastSetSize > 1
      ? try ContrastSetRetrieval.evaluate(
        split.similarities, captionToImage: split.captionToImage, setOfImage: split.indices.map { samples[$0]!.contrastSet })
      : nil

    // One trial per hard negative: its image's similarity to the caption it was made from,
    // against its similarity to the negative.
    var texts: [String] = []
    var rows: [Int64] = []
    var kinds: [String] = []
    var positives: [Int] = []
    for (row, index) in split.indices.enumerated() {
      for negative in samples[index]!.hardNegatives {
        texts.append(negative.text)
        rows.append(Int64(row))
        kinds.append(negative.kind.rawValue)
        positives.append(split.firstCaption[row] + negative.captionIndex)
      }
    }
    guard !texts.isEmpty else { return (retrieval, nil, contrastSets) }
    let negativeEmbeddings = try embedder.embedTexts(texts)  // [M, P]
    let images = try split.images.indexSelect(dim: 0, index: Tensor(rows).to(embedder.device))  // [M, P]
    let scores = try (images * negativeEmbeddings).sum(dim: 1).to(.cpu).toArray(Float.self)  // [M]
    let trials = texts.indices.map { m in
      HardNegativeTrial(
        kind: kinds[m], caption: positives[m], positive: split.similarities[Int(rows[m]), positives[m]], negative: scores[m])
    }
    return (retrieval, HardNegativeAccuracy.evaluate(trials), contrastSets)
  }

  /// Zero-shot classification of the single-object scenes by colour and shape (its first
  /// `maxImages`), with `options.prompts`.
  public func zeroShot(_ dataset: ZeroShotScenes) throws -> ZeroShotResult {
    let (images, indices) = try embedder.embedImages(ZeroShotImages(dataset, count: options.maxImages))  // [N, P]
    return try zeroShot(
      images: images, labels: indices.map { dataset.label(at: $0).classIndex }, classNames: ZeroShotScenes.classNames,
      prompts: options.prompts)
  }

  /// Zero-shot classification of an image-folder set (every image) with `prompts`.
  public func zeroShot(_ dataset: ClassFolders, prompts: PromptTemplates) throws -> ZeroShotResult {
    let (images, indices) = try embedder.embedImages(dataset)  // [N, P]
    return try zeroShot(images: images, labels: indices.map(dataset.label(at:)), classNames: dataset.classNames, prompts: prompts)
  }

  /// Each class's embedding is the normalised mean of its prompts' embeddings; an image's
  /// prediction is the class of highest cosine similarity.
  func zeroShot(images: Tensor, labels: [Int], classNames names: [String], prompts: PromptTemplates) throws -> ZeroShotResult {
    let templates = prompts.templates.count
    guard templates > 0 else { throw EvaluationError("zero-shot: no prompt templates") }
    let embedded = try embedder.embedTexts(names.flatMap { prompts.prompts(for: $0) })  // [C·T, P]
    let classes = try ZeroShot.classEmbeddings(embedded.view([names.count, templates, -1]))  // [C, P]
    let scores = try SimilarityMatrix(images.matmul(classes.transpose(0, 1)))  // [N, C]
    return try ZeroShot.evaluate(scores, labels: labels)
  }

  /// Everything the experiment runner logs during training: retrieval and hard negatives on
  /// `scenes`, zero-shot on `zeroShot` when given. Efficiency is measured separately
  /// (`Efficiency.measure`), once per model rather than at every evaluation.
  public func evaluate(scenes dataset: ScenesDataset, zeroShot zeroShotSet: ZeroShotScenes? = nil) throws -> EvaluationResult {
    let (retrieval, hardNegatives, contrastSets) = try scenes(dataset)
    return EvaluationResult(
      retrieval: retrieval, hardNegatives: hardNegatives, contrastSets: contrastSets, zeroShot: try zeroShotSet.map(zeroShot))
  }

  /// An embedded split: its images, every caption of each, and their similarities.
  struct EmbeddedSplit {
    /// [images, P], unit norm, on the model's device.
    var images: Tensor
    /// Dataset index of each image row.
    var indices: [Int]
    var similarities: SimilarityMatrix  // [images, captions]
    var captionToImage: [Int]
    /// Column of each image row's first caption (its captions are consecutive).
    var firstCaption: [Int]
  }

  /// Embeds the images of `dataset`, then every caption `captions(index)` gives for them.
  func embed(_ dataset: any ImageTextDataset, captions: (Int) -> [String]) throws -> EmbeddedSplit {
    let (images, indices) = try embedder.embedImages(dataset)
    var texts: [String] = []
    var captionToImage: [Int] = []
    var firstCaption: [Int] = []
    for (row, index) in indices.enumerated() {
      let own = captions(index)
      firstCaption.append(texts.count)
      texts += own
      captionToImage += Array(repeating: row, count: own.count)
    }
    let textEmbeddings = try embedder.embedTexts(texts)  // [C, P]
    let similarities = try SimilarityMatrix(images.matmul(textEmbeddings.transpose(0, 1)))  // [I, C]
    return EmbeddedSplit(
      images: images, indices: indices, similarities: similarities, captionToImage: captionToImage, firstCaption: firstCaption)
  }
}

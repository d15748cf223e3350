import Data
import Models
import Tokenizers
import Torch
import TorchNN

/// Turns images and texts into normalized joint-space embeddings with a CLIP model, the way
/// every evaluation here needs them: eval mode, no autograd, batches on the model's device.
///
/// ```swift
/// let embedder = try Embedder(model: student, tokenizer: tokenizer)
/// let (images, kept) = try embedder.embedImages(testSet)     // [N, P], dataset indices
/// let texts = try embedder.embedTexts(["a red circle", "a blue star"])   // [2, P]
/// ```
public final class Embedder {
  public let model: CLIPModel
  public let tokenizer: any TextTokenizer
  public let preprocessor: ImagePreprocessor
  public let batchSize: Int
  /// Loader threads that render or decode and preprocess images while the model runs. On a
  /// CPU-only machine with few cores they compete with LibTorch's own threads; 0 prepares each
  /// batch on the calling thread instead.
  public let numWorkers: Int

  /// - Parameters:
  ///   - preprocess: nil gives CLIP's evaluation transform at the vision tower's image size.
  /// - Throws: `EvaluationError` when the tokenizer's context is longer than the text tower's.
  public init(
    model: CLIPModel, tokenizer: any TextTokenizer, preprocess: PreprocessConfig? = nil, batchSize: Int = 256,
    numWorkers: Int = 2
  ) throws {
    let positions = model.config.textConfig.maxPositionEmbeddings
    guard tokenizer.contextLength <= positions else {
      throw EvaluationError(
        "tokenizer context length \(tokenizer.contextLength) exceeds the text tower's \(positions) positions; "
          + "make the tokenizer with contextLength: \(positions)")
    }
    guard batchSize > 0, numWorkers >= 0 else {
      throw EvaluationError("embedder: batchSize must be positive and numWorkers ≥ 0 (got \(batchSize), \(numWorkers))")
    }
    self.model = model
    self.tokenizer = tokenizer
    preprocessor = try ImagePreprocessor(preprocess ?? PreprocessConfig(imageSize: model.config.visionConfig.imageSize))
    self.batchSize = batchSize
    self.numWorkers = numWorkers
  }

  /// Where the model's weights live; inputs are moved there.
  public var device: Device { model.logitScale.device }

  /// Embeds every image of `dataset` in dataset order through a `BatchLoader` in evaluation
  /// mode (centre crops, no shuffling, no sample dropped).
  ///
  /// - Returns: [N, P] unit-norm float32 embeddings on the model's device, and the dataset
  ///   index of each row (every index, unless the dataset's error policy skipped some).
  public func embedImages(_ dataset: any ImageTextDataset) throws -> (embeddings: Tensor, indices: [Int]) {
    let loader = try BatchLoader(
      dataset: dataset, tokenizer: tokenizer, preprocessor: preprocessor,
      config: .evaluation(batchSize: batchSize, numWorkers: numWorkers))
    let batches = loader.batches()
    var parts: [Tensor] = []
    var indices: [Int] = []
    try evaluationMode(model) {
      while let batch = try batches.next() {
        parts.append(try model.encodeImage(batch.images.to(device), normalize: true).to(.float32))  // [B, P]
        indices += batch.indices
      }
    }
    guard !parts.isEmpty else { throw EvaluationError("\(dataset.name): no image could be loaded to evaluate") }
    return (try Tensor.cat(parts, dim: 0), indices)
  }

  /// Embeds `texts` in order.
  ///
  /// Texts are batched by token length and each batch is cut to its longest text. CLIP's text
  /// tower is causal and pools at the end-of-text token, so no position after a text's end
  /// can change its embedding: the result is the one at the full context length, without the
  /// work on padding (scene captions use about half of a 32-token context).
  ///
  /// - Returns: [texts.count, P] unit-norm float32 embeddings on the model's device.
  public func embedTexts(_ texts: [String]) throws -> Tensor {
    let dimension = model.config.projectionDim
    guard !texts.isEmpty else { return try Tensor.zeros([0, dimension], device: device) }
    let encoded = try texts.map { Array(try tokenizer.encode($0).prefix(tokenizer.contextLength)) }
    let order = encoded.indices.sorted { (encoded[$0].count, $0) < (encoded[$1].count, $1) }
    var parts: [Tensor] = []
    try evaluationMode(model) {
      for start in stride(from: 0, to: order.count, by: batchSize) {
        let rows = order[start..<min(start + batchSize, order.count)]
        let length = rows.map { encoded[$0].count }.max()!
        var ids: [Int64] = []
        ids.reserveCapacity(rows.count * length)
        for row in rows {
          ids += encoded[row].map(Int64.init)
          ids += repeatElement(Int64(tokenizer.padTokenId), count: length - encoded[row].count)
        }
        let tokens = try Tensor(ids, shape: [rows.count, length]).to(device)  // [B, L]
        parts.append(try model.encodeText(tokens, normalize: true).to(.float32))  // [B, P]
      }
    }
    let sorted = try Tensor.cat(parts, dim: 0)  // rows in `order`
    var inverse = [Int64](repeating: 0, count: order.count)
    for (position, row) in order.enumerated() { inverse[row] = Int64(position) }
    return try sorted.indexSelect(dim: 0, index: Tensor(inverse).to(device))
  }
}

/// Runs `body` with autograd off and `model` in eval mode (no dropout), then puts every
/// submodule back in the mode it was in: the experiment runner evaluates in the middle of
/// training, and a frozen teacher may sit in eval mode inside a training model.
public func evaluationMode<R>(_ model: Module, _ body: () throws -> R) throws -> R {
  // Pre-order: restoring a parent resets its subtree, and the children after it fix theirs.
  let modes = model.namedModules().map { ($0.1, $0.1.isTraining) }
  model.eval()
  defer { for (module, training) in modes { module.train(training) } }
  return try Torch.noGrad(body)
}

/// The first `count` samples of a dataset, for evaluating on a subset without copying it.
struct DatasetPrefix: ImageTextDataset {
  let base: any ImageTextDataset
  let count: Int

  init(_ base: any ImageTextDataset, count: Int?) {
    self.base = base
    self.count = min(base.count, count ?? base.count)
  }

  var name: String { count == base.count ? base.name : "\(base.name), first \(count)" }
  func sampleId(at index: Int) -> String { base.sampleId(at: index) }
  func captions(at index: Int) -> [String] { base.captions(at: index) }
  func loadImage(at index: Int) throws -> RGBImage { try base.loadImage(at: index) }
}

/// The zero-shot scenes as an image–text dataset (each image captioned with its class name),
/// so their images go through the same loader as every other split.
struct ZeroShotImages: ImageTextDataset {
  let scenes: ZeroShotScenes
  let count: Int

  init(_ scenes: ZeroShotScenes, count: Int?) {
    self.scenes = scenes
    self.count = min(scenes.count, count ?? scenes.count)
  }

  var name: String { "scenes (zero-shot)" }
  func sampleId(at index: Int) -> String { "scenes-zero-shot-\(scenes.config.seed)/\(index)" }
  func captions(at index: Int) -> [String] { [ZeroShotScenes.classNames[scenes.label(at: index).classIndex]] }
  func loadImage(at index: Int) throws -> RGBImage { scenes.image(at: index) }
}

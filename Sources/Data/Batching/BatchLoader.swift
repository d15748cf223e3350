import Tokenizers
import Torch

/// Batches of preprocessed images and tokenized captions from any `ImageTextDataset`, with
/// seeded shuffling, background prefetch and exact resumption.
///
/// ```swift
/// let loader = try BatchLoader(dataset: train, tokenizer: tokenizer,
///                              preprocessor: try ImagePreprocessor(PreprocessConfig(imageSize: 64)),
///                              config: LoaderConfig(batchSize: 128, seed: 7))
/// var position = checkpoint?.loaderPosition ?? LoaderPosition()
/// while position.epoch < epochs {
///   let batches = loader.batches(from: position)
///   while let batch = try batches.next() {
///     try step(batch.images, batch.tokens)                  // [B, 3, H, W], [B, L]
///     position = batches.position                           // save with the checkpoint
///   }
///   position = batches.position                             // (epoch + 1, 0)
/// }
/// print(loader.skipReport)
/// ```
public final class BatchLoader: Sendable {
  public let dataset: any ImageTextDataset
  public let tokenizer: any TextTokenizer
  public let preprocessor: ImagePreprocessor
  public let config: LoaderConfig
  private let skipLog = SkipLog()

  public init(
    dataset: any ImageTextDataset, tokenizer: any TextTokenizer, preprocessor: ImagePreprocessor, config: LoaderConfig
  ) throws {
    try config.validate()
    if config.dropLast && dataset.count < config.batchSize {
      throw DataError(
        .emptySplit, file: dataset.name,
        "\(dataset.count) samples make no full batch of \(config.batchSize) (lower batchSize or set dropLast false)")
    }
    self.dataset = dataset
    self.tokenizer = tokenizer
    self.preprocessor = preprocessor
    self.config = config
  }

  public var batchesPerEpoch: Int { EpochPlan(epoch: 0, count: dataset.count, config: config).batchCount }

  /// The dataset indices in the order epoch `epoch` visits them.
  public func order(epoch: Int) -> [Int] { EpochPlan(epoch: epoch, count: dataset.count, config: config).order }

  /// Samples skipped so far under `ErrorPolicy.skip` (while loading the dataset and while
  /// decoding), to print when a run ends.
  public var skipReport: SkipReport {
    var report = (dataset as? RecordDataset)?.loadSkips ?? SkipReport()
    report.merge(skipLog.snapshot)
    return report
  }

  /// The batches of `position.epoch` from `position.batch` on, prefetched in the background.
  public func batches(from position: LoaderPosition = LoaderPosition()) -> BatchIterator {
    BatchIterator(
      loader: self, plan: EpochPlan(epoch: position.epoch, count: dataset.count, config: config), start: position.batch)
  }

  /// Builds one batch on the calling thread; nil when every sample in it was skipped.
  public func batch(at position: LoaderPosition) throws -> Batch? {
    try build(EpochPlan(epoch: position.epoch, count: dataset.count, config: config), position.batch)
  }

  func build(_ plan: EpochPlan, _ k: Int) throws -> Batch? {
    let indices = plan.indices(ofBatch: k)
    let perImage = preprocessor.elementCount
    var pixels = [Float](repeating: 0, count: indices.count * perImage)
    var kept: [Int] = []
    var ids: [String] = []
    var keys: [UInt64] = []
    var captionIndices: [Int] = []
    var captions: [String] = []
    var negatives: [String] = []
    var owners: [Int] = []
    // Key 0 means the evaluation view: also what training gets when augmentation is off.
    let augmenting = config.training && preprocessor.config.augmentation.changesImages
    for index in indices {
      let id = dataset.sampleId(at: index)
      let key = augmenting ? plan.augmentationKey(sampleKey: StableHash.string(id)) : 0
      let image = try config.errorPolicy.handle(skipLog) { try dataset.loadImage(at: index) }
      guard let image else { continue }
      let view = augmenting ? preprocessor.trainingImage(image, augmentationKey: key) : preprocessor.evaluationImage(image)
      let slot = kept.count
      pixels.withUnsafeMutableBufferPointer {
        preprocessor.normalize(view, into: UnsafeMutableBufferPointer(rebasing: $0[slot * perImage..<(slot + 1) * perImage]))
      }
      let texts = dataset.captions(at: index)
      let choice = plan.captionIndex(sample: index, captionCount: texts.count)
      kept.append(index)
      ids.append(id)
      keys.append(key)
      captionIndices.append(choice)
      captions.append(texts[choice])
      if config.hardNegatives,
        let negative = dataset.hardNegative(at: index, caption: choice, key: plan.hardNegativeKey(sample: index))
      {
        negatives.append(negative)
        owners.append(slot)
      }
    }
    guard !kept.isEmpty else { return nil }
    let n = kept.count
    if n < indices.count { pixels.removeSubrange(n * perImage..<pixels.count) }
    let size = preprocessor.config.imageSize
    let tokens = try tokenizer.encodeBatch(captions)
    var batch = Batch(
      images: try Tensor(pixels, shape: [n, 3, size, size]),
      tokens: try Tensor(tokens.ids, shape: [n, tokens.contextLength]),
      attentionMask: try Tensor(tokens.attentionMask, shape: [n, tokens.contextLength]),
      indices: kept, sampleIds: ids, augmentationKeys: keys, captionIndices: captionIndices, captions: captions,
      position: LoaderPosition(epoch: plan.epoch, batch: k))
    if !negatives.isEmpty {
      let encoded = try tokenizer.encodeBatch(negatives)
      batch.negativeTokens = try Tensor(encoded.ids, shape: [negatives.count, encoded.contextLength])
      batch.negativeMask = try Tensor(encoded.attentionMask, shape: [negatives.count, encoded.contextLength])
      batch.negativeCaptions = negatives
      batch.negativeOwners = owners
    }
    return batch
  }
}

/// One epoch's batches, built ahead on the loader's workers. Stops its workers when it is
/// released or `close()`d.
public final class BatchIterator {
  private let loader: BatchLoader
  private let plan: EpochPlan
  private let prefetcher: Prefetcher<Batch?>?
  private var nextBatch: Int
  private var closed = false

  init(loader: BatchLoader, plan: EpochPlan, start: Int) {
    self.loader = loader
    self.plan = plan
    nextBatch = min(max(0, start), plan.batchCount)
    let config = loader.config
    if config.numWorkers > 0 {
      prefetcher = Prefetcher(nextBatch..<plan.batchCount, workers: config.numWorkers, depth: config.prefetchBatches) {
        try loader.build(plan, $0)
      }
    } else {
      prefetcher = nil
    }
  }

  deinit { prefetcher?.stop() }

  /// Where the stream stands: the next batch to produce, or (epoch + 1, 0) after the last.
  public var position: LoaderPosition {
    nextBatch >= plan.batchCount
      ? LoaderPosition(epoch: plan.epoch + 1, batch: 0) : LoaderPosition(epoch: plan.epoch, batch: nextBatch)
  }

  /// Batches left in this epoch.
  public var remaining: Int { plan.batchCount - nextBatch }

  /// The next batch, or nil at the end of the epoch (or after `close()`). A batch whose
  /// samples were all skipped is passed over. After an error the position stays on the
  /// failed batch and the iterator is closed.
  public func next() throws -> Batch? {
    while !closed && nextBatch < plan.batchCount {
      let k = nextBatch
      let batch: Batch?
      do {
        if let prefetcher {
          guard let built = try prefetcher.next() else { return nil }
          batch = built
        } else {
          batch = try loader.build(plan, k)
        }
      } catch {
        close()
        throw error
      }
      nextBatch = k + 1
      if let batch { return batch }
    }
    return nil
  }

  /// Stops the workers now (they finish the batch they hold); `position` stays where it is.
  public func close() {
    closed = true
    prefetcher?.stop()
  }
}

/// How a `BatchLoader` batches, shuffles, augments and prefetches.
///
/// ```swift
/// var config = LoaderConfig()
/// config.batchSize = 128
/// config.numWorkers = 4
/// ```
public struct LoaderConfig: Codable, Sendable, Equatable {
  enum CodingKeys: String, CodingKey {
    case shuffle, seed, training, batchSize = "batch_size", numWorkers = "num_workers", prefetchBatches = "prefetch_batches",
      dropLast = "drop_last", captionChoice = "caption_choice", augmentationVariants = "augmentation_variants", errorPolicy =
      "error_policy"
    case shuffleGroup = "shuffle_group", hardNegatives = "hard_negatives"
  }

  public enum CaptionChoice: String, Codable, Sendable {
    /// A different caption per epoch, drawn from the seed (training on all captions).
    case random
    /// Always the first caption (evaluation, reproducible listings).
    case first
  }

  public var batchSize: Int = 64
  /// Shuffle the order each epoch (seeded by `seed` and the epoch).
  public var shuffle: Bool = true
  public var seed: UInt64 = 0
  /// Threads that decode and preprocess; 0 builds batches on the calling thread.
  public var numWorkers: Int = 2
  /// Batches built ahead of the consumer (at least `numWorkers`, so every worker has work).
  public var prefetchBatches: Int = 4
  /// Drop the last, smaller batch of an epoch (contrastive losses prefer equal batches).
  public var dropLast: Bool = true
  /// Training: augmented views (random resized crop); otherwise the evaluation transform.
  public var training: Bool = true
  public var captionChoice: CaptionChoice = .random
  /// Distinct augmented views per sample: nil, a new view every epoch; k, epoch e uses view
  /// e mod k, so a teacher-feature cache needs only k entries per sample.
  public var augmentationVariants: Int? = nil
  public var errorPolicy: ErrorPolicy = .fail
  /// Shuffle blocks of this many consecutive samples instead of single samples (1 = plain
  /// shuffle). With the generated benchmark's contrast sets, a block is one set of near-miss
  /// scenes, which then share a batch.
  public var shuffleGroup: Int = 1
  /// Also tokenize one hard-negative caption per sample (when the dataset has them), drawn
  /// anew each epoch from the seed: extra negatives for the image→text side of the CLIP loss.
  public var hardNegatives: Bool = false
  /// Data-parallel training: this process loads only its rows of every batch (`batchSize` is
  /// the batch over all processes). Every process shuffles alike, so together they load
  /// exactly the batches one process would. Not part of the config file: set by the trainer.
  public var shard: LoaderShard? = nil

  public init(batchSize: Int = 64, shuffle: Bool = true, seed: UInt64 = 0, numWorkers: Int = 2, training: Bool = true) {
    self.batchSize = batchSize
    self.shuffle = shuffle
    self.seed = seed
    self.numWorkers = numWorkers
    self.training = training
  }

  /// Evaluation defaults: dataset order, centre crops, first captions, every sample kept.
  public static func evaluation(batchSize: Int = 64, numWorkers: Int = 2) -> LoaderConfig {
    var config = LoaderConfig(batchSize: batchSize, shuffle: false, numWorkers: numWorkers, training: false)
    config.dropLast = false
    config.captionChoice = .first
    return config
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = LoaderConfig()
    batchSize = try c.decode(.batchSize, default: d.batchSize)
    shuffle = try c.decode(.shuffle, default: d.shuffle)
    seed = try c.decode(.seed, default: d.seed)
    numWorkers = try c.decode(.numWorkers, default: d.numWorkers)
    prefetchBatches = try c.decode(.prefetchBatches, default: d.prefetchBatches)
    dropLast = try c.decode(.dropLast, default: d.dropLast)
    training = try c.decode(.training, default: d.training)
    captionChoice = try c.decode(.captionChoice, default: d.captionChoice)
    augmentationVariants = try c.decodeIfPresent(Int.self, forKey: .augmentationVariants)
    errorPolicy = try c.decode(.errorPolicy, default: d.errorPolicy)
    shuffleGroup = try c.decode(.shuffleGroup, default: d.shuffleGroup)
    hardNegatives = try c.decode(.hardNegatives, default: d.hardNegatives)
  }

  func validate() throws {
    func fail(_ message: String) -> DataError { DataError(.invalidArgument, file: "LoaderConfig", message) }
    guard batchSize > 0 else { throw fail("batch_size must be positive") }
    guard numWorkers >= 0, prefetchBatches >= 1 else { throw fail("num_workers ≥ 0 and prefetch_batches ≥ 1 required") }
    if let k = augmentationVariants, k < 1 { throw fail("augmentation_variants must be at least 1") }
    guard shuffleGroup >= 1 else { throw fail("shuffle_group must be at least 1") }
  }
}

/// A place in the stream of batches: the next batch to produce. Save it with a checkpoint;
/// a loader with the same dataset and config resumes from it with identical batches.
public struct LoaderPosition: Codable, Sendable, Equatable, Hashable {
  public var epoch: Int
  /// Index of the next batch within the epoch.
  public var batch: Int

  public init(epoch: Int = 0, batch: Int = 0) {
    self.epoch = epoch
    self.batch = batch
  }
}

/// Which contiguous share of each batch a data-parallel process loads.
public struct LoaderShard: Codable, Sendable, Equatable {
  public var rank: Int
  public var count: Int

  public init(rank: Int, count: Int) {
    self.rank = rank
    self.count = count
  }
}

/// What an epoch contains, as pure functions of (seed, epoch, sample): the order, each
/// sample's caption and augmentation key. Nothing depends on which thread builds a batch
/// or on the batches before it, which is what makes resumption exact.
struct EpochPlan: Sendable {
  let epoch: Int
  let order: [Int]
  let config: LoaderConfig

  init(epoch: Int, count: Int, config: LoaderConfig) {
    self.epoch = epoch
    self.config = config
    var order = Array(0..<count)
    if config.shuffle {
      var random = SeededRandom(config.seed, 0x5EED, UInt64(epoch))
      let group = max(config.shuffleGroup, 1)
      if group == 1 {
        random.shuffle(&order)
      } else {
        // Blocks of `group` consecutive samples move together (a generated contrast set stays
        // in one batch, so in-batch negatives include its near-misses).
        var blocks = Array(0..<((count + group - 1) / group))
        random.shuffle(&blocks)
        order = blocks.flatMap { b in (b * group)..<min((b + 1) * group, count) }
      }
    }
    self.order = order
  }

  var batchCount: Int {
    config.dropLast ? order.count / config.batchSize : (order.count + config.batchSize - 1) / config.batchSize
  }

  /// Dataset indices of batch `k`.
  func indices(ofBatch k: Int) -> ArraySlice<Int> {
    let start = k * config.batchSize
    let batch = order[start..<min(start + config.batchSize, order.count)]
    guard let shard = config.shard, shard.count > 1 else { return batch }
    // Rows [rank·n/W, (rank+1)·n/W) of the batch, the rows the model's gather puts in that place.
    let n = batch.count
    return batch.dropFirst(shard.rank * n / shard.count).prefix((shard.rank + 1) * n / shard.count - shard.rank * n / shard.count)
  }

  func captionIndex(sample index: Int, captionCount: Int) -> Int {
    guard config.captionChoice == .random, captionCount > 1 else { return 0 }
    var random = SeededRandom(config.seed, 0xCA9, UInt64(epoch), UInt64(index))
    return random.int(below: captionCount)
  }

  /// Which hard negative sample `index` gets this epoch.
  func hardNegativeKey(sample index: Int) -> UInt64 { StableHash.combine(config.seed, 0x4E6, UInt64(epoch), UInt64(index)) }

  /// Keyed on the sample's stable id (not its index), so the key survives reordering.
  func augmentationKey(sampleKey: UInt64) -> UInt64 {
    let view = config.augmentationVariants.map { epoch % $0 } ?? epoch
    return StableHash.combine(config.seed, 0xA06, sampleKey, UInt64(view))
  }
}

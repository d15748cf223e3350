import Data
import Foundation
import Testing
import Torch

@Suite struct LoaderTests {
  /// 120 generated 32×32 samples: enough for several batches, small enough for debug builds.
  static let scenes = Result {
    var config = SceneTests.small()
    config.train.count = 120
    config.imageSize = 32
    return try ScenesDataset(config, split: .train)
  }

  static func loader(_ config: LoaderConfig, dataset: (any ImageTextDataset)? = nil, imageSize: Int = 24) throws -> BatchLoader {
    try BatchLoader(
      dataset: dataset ?? scenes.get(), tokenizer: TinyTokenizer(),
      preprocessor: ImagePreprocessor(PreprocessConfig(imageSize: imageSize)), config: config)
  }

  /// Everything a batch holds, as bytes, for exact comparisons.
  static func fingerprint(_ batch: Batch) throws -> [UInt8] {
    try batch.images.bytes() + batch.tokens.bytes() + batch.attentionMask.bytes()
      + Array((batch.sampleIds + batch.captions).joined(separator: "|").utf8)
      + batch.augmentationKeys.flatMap { withUnsafeBytes(of: $0, Array.init) }
  }

  /// The fingerprints of the epoch's batches from `position` on (at most `limit`).
  static func epoch(_ loader: BatchLoader, from position: LoaderPosition, limit: Int = .max) throws -> [[UInt8]] {
    let batches = loader.batches(from: position)
    var result: [[UInt8]] = []
    while result.count < limit, let batch = try batches.next() { result.append(try fingerprint(batch)) }
    return result
  }

  @Test func dataParallelShardsTogetherMakeTheUnshardedBatchesInOrder() throws {
    var whole = LoaderConfig(batchSize: 12, numWorkers: 1)
    whole.seed = 5
    let reference = try Self.loader(whole).batches()
    var shards: [BatchIterator] = []
    for rank in 0..<3 {
      var config = whole
      config.shard = LoaderShard(rank: rank, count: 3)
      shards.append(try Self.loader(config).batches())
    }
    for _ in 0..<3 {
      let batch = try #require(try reference.next())
      let parts = try shards.map { try #require(try $0.next()) }
      #expect(parts.map(\.count) == [4, 4, 4])
      // Rank order is row order: what the towers' all-gather rebuilds.
      #expect(parts.flatMap(\.sampleIds) == batch.sampleIds)
      #expect(try Tensor.cat(parts.map(\.images), dim: 0).bytes() == batch.images.bytes())
      #expect(try Tensor.cat(parts.map(\.tokens), dim: 0).bytes() == batch.tokens.bytes())
    }
  }

  @Test func batchesHaveTheRightShapesAndIdentities() throws {
    let loader = try Self.loader(LoaderConfig(batchSize: 16, numWorkers: 2))
    #expect(loader.batchesPerEpoch == 7)  // 120 / 16, last partial batch dropped
    let batch = try #require(try loader.batches().next())
    #expect(batch.images.shape == [16, 3, 24, 24] && batch.images.dtype == .float32)
    #expect(batch.tokens.shape == [16, 12] && batch.tokens.dtype == .int64)
    #expect(batch.attentionMask.shape == [16, 12])
    #expect(batch.position == LoaderPosition(epoch: 0, batch: 0))
    let dataset = try Self.scenes.get()
    for (slot, index) in batch.indices.enumerated() {
      #expect(batch.sampleIds[slot] == dataset.sampleId(at: index))
      #expect(batch.captions[slot] == dataset.captions(at: index)[batch.captionIndices[slot]])
    }
    #expect(Set(batch.augmentationKeys).count == 16 && !batch.augmentationKeys.contains(0))
  }

  @Test func sameSeedSameBytesWhateverTheWorkers() throws {
    var config = LoaderConfig(batchSize: 20, seed: 5, numWorkers: 0)
    let serial = try Self.epoch(Self.loader(config), from: LoaderPosition(), limit: 3)
    config.numWorkers = 2
    config.prefetchBatches = 3
    let parallel = try Self.epoch(Self.loader(config), from: LoaderPosition(), limit: 3)
    let again = try Self.epoch(Self.loader(config), from: LoaderPosition(), limit: 3)
    #expect(serial.count == 3)
    #expect(serial == parallel)
    #expect(parallel == again)
    config.seed = 6
    let other = try Self.epoch(Self.loader(config), from: LoaderPosition(), limit: 3)
    #expect(other != parallel)
  }

  @Test func epochsShuffleDifferentlyAndCoverTheData() throws {
    let loader = try Self.loader(LoaderConfig(batchSize: 20, seed: 1, numWorkers: 0))
    #expect(loader.order(epoch: 0) != loader.order(epoch: 1))
    #expect(loader.order(epoch: 0).sorted() == Array(0..<120))
    let unshuffled = try Self.loader(LoaderConfig(batchSize: 20, shuffle: false, numWorkers: 0))
    #expect(unshuffled.order(epoch: 3) == Array(0..<120))
  }

  @Test func resumesExactlyInsideAnEpoch() throws {
    let config = LoaderConfig(batchSize: 24, seed: 3, numWorkers: 2)
    let loader = try Self.loader(config)
    let full = try Self.epoch(loader, from: LoaderPosition(epoch: 1))
    #expect(full.count == 5)
    // Stop after two batches, save the position as a checkpoint would, resume elsewhere.
    let batches = loader.batches(from: LoaderPosition(epoch: 1))
    for _ in 0..<2 { _ = try batches.next() }
    batches.close()
    #expect(try batches.next() == nil)  // closed: no more batches, and the position holds
    let saved = try JSONEncoder().encode(batches.position)
    let position = try JSONDecoder().decode(LoaderPosition.self, from: saved)
    #expect(position == LoaderPosition(epoch: 1, batch: 2))
    let resumed = try Self.epoch(Self.loader(config), from: position)
    #expect(resumed == Array(full.dropFirst(2)))
    let end = loader.batches(from: LoaderPosition(epoch: 1, batch: 5))
    #expect(try end.next() == nil)
    #expect(end.position == LoaderPosition(epoch: 2, batch: 0))
  }

  @Test func augmentationKeysNameTheView() throws {
    var config = LoaderConfig(batchSize: 10, seed: 2, numWorkers: 0)
    config.shuffle = false
    let loader = try Self.loader(config)
    let e0 = try #require(try loader.batch(at: LoaderPosition(epoch: 0)))
    let e1 = try #require(try loader.batch(at: LoaderPosition(epoch: 1)))
    #expect(e0.augmentationKeys != e1.augmentationKeys)
    // The key alone reproduces the pixels.
    let dataset = try Self.scenes.get()
    let preprocessor = loader.preprocessor
    let view = preprocessor.trainingImage(dataset.image(at: e0.indices[4]), augmentationKey: e0.augmentationKeys[4])
    let expected = try preprocessor.tensor(view).bytes()
    #expect(try e0.images.select(dim: 0, index: 4).contiguous().bytes() == expected)

    let plain = try BatchLoader(
      dataset: dataset, tokenizer: TinyTokenizer(),
      preprocessor: ImagePreprocessor(
        PreprocessConfig(imageSize: 24, augmentation: AugmentationConfig(randomResizedCrop: false))),
      config: config)
    #expect(try #require(try plain.batch(at: LoaderPosition(epoch: 0))).augmentationKeys.allSatisfy { $0 == 0 })

    config.augmentationVariants = 2
    let cycling = try Self.loader(config)
    let keys = try (0..<3).map { try #require(try cycling.batch(at: LoaderPosition(epoch: $0))).augmentationKeys }
    #expect(keys[0] == keys[2] && keys[0] != keys[1])
  }

  @Test func evaluationUsesCentreCropsAndFirstCaptions() throws {
    let loader = try Self.loader(.evaluation(batchSize: 50, numWorkers: 2))
    #expect(loader.batchesPerEpoch == 3)  // 120 = 2 × 50 + 20, last batch kept
    let batches = loader.batches()
    var sizes: [Int] = []
    var first: Batch?
    while let batch = try batches.next() {
      sizes.append(batch.count)
      if first == nil { first = batch }
      #expect(batch.augmentationKeys.allSatisfy { $0 == 0 } && batch.captionIndices.allSatisfy { $0 == 0 })
    }
    #expect(sizes == [50, 50, 20])
    let batch = try #require(first)
    #expect(batch.indices == Array(0..<50))
    let dataset = try Self.scenes.get()
    let expected = try loader.preprocessor.tensor(loader.preprocessor.evaluationImage(dataset.image(at: 7))).bytes()
    #expect(try batch.images.select(dim: 0, index: 7).contiguous().bytes() == expected)
  }

  @Test func randomCaptionChangesWithTheEpoch() throws {
    var config = LoaderConfig(batchSize: 50, numWorkers: 0)
    config.shuffle = false
    let loader = try Self.loader(config)
    let choices = try (0..<3).map { try #require(try loader.batch(at: LoaderPosition(epoch: $0))).captionIndices }
    #expect(Set(choices.flatMap { $0 }).count == 5)
    #expect(choices[0] != choices[1])
  }

  /// Three good images and one that is not an image, in a caption folder.
  static func folderWithACorruptImage(_ folder: TemporaryFolder) throws -> RecordDataset {
    for i in 0..<4 {
      try folder.write("\(i).jpg", i == 2 ? Array("not a jpeg".utf8) : JPEG.encode(testImage(width: 40, height: 30, seed: i)))
      try folder.write("\(i).txt", "picture \(i)")
    }
    return try CaptionFolder.load(folder.path)
  }

  @Test func corruptImageFailsByDefault() throws {
    let folder = try TemporaryFolder()
    let dataset = try Self.folderWithACorruptImage(folder)
    let loader = try Self.loader(.evaluation(batchSize: 4, numWorkers: 2), dataset: dataset)
    let error = dataError { _ = try loader.batches().next() }
    #expect(error?.kind == .undecodableImage)
    #expect(error?.description == "\(folder.path)/2.jpg: not a JPEG or PNG (first bytes 6e 6f 74 20)")
  }

  @Test func corruptImageIsSkippedAndReported() throws {
    let folder = try TemporaryFolder()
    let dataset = try Self.folderWithACorruptImage(folder)
    var config = LoaderConfig.evaluation(batchSize: 2, numWorkers: 2)
    config.errorPolicy = .skip
    let loader = try Self.loader(config, dataset: dataset)
    let batches = loader.batches()
    var seen: [[String]] = []
    while let batch = try batches.next() {
      seen.append(batch.sampleIds)
      #expect(batch.images.shape[0] == batch.count && batch.tokens.shape[0] == batch.count)
    }
    #expect(seen == [["0.jpg", "1.jpg"], ["3.jpg"]])
    let report = loader.skipReport
    #expect(report.count == 1 && report.countByKind == [.undecodableImage: 1])
    #expect(report.description.hasPrefix("skipped 1 samples (undecodableImage 1)\n  \(folder.path)/2.jpg: "))
  }

  @Test func batchOfOnlyBadSamplesIsPassedOver() throws {
    let folder = try TemporaryFolder()
    let dataset = try Self.folderWithACorruptImage(folder)
    var config = LoaderConfig.evaluation(batchSize: 1, numWorkers: 0)
    config.errorPolicy = .skip
    let loader = try Self.loader(config, dataset: dataset)
    let batches = loader.batches(from: LoaderPosition(epoch: 0, batch: 2))
    #expect(try batches.next()?.sampleIds == ["3.jpg"])
  }

  @Test func releasingAnIteratorMidEpochStopsItsWorkers() throws {
    var config = LoaderConfig(batchSize: 8, numWorkers: 2)
    config.prefetchBatches = 6
    let loader = try Self.loader(config)
    for _ in 0..<5 {
      let batches = loader.batches()
      _ = try batches.next()
    }
    #expect(try loader.batches().next() != nil)
  }

  @Test func tooFewSamplesForABatchIsAnEmptySplit() throws {
    let error = dataError { _ = try Self.loader(LoaderConfig(batchSize: 500)) }
    #expect(error?.kind == .emptySplit)
    #expect(dataError { _ = try Self.loader(LoaderConfig(batchSize: 0)) }?.kind == .invalidArgument)
  }

  @Test func configDecodesFromPartialJSON() throws {
    let config = try JSONDecoder().decode(LoaderConfig.self, from: Data(#"{"batch_size": 8, "error_policy": "skip"}"#.utf8))
    #expect(config.batchSize == 8 && config.errorPolicy == .skip && config.numWorkers == 2 && config.dropLast)
  }
}

@Test func shuffleGroupKeepsBlocksTogether() throws {
  var scenes = ScenesConfig(seed: 0, imageSize: 32)
  scenes.train = SceneSplitConfig(count: 22, minObjects: 2, contrastSetSize: 4)
  var config = LoaderConfig(batchSize: 8, shuffle: true, seed: 3, numWorkers: 0)
  config.shuffleGroup = 4
  let loader = try BatchLoader(
    dataset: try ScenesDataset(scenes, split: .train), tokenizer: TinyTokenizer(),
    preprocessor: try ImagePreprocessor(PreprocessConfig(imageSize: 32)), config: config)
  let order = loader.order(epoch: 1)
  #expect(order.sorted() == Array(0..<22))
  // Every block of four (and the last, short block) appears whole and in order.
  var i = 0
  while i < order.count {
    let start = order[i]
    #expect(start % 4 == 0)
    let length = min(4, 22 - start)
    #expect(Array(order[i..<i + length]) == Array(start..<start + length))
    i += length
  }
  #expect(order != Array(0..<22), "blocks are shuffled")
  #expect(loader.order(epoch: 1) == order, "deterministic")
  #expect(loader.order(epoch: 2) != order, "each epoch its own order")
}

@Test func hardNegativesAreFalseNearMissesOfTheChosenCaption() throws {
  let scenes = try LoaderTests.scenes.get()
  var config = LoaderConfig(batchSize: 24, seed: 4, numWorkers: 0)
  config.hardNegatives = true
  let loader = try LoaderTests.loader(config)
  let batch = try #require(try loader.batch(at: LoaderPosition(epoch: 1, batch: 2)))
  let negatives = try #require(batch.negativeTokens)
  #expect(negatives.shape == [batch.negativeCaptions.count, batch.tokens.size(1)])
  #expect(batch.negativeMask?.shape == negatives.shape)
  // Nearly every caption has a near miss of some kind; each belongs to its own row's sample.
  #expect(batch.negativeCaptions.count >= 20 && batch.negativeOwners == batch.negativeOwners.sorted())
  var kinds: Set<Int> = []
  for (negative, row) in zip(batch.negativeCaptions, batch.negativeOwners) {
    let sample = scenes.sample(at: batch.indices[row])
    #expect(!sample.captions.map(\.text).contains(negative), "a negative is one of the sample's true captions")
    // Worded like the chosen caption: most words shared.
    let chosen = Set(batch.captions[row].split(separator: " ")), words = Set(negative.split(separator: " "))
    #expect(chosen.intersection(words).count * 2 >= chosen.count, "\(negative) vs \(batch.captions[row])")
    kinds.insert(chosen == words ? 0 : 1)  // 0: same words (a swap or a flip), 1: a word changed
  }
  #expect(kinds.count == 2, "both swaps/flips and attribute changes occur")
  // A pure function of (seed, epoch, sample): the same batch again, another one next epoch.
  let again = try #require(try loader.batch(at: LoaderPosition(epoch: 1, batch: 2)))
  let againBytes = try again.negativeTokens!.bytes(), bytes = try negatives.bytes()
  #expect(again.negativeCaptions == batch.negativeCaptions && againBytes == bytes)
  config.hardNegatives = false
  #expect(try LoaderTests.loader(config).batch(at: LoaderPosition(epoch: 1, batch: 2))?.negativeTokens == nil)
}

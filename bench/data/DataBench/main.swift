// The Swift side of the data benchmarks (driven by bench/data/run_data_bench.py).
//
//   DataBench pipeline --tsv FILE --workers N --batch-size B --image-size S [--batches K]
//       decode + CLIP preprocess + batch the TSV's JPEGs with BatchLoader; prints one JSON line
//       {"images": …, "seconds": …, "images_per_second": …} timed from the first batch on.
//   DataBench scenes [--count N] [--threads T]
//       the generated benchmark: render + caption throughput on the default train split, and
//       the bag-of-words and oracle text→image R@1 on the default test split.
import Data
import Foundation
import Tokenizers
import Torch

/// Splits on spaces into hashed ids: the loader needs a tokenizer, the benchmark measures images.
struct WordTokenizer: TextTokenizer {
  var contextLength: Int { 77 }
  var padTokenId: Int { 0 }
  func encode(_ text: String) throws -> [Int] {
    [1] + text.split(separator: " ").prefix(contextLength - 2).map { 3 + Int(StableHash.string(String($0)) % 49_000) } + [2]
  }
}

/// A thread-safe sum (so the timed work has a result and is not optimised away).
final class Tally: @unchecked Sendable {
  private let lock = NSLock()
  private var value = 0
  func add(_ n: Int) { lock.withLock { value += n } }
  var total: Int { lock.withLock { value } }
}

func option(_ name: String, _ fallback: String? = nil) -> String {
  let args = CommandLine.arguments
  if let i = args.firstIndex(of: "--\(name)"), i + 1 < args.count { return args[i + 1] }
  guard let fallback else {
    FileHandle.standardError.write(Data("missing --\(name)\n".utf8))
    exit(2)
  }
  return fallback
}

func pipeline() throws {
  // As on the PyTorch side: the consumer's checksum must not take the workers' cores.
  Torch.numThreads = 1
  let dataset = try DelimitedCaptions.load(option("tsv"))
  var config = LoaderConfig.evaluation(batchSize: Int(option("batch-size", "64"))!, numWorkers: Int(option("workers", "2"))!)
  config.prefetchBatches = max(2, 2 * config.numWorkers)
  config.dropLast = true
  let preprocessor = try ImagePreprocessor(PreprocessConfig(imageSize: Int(option("image-size", "224"))!))
  let loader = try BatchLoader(dataset: dataset, tokenizer: WordTokenizer(), preprocessor: preprocessor, config: config)
  let limit = Int(option("batches", "\(loader.batchesPerEpoch)"))!
  let batches = loader.batches()
  // The clock starts at the first batch, as on the PyTorch side: worker start-up is not
  // what either pipeline is measured on.
  guard let first = try batches.next() else { throw DataError(.emptySplit, file: "bench", "no batches") }
  var checksum = try first.images.sum().item()
  let start = Date()
  var images = 0
  while images / config.batchSize < limit - 1, let batch = try batches.next() {
    images += batch.count
    checksum += try batch.images.sum().item()
  }
  let seconds = Date().timeIntervalSince(start)
  print(
    #"{"images": \#(images), "seconds": \#(seconds), "images_per_second": \#(Double(images) / seconds), "checksum": \#(checksum)}"#
  )
}

func scenes() throws {
  var config = ScenesConfig()
  config.train.count = Int(option("count", "\(config.train.count)"))!
  let threads = Int(option("threads", "\(ProcessInfo.processInfo.activeProcessorCount)"))!
  let train = try ScenesDataset(config, split: .train)
  var start = Date()
  let images = train.images(0..<train.count, threads: threads)
  let renderSeconds = Date().timeIntervalSince(start)
  start = Date()
  let words = Tally()
  DispatchQueue.concurrentPerform(iterations: threads) { t in
    var count = 0
    for i in stride(from: t, to: train.count, by: threads) { count += train.captions(at: i).count }
    words.add(count)
  }
  let captionSeconds = Date().timeIntervalSince(start)
  precondition(words.total == train.count * config.captionsPerImage)
  print("scenes train split: \(images.count) images of \(config.imageSize)×\(config.imageSize) on \(threads) threads")
  print(String(format: "  render: %.2f s, %.0f images/s", renderSeconds, Double(images.count) / renderSeconds))
  print(String(format: "  captions: %.2f s, %.0f samples/s", captionSeconds, Double(images.count) / captionSeconds))
  print(String(format: "  render + captions: %.0f samples/s", Double(images.count) / (renderSeconds + captionSeconds)))

  let test = try ScenesDataset(config, split: .test)
  let bow = BagOfWordsBaseline.textToImage(test)
  let oracle = BagOfWordsBaseline.oracleTextToImage(test)
  print("test split (\(test.count) images, \(bow.queries) captions), text→image:")
  print(String(format: "  bag-of-words R@1 %.3f  R@5 %.3f  R@10 %.3f", bow.recallAt1, bow.recallAt5, bow.recallAt10))
  print(
    String(
      format: "  oracle (caption truth) R@1 %.3f  R@5 %.3f  R@10 %.3f", oracle.recallAt1, oracle.recallAt5, oracle.recallAt10))
}

do {
  switch CommandLine.arguments.dropFirst().first {
  case "pipeline": try pipeline()
  case "scenes": try scenes()
  default:
    FileHandle.standardError.write(Data("usage: DataBench pipeline|scenes [options]\n".utf8))
    exit(2)
  }
} catch {
  FileHandle.standardError.write(Data("DataBench: \(error)\n".utf8))
  exit(1)
}

import Data
import Foundation

/// `cmapkd data`: look at the configured data, or write the embedded benchmark to files.
public enum DataTools {
  public static func inspect(_ config: ExperimentConfig) throws {
    for (name, splits) in [("train", config.data.trainSplits), ("val", config.data.valSplits), ("test", config.data.testSplits)] {
      let dataset = try RunSetup.dataset(config.data, splits: splits)
      let captions = (0..<min(dataset.count, 2000)).reduce(0) { $0 + dataset.captions(at: $1).count }
      print(
        "\(name): \(dataset.name), \(dataset.count) images, ~\(String(format: "%.1f", Double(captions) / Double(min(dataset.count, 2000)))) captions per image"
      )
      for caption in dataset.captions(at: 0).prefix(3) { print("    \(dataset.sampleId(at: 0)): \(caption)") }
      if name == "test", let scenes = dataset as? ScenesDataset {
        let bow = BagOfWordsBaseline.textToImage(scenes)
        let oracle = BagOfWordsBaseline.oracleTextToImage(scenes)
        print(
          String(
            format: "  bag-of-words text→image baseline: R@1 %.3f  R@5 %.3f  R@10 %.3f  (perfect caption reader R@1 %.3f)",
            bow.recallAt1, bow.recallAt5, bow.recallAt10, oracle.recallAt1))
      }
    }
  }

  public static func export(_ config: ExperimentConfig, split: String, to directory: String) throws {
    guard config.data.dataset == nil else {
      throw ConfigError("data generate writes the embedded benchmark; data.dataset is set")
    }
    guard let which = SceneSplit(rawValue: split) else { throw ConfigError("--split must be train, val or test, not '\(split)'") }
    let dataset = try ScenesDataset(config.data.scenes, split: which)
    FileHandle.standardError.write(Data("writing \(dataset.count) images of \(dataset.name) to \(directory)\n".utf8))
    try ScenesExport.write([dataset], to: directory)
    print("\(directory)/\(ScenesExport.indexName)")
  }
}

/// Plain terminal output of results.
public enum Console {
  public static func printOutcome(_ outcome: RunOutcome) {
    print(
      "run: \(outcome.directory)  steps: \(outcome.steps)\(outcome.resumedFrom.map { " (resumed at \($0))" } ?? "")  time: \(String(format: "%.1f", outcome.seconds)) s"
    )
    printMetrics(outcome.results)
  }

  public static func printMetrics(_ metrics: [String: Double]) {
    for key in metrics.keys.sorted() { print("  \(key): \(String(format: "%.4f", metrics[key]!))") }
  }
}

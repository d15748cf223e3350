import Evaluation
import Foundation
import Models
import Torch

/// `cmapkd eval` and `cmapkd bench`.
public enum Evaluate {
  /// Loads weights (a run, a checkpoint or a Hugging Face folder) and evaluates them on the
  /// configured test split, on the configured `device`; writes nothing.
  public static func checkpoint(_ path: String, config: ExperimentConfig, asTeacher: Bool) throws -> [String: Double] {
    let section = asTeacher ? config.teacher : config.student
    let key = asTeacher ? "teacher" : "student"
    let modelConfig = try RunSetup.modelConfig(section, key: key)
    let model = try RunSetup.loadModel(modelConfig, from: path, key: key)
    if config.train.threads > 0 { Torch.numThreads = config.train.threads }
    try model.to(try config.resolvedDevice())
    let tokenizer = try RunSetup.tokenizer(config.data, model: modelConfig, teacher: config.teacher)
    let evaluator = try RunEvaluator(config: config, model: modelConfig, tokenizer: tokenizer)
    return try evaluator.final(model).metrics
  }

  /// Parameters, FLOPs, latency (batch 1) and throughput (batch 64) of the configured teacher and
  /// student architectures, and the student's speed-up, on the configured `device`.
  public static func bench(_ config: ExperimentConfig) throws {
    if config.train.threads > 0 { Torch.numThreads = config.train.threads }
    let device = try config.resolvedDevice()
    let options = EfficiencyOptions(warmup: 3, runs: max(config.eval.timingRuns, 3), throughputBatchSize: 64)
    var rows: [(String, EfficiencyResult)] = []
    for (name, section) in [("teacher", config.teacher), ("student", config.student)] {
      let model = try CLIPModel(try RunSetup.modelConfig(section, key: name))
      try model.to(device)
      FileHandle.standardError.write(Data("timing the \(name) (\(section.preset ?? section.config ?? ""))…\n".utf8))
      rows.append((name, try Efficiency.measure(model, options: options)))
    }
    print("model     params    FLOPs/image  FLOPs/caption  image ms (b1)  images/s (b64)  captions/s (b64)")
    for (name, r) in rows {
      print(
        String(
          format: "%-8@ %8.2fM %11.1fM %13.1fM %13.2f %15.0f %17.0f", name as NSString, Double(r.parameters.total) / 1e6,
          Double(r.flopsPerImage.total) / 1e6, Double(r.flopsPerCaption.total) / 1e6, r.image.latency.median * 1000,
          r.image.itemsPerSecond,
          r.text.itemsPerSecond))
    }
    let speedUp = rows[1].1.speedUp(over: rows[0].1)
    print(
      String(
        format:
          "student speed-up: %.2f× image latency, %.2f× image throughput, %.2f× text throughput, %.2f× fewer FLOPs per image (%@, %d threads)",
        speedUp.imageLatency, speedUp.imageThroughput, speedUp.textThroughput, speedUp.imageFlops, rows[1].1.device as NSString,
        rows[1].1.threads))
  }
}

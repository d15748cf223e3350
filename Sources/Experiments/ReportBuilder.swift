import Distillation
import Evaluation
import Foundation
import Reports

/// `results.json` of a finished run: what reports are built from.
public struct RunResults: Codable, Equatable, Sendable {
  /// `teacher` or `student`.
  public var kind: String
  public var method: String
  public var seed: Int
  /// The ablation variant, for ablation runs.
  public var variant: String?
  public var steps: Int
  public var wallTimeSeconds: Double
  /// Test-split metrics by `MetricKey` (fractions), plus the efficiency numbers.
  public var metrics: [String: Double]
  public var parameters: Int?
  public var flopsPerImage: Double?
  public var flopsPerCaption: Double?
  public var imagesPerSecond: Double?
  /// The full evaluation as the evaluator returned it (a nested object in the file).
  public var evaluation: EvaluationResult?
  /// Training samples skipped under `data.dataset.error_policy: skip`, by kind (each time one
  /// was met: a sample that fails every epoch counts every epoch); nil when none.
  public var skippedSamples: [String: Int]?

  enum CodingKeys: String, CodingKey {
    case kind, method, seed, variant, steps, metrics, parameters, evaluation
    case skippedSamples = "skipped_samples"
    case wallTimeSeconds = "wall_time_seconds", flopsPerImage = "flops_per_image", flopsPerCaption = "flops_per_caption"
    case imagesPerSecond = "images_per_second"
  }

  public init(
    kind: String, method: String, seed: Int, variant: String?, steps: Int, wallTimeSeconds: Double, metrics: [String: Double],
    parameters: Int?, flopsPerImage: Double?, flopsPerCaption: Double?, imagesPerSecond: Double?, evaluation: EvaluationResult?
  ) {
    (self.kind, self.method, self.seed, self.variant, self.steps, self.wallTimeSeconds) = (kind, method, seed, variant, steps, wallTimeSeconds)
    (self.metrics, self.parameters, self.flopsPerImage, self.flopsPerCaption) = (metrics, parameters, flopsPerImage, flopsPerCaption)
    (self.imagesPerSecond, self.evaluation) = (imagesPerSecond, evaluation)
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    kind = try c.decode(String.self, forKey: .kind)
    method = try c.decode(String.self, forKey: .method)
    seed = try c.decode(Int.self, forKey: .seed)
    variant = try c.decodeIfPresent(String.self, forKey: .variant)
    steps = try c.decode(Int.self, forKey: .steps)
    wallTimeSeconds = try c.decode(Double.self, forKey: .wallTimeSeconds)
    metrics = try c.decode([String: Double].self, forKey: .metrics)
    parameters = try c.decodeIfPresent(Int.self, forKey: .parameters)
    flopsPerImage = try c.decodeIfPresent(Double.self, forKey: .flopsPerImage)
    flopsPerCaption = try c.decodeIfPresent(Double.self, forKey: .flopsPerCaption)
    imagesPerSecond = try c.decodeIfPresent(Double.self, forKey: .imagesPerSecond)
    // Files written before this round hold the evaluation as a JSON string.
    if let text = try? c.decodeIfPresent(String.self, forKey: .evaluation) {
      evaluation = try JSONDecoder().decode(EvaluationResult.self, from: Data(text.utf8))
    } else {
      evaluation = try c.decodeIfPresent(EvaluationResult.self, forKey: .evaluation)
    }
    skippedSamples = try c.decodeIfPresent([String: Int].self, forKey: .skippedSamples)
  }
}

/// `cmapkd report`: turns finished run folders into `report.md` with tables and SVG plots.
public enum ReportBuilder {
  /// Display names of the methods, in table order.
  static let labels = [
    "teacher": "Teacher", "none": "No distillation", "kd": "KD (Hinton)", "fitnet": "FitNet", "clipkd": "CLIP-KD",
    "tinyclip": "TinyCLIP",
    "dsmd": "DSMD", "promptkd": "PromptKD", "c2kd": "C2KD", "dtokd": "DTO-KD (on CMAPKD)", "cmapkd": "CMAPKD",
    "iva": "IVA (token interaction)", "multiteacher": "Multi-teacher", "router": "Router",
  ]

  /// The display name of a run: the method's label, and for the multi-teacher methods how many
  /// teachers and which variant, read from the run's saved config (a single-teacher
  /// `multiteacher` control must not read as a two-teacher run).
  public static func label(method: String, config path: String) -> String {
    let base = labels[method] ?? method
    guard Methods.multiTeacherNames.contains(method),
      let config = try? ConfigLoader.load(ExperimentConfig.self, files: [path])
    else { return base }
    let count = 1 + config.extraTeachers.count
    var details = [count == 1 ? "1 teacher" : "\(count) teachers"]
    if method == "router" { details.append(config.method.router.kind == .rl ? "RL" : "similarity") }
    if config.method.multiteacher.base == "cmapkd" { details.append("on CMAPKD") }
    return "\(base) (\(details.joined(separator: ", ")))"
  }

  static func summary(_ run: String) throws -> (RunSummary, RunResults) {
    let path = "\(run)/results.json"
    guard FileManager.default.fileExists(atPath: path) else {
      throw ConfigError("\(run) is not a finished run (no results.json)")
    }
    let results = try JSONCoding.decode(RunResults.self, file: path)
    let summary = RunSummary(
      name: results.kind == "teacher" ? labels["teacher"]! : label(method: results.method, config: "\(run)/config.yaml"),
      method: results.kind == "teacher" ? "teacher" : results.method, seed: results.seed, isTeacher: results.kind == "teacher",
      config: "\(run)/config.yaml", variant: results.variant, metrics: results.metrics, parameters: results.parameters,
      flopsPerImage: results.flopsPerImage, imagesPerSecond: results.imagesPerSecond, steps: results.steps,
      wallTimeSeconds: results.wallTimeSeconds)
    return (summary, results)
  }

  /// Writes `report.md` and its plots to `directory`; returns the main table as plain text.
  @discardableResult
  public static func write(runs: [String], to directory: String, title: String = "CMAPKD report", notes: [String] = []) throws
    -> String
  {
    guard !runs.isEmpty else { throw ConfigError("report: give at least one run folder") }
    var main: [RunSummary] = []
    var ablation: [RunSummary] = []
    var logs: [(RunSummary, [MetricRecord])] = []
    for run in runs {
      let (summary, _) = try summary(run)
      if summary.variant != nil { ablation.append(summary) } else { main.append(summary) }
      let metricsPath = "\(run)/metrics.jsonl"
      if FileManager.default.fileExists(atPath: metricsPath) { logs.append((summary, try MetricsLog.read(metricsPath))) }
    }
    let writer = ReportWriter(title: title, runs: main, ablation: ablation, charts: charts(logs), notes: notes)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try writer.write(to: directory)
    var text = main.isEmpty ? "" : MainTable(runs: main).plainText()
    if !ablation.isEmpty {
      text +=
        "\n"
        + AblationTable(
          runs: ablation, metrics: [MetricKey.meanRecall, MetricKey.t2iR1, MetricKey.i2tR1], deltaMetric: MetricKey.meanRecall
        ).plainText()
    }
    return text + "\nreport: \(directory)/report.md"
  }

  /// Loss curves and recall over training for every run (first seed of each), and the ALSN's
  /// level weights over training for CMAPKD runs.
  static func charts(_ logs: [(RunSummary, [MetricRecord])]) -> [ReportChart] {
    var seen = Set<String>()
    let firstSeeds = logs.filter { seen.insert("\($0.0.name)|\($0.0.variant ?? "")").inserted }
    func label(_ s: RunSummary) -> String { s.variant.map { "\(s.name) \($0)" } ?? s.name }
    var charts: [ReportChart] = []
    let loss = firstSeeds.map { ChartSeries.metric("loss/total", in: $0.1, name: label($0.0)) }.filter { !$0.xs.isEmpty }
    if !loss.isEmpty {
      charts.append(
        ReportChart(
          fileName: "loss.svg", chart: LineChart(title: "Training loss", yLabel: "total loss", logY: true, series: loss)))
    }
    let recall = firstSeeds.map { ChartSeries.metric("eval/mean_recall", in: $0.1, name: label($0.0)) }.filter { !$0.xs.isEmpty }
    if !recall.isEmpty {
      charts.append(
        ReportChart(
          fileName: "recall.svg",
          chart: LineChart(title: "Validation mean recall during training", yLabel: "mean recall", series: recall)))
    }
    if let cmapkd = firstSeeds.first(where: { $0.0.method == "cmapkd" && ($0.0.variant == nil || $0.0.variant == "full") }) {
      var series: [ChartSeries] = []
      for (i, level) in ["P2", "P3", "P4", "P5"].enumerated() {
        var s = ChartSeries.metric("alsn/\(level)", in: cmapkd.1, name: level)
        s.color = LineChart.palette[i % LineChart.palette.count]
        series.append(s)
      }
      for (i, level) in ["L1", "L2", "L3", "L4"].enumerated() {
        var s = ChartSeries.metric("alsn/\(level)", in: cmapkd.1, name: level, dashed: true)
        s.color = LineChart.palette[i % LineChart.palette.count]
        series.append(s)
      }
      if series.contains(where: { !$0.xs.isEmpty }) {
        charts.append(
          ReportChart(
            fileName: "level_weights.svg",
            chart: LineChart(title: "CMAPKD: mean ALSN level weights over training", yLabel: "mean weight", series: series)))
      }
      // Whether the selection is per sample: the std of each level's weight across the batch
      // (0 for any weighting shared by the whole batch), next to the mean entropies.
      let selection = ["spread_vision", "spread_language", "spread_coupling", "entropy_vision", "entropy_language"].map {
        (key: String) in ChartSeries.metric("alsn/\(key)", in: cmapkd.1, name: key, dashed: key.hasPrefix("entropy"))
      }
      if selection.contains(where: { !$0.xs.isEmpty }) {
        charts.append(
          ReportChart(
            fileName: "selection.svg",
            chart: LineChart(
              title: "CMAPKD: spread of the level weights across samples (std) and mean entropy (nats)", yLabel: "",
              series: selection)))
      }
    }
    return charts
  }
}
